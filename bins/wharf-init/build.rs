//! Warns when a release build of wharf-init is not static: a dynamic one fails in a
//! FROM-scratch image with a confusing "no such file or directory".
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let features = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    let release = std::env::var("PROFILE").map(|p| p == "release").unwrap_or(false);
    if release && !features.split(',').any(|f| f == "crt-static") {
        println!(
            "cargo:warning=wharf-init is being built dynamically; for a static binary build it from bins/wharf-init \
             (cd bins/wharf-init && cargo build --release) or pass -C target-feature=+crt-static"
        );
    }
}
