//! The workload executor: `validate` runs inside the container (after pivot_root, before the
//! start signal) and `exec` replaces the init process with the user's program.
//!
//! Messages follow runc's (Go's `exec.LookPath`) wording because the daemon and the docker CLI
//! classify start failures by substring: `executable file not found in $PATH` and
//! `no such file or directory` become exit 127, `permission denied` 126.

use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use libcontainer::oci_spec::runtime::Spec;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};

#[derive(Clone)]
pub struct RuncStyleExecutor;

fn args_of(spec: &Spec) -> Option<&Vec<String>> {
    spec.process().as_ref().and_then(|p| p.args().as_ref()).filter(|a| !a.is_empty())
}

fn env_path(spec: &Spec) -> String {
    spec.process()
        .as_ref()
        .and_then(|p| p.env().as_ref())
        .and_then(|env| env.iter().find_map(|e| e.strip_prefix("PATH=")))
        .map(str::to_owned)
        .unwrap_or_default()
}

/// Resolves `name` like Go's `exec.LookPath`, returning runc's error text on failure.
pub fn look_path(name: &str, path_var: &str) -> Result<PathBuf, String> {
    let check = |p: &Path| -> Result<(), std::io::Error> {
        let meta = std::fs::metadata(p)?;
        if meta.is_dir() || meta.permissions().mode() & 0o111 == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        }
        Ok(())
    };
    if name.contains('/') {
        let p = PathBuf::from(name);
        return match check(&p) {
            Ok(()) => Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(format!("exec: \"{name}\": stat {name}: no such file or directory"))
            }
            Err(_) => Err(format!("exec: \"{name}\": permission denied")),
        };
    }
    let mut saw_denied = false;
    for dir in path_var.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let p = Path::new(dir).join(name);
        match check(&p) {
            Ok(()) => return Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => saw_denied = true,
            Err(_) => {}
        }
    }
    if saw_denied {
        Err(format!("exec: \"{name}\": permission denied"))
    } else {
        Err(format!("exec: \"{name}\": executable file not found in $PATH"))
    }
}

impl Executor for RuncStyleExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        let args = args_of(spec).ok_or(ExecutorError::InvalidArg)?;
        let program = look_path(&args[0], &env_path(spec)).map_err(ExecutorError::Other)?;
        let path = CString::new(program.as_os_str().as_encoded_bytes()).map_err(|_| ExecutorError::InvalidArg)?;
        let argv: Vec<CString> = args
            .iter()
            .map(|a| CString::new(a.as_bytes()))
            .collect::<Result<_, _>>()
            .map_err(|_| ExecutorError::InvalidArg)?;
        let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        // SAFETY: `path` and every `argv` entry are NUL-terminated C strings that outlive the call,
        // `ptrs` is NULL-terminated, and `environ` was set by libcontainer from the spec.
        unsafe { libc::execv(path.as_ptr(), ptrs.as_ptr()) };
        let err = std::io::Error::last_os_error();
        let msg = match err.raw_os_error() {
            Some(libc::ENOENT) => format!("exec {}: no such file or directory", program.display()),
            Some(libc::EACCES) => format!("exec {}: permission denied", program.display()),
            _ => format!("exec {}: {err}", program.display()),
        };
        // The container's stderr is the only channel left once `start` has returned.
        eprintln!("{msg}");
        Err(ExecutorError::Other(msg))
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        let args = args_of(spec)
            .ok_or_else(|| ExecutorValidationError::ArgValidationError("args must not be empty".into()))?;
        look_path(&args[0], &env_path(spec)).map(drop).map_err(ExecutorValidationError::ArgValidationError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_path_wording_matches_runc() {
        assert_eq!(
            look_path("nope-xyz", "/bin").unwrap_err(),
            "exec: \"nope-xyz\": executable file not found in $PATH"
        );
        assert_eq!(
            look_path("/nonexistent/x", "/bin").unwrap_err(),
            "exec: \"/nonexistent/x\": stat /nonexistent/x: no such file or directory"
        );
        let plain = std::env::temp_dir().join(format!("wharf-noexec-{}", std::process::id()));
        std::fs::write(&plain, "x").unwrap();
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
        let name = plain.to_str().unwrap();
        assert_eq!(look_path(name, "").unwrap_err(), format!("exec: \"{name}\": permission denied"));
        std::fs::remove_file(&plain).unwrap();
        assert!(look_path("sh", "/nonexistent:/bin").is_ok());
    }
}
