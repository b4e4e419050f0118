//! Protection against CVE-2019-5736: a process in the container must never be able to open the
//! runtime's binary for writing through `/proc/<pid>/exe`. Before doing anything else the
//! runtime copies itself into a sealed memfd and re-executes from it, as runc and youki do, so
//! `/proc/<pid>/exe` of every runtime process names an immutable anonymous file.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};

const MARK: &str = "_WHARF_RUNTIME_SEALED";

/// Re-executes from a sealed copy unless this process already is one. Returns only when running
/// sealed (or when sealing is impossible; then the error is returned and the caller decides).
pub fn ensure_sealed() -> io::Result<()> {
    if std::env::var_os(MARK).is_some() {
        // SAFETY: called first thing in main, while the process is single-threaded.
        unsafe { std::env::remove_var(MARK) };
        return Ok(());
    }
    let mut exe = File::open("/proc/self/exe")?;
    // SAFETY: the name is a NUL-terminated string; the flags are valid for memfd_create.
    let fd = unsafe { libc::memfd_create(c"wharf-runtime".as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: memfd_create returned a fresh fd that nothing else owns.
    let mut mem = unsafe { File::from_raw_fd(fd) };
    io::copy(&mut exe, &mut mem)?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: F_ADD_SEALS takes an integer argument.
    if unsafe { libc::fcntl(mem.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let args: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(a.into_encoded_bytes()))
        .collect::<Result<_, _>>()
        .map_err(io::Error::other)?;
    let mut env: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv = k.into_encoded_bytes();
            kv.push(b'=');
            kv.extend(v.into_encoded_bytes());
            CString::new(kv).ok()
        })
        .collect();
    env.push(CString::new(format!("{MARK}=1")).map_err(io::Error::other)?);
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: argv and envp are NULL-terminated arrays of C strings that outlive the call.
    unsafe { libc::fexecve(mem.as_raw_fd(), argv.as_ptr(), envp.as_ptr()) };
    Err(io::Error::last_os_error())
}
