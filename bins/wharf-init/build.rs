//! wharf-init must be a static executable: it runs as PID 1 in images without a libc. Cargo
//! cannot link one binary of a workspace statically on its own, so `scripts/build-init.sh`
//! builds it for an explicit `--target` with `+crt-static` and installs it beside the other
//! binaries. This script only warns when a build is not static.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let features = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    if !features.split(',').any(|f| f == "crt-static") {
        println!("cargo:warning=this wharf-init is dynamically linked; `scripts/build-init.sh` builds the static one");
    }
}
