//! Requirements of a test. Each returns `Err(reason)` when the test cannot run here; use
//! [`skip_unless!`](crate::skip_unless) to print the reason and return.

/// Root, needed for mounts, namespaces, cgroups and binding sockets in /run.
pub fn root() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 { Ok(()) } else { Err("needs root".into()) }
}

/// A program on PATH.
pub fn program(name: &str) -> Result<(), String> {
    let found =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file())).unwrap_or(false);
    if found { Ok(()) } else { Err(format!("`{name}` is not installed")) }
}

/// A Python module importable by `python3`.
pub fn python_module(module: &str) -> Result<(), String> {
    program("python3")?;
    let ok = std::process::Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err(format!("python module `{module}` is not installed (pip install -r scripts/requirements-test.txt)"))
    }
}

/// Overlayfs in the running kernel.
pub fn overlayfs() -> Result<(), String> {
    let fs = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if fs.lines().any(|l| l.trim_end().ends_with("overlay")) { Ok(()) } else { Err("kernel has no overlayfs".into()) }
}

/// A static busybox at /bin/busybox (test images are built from it).
pub fn busybox() -> Result<(), String> {
    if std::path::Path::new("/bin/busybox").exists() {
        Ok(())
    } else {
        Err("needs /bin/busybox (apt install busybox-static)".into())
    }
}

/// Prints `SKIP <test>: <reason>` and returns from the test when a requirement fails.
#[macro_export]
macro_rules! skip_unless {
    ($($req:expr),+ $(,)?) => {
        $(
            if let Err(reason) = $req {
                eprintln!("SKIP {}: {}", module_path!(), reason);
                return;
            }
        )+
    };
}
