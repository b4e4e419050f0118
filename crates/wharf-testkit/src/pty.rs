//! A program on a pseudo-terminal, driven like a person at a keyboard (`docker run -it`,
//! `docker exec -it`, `docker attach`): it is the session leader with the pty as its
//! controlling terminal, so it sees a real tty, receives SIGWINCH when [`Pty::resize`]
//! changes the window, and reads the bytes [`Pty::send`] types.
//!
//! ```ignore
//! let mut p = Pty::spawn(d.docker(&["run", "-it", "busybox", "sh"]), 30, 100);
//! p.expect("# ");
//! p.send(b"exit 5\r");
//! assert_eq!(p.wait(), 5);
//! ```

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Everything the program printed, and whether its side of the pty closed.
#[derive(Default)]
struct Screen {
    out: Vec<u8>,
    eof: bool,
}

pub struct Pty {
    master: std::fs::File,
    child: Child,
    screen: Arc<(Mutex<Screen>, Condvar)>,
    /// Output before this offset was consumed by an earlier `expect`.
    seen: usize,
}

fn set_winsize(fd: i32, rows: u16, cols: u16) {
    let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads one `winsize` from the valid pointer; `fd` is an open pty.
    unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) };
}

impl Pty {
    /// Starts `cmd` on a new pty of `rows` × `cols`.
    pub fn spawn(mut cmd: Command, rows: u16, cols: u16) -> Pty {
        // SAFETY: plain libc calls on a fd we own; every result is checked.
        let (master, slave) = unsafe {
            let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
            assert!(m >= 0, "posix_openpt: {}", std::io::Error::last_os_error());
            assert_eq!(libc::grantpt(m), 0, "grantpt");
            assert_eq!(libc::unlockpt(m), 0, "unlockpt");
            let mut name = [0 as libc::c_char; 128];
            assert_eq!(libc::ptsname_r(m, name.as_mut_ptr(), name.len()), 0, "ptsname_r");
            let s = libc::open(name.as_ptr(), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
            assert!(s >= 0, "open pts: {}", std::io::Error::last_os_error());
            (OwnedFd::from_raw_fd(m), OwnedFd::from_raw_fd(s))
        };
        set_winsize(master.as_raw_fd(), rows, cols);
        let clone = |fd: &OwnedFd| Stdio::from(fd.try_clone().expect("dup pts"));
        cmd.stdin(clone(&slave)).stdout(clone(&slave)).stderr(clone(&slave));
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn on pty");
        drop(slave);
        let master = std::fs::File::from(master);
        let screen = Arc::new((Mutex::new(Screen::default()), Condvar::new()));
        let mut reader = master.try_clone().expect("dup master");
        let s = screen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                // EIO once every slave fd is closed (the program exited).
                let n = reader.read(&mut buf).unwrap_or(0);
                let (lock, cv) = &*s;
                let mut sc = lock.lock().unwrap_or_else(|p| p.into_inner());
                if n == 0 {
                    sc.eof = true;
                    cv.notify_all();
                    return;
                }
                sc.out.extend_from_slice(&buf[..n]);
                cv.notify_all();
            }
        });
        Pty { master, child, screen, seen: 0 }
    }

    /// Types bytes (a `\r` is Enter; `\x03` ctrl-c; `\x10\x11` ctrl-p ctrl-q).
    pub fn send(&mut self, bytes: &[u8]) {
        self.master.write_all(bytes).expect("write to pty");
    }

    /// Changes the window size; the program gets SIGWINCH.
    pub fn resize(&mut self, rows: u16, cols: u16) {
        set_winsize(self.master.as_raw_fd(), rows, cols);
    }

    /// Waits (up to 20 s) until `text` appears in output not consumed yet; returns the output
    /// up to and including it.
    pub fn expect(&mut self, text: &str) -> String {
        let (lock, cv) = &*self.screen;
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut sc = lock.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let tail = &sc.out[self.seen..];
            if let Some(i) = tail.windows(text.len()).position(|w| w == text.as_bytes()) {
                let got = String::from_utf8_lossy(&tail[..i + text.len()]).into_owned();
                self.seen += i + text.len();
                return got;
            }
            let now = Instant::now();
            assert!(
                !sc.eof && now < deadline,
                "{text:?} did not appear; output so far:\n{}",
                String::from_utf8_lossy(&sc.out)
            );
            sc = cv.wait_timeout(sc, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// What a terminal of `cols` columns shows after everything printed so far, scrollback
    /// included (see [`screen`]).
    pub fn screen(&self, cols: usize) -> Vec<String> {
        let sc = self.screen.0.lock().unwrap_or_else(|p| p.into_inner());
        screen(&String::from_utf8_lossy(&sc.out), cols)
    }

    /// Everything printed so far.
    pub fn output(&self) -> String {
        let sc = self.screen.0.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&sc.out).into_owned()
    }

    /// Waits (up to 20 s) for the program to exit, then for the reader to drain what it printed
    /// last (the pty's end of file, at most 2 s more); returns its exit code.
    pub fn wait(&mut self) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                let (lock, cv) = &*self.screen;
                let drained = Instant::now() + Duration::from_secs(2);
                let mut sc = lock.lock().unwrap_or_else(|p| p.into_inner());
                while !sc.eof && Instant::now() < drained {
                    sc = cv.wait_timeout(sc, drained - Instant::now()).unwrap_or_else(|p| p.into_inner()).0;
                }
                return st.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "the program did not exit; output:\n{}", self.output());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Plays `output` on a minimal terminal `cols` wide and returns its lines (scrollback
/// included, trailing blanks trimmed): printable characters with autowrap, `\r`, `\n`,
/// backspace, and the CSI sequences live views use — cursor up/down/forward/back (`A` `B` `C`
/// `D`), erase line (`K`, `2K`) and erase below (`J`); other sequences (colors) are ignored.
pub fn screen(output: &str, cols: usize) -> Vec<String> {
    let mut lines: Vec<Vec<char>> = vec![Vec::new()];
    let (mut row, mut col) = (0usize, 0usize);
    let mut chars = output.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => col = 0,
            '\n' => {
                row += 1;
                if row == lines.len() {
                    lines.push(Vec::new());
                }
            }
            '\x08' => col = col.saturating_sub(1),
            '\x1b' => {
                if chars.next_if_eq(&'[').is_none() {
                    chars.next();
                    continue;
                }
                let mut params = String::new();
                let mut fin = ' ';
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        fin = c;
                        break;
                    }
                    params.push(c);
                }
                let n = params.parse::<usize>().unwrap_or(1).max(1);
                match fin {
                    'A' => row = row.saturating_sub(n),
                    'B' => {
                        row += n;
                        while lines.len() <= row {
                            lines.push(Vec::new());
                        }
                    }
                    'C' => col += n,
                    'D' => col = col.saturating_sub(n),
                    'K' if params == "2" => lines[row].clear(),
                    'K' => lines[row].truncate(col),
                    'J' => {
                        lines[row].truncate(col);
                        lines.truncate(row + 1);
                    }
                    _ => {}
                }
            }
            c if c.is_control() => {}
            c => {
                if col >= cols {
                    col = 0;
                    row += 1;
                    if row == lines.len() {
                        lines.push(Vec::new());
                    }
                }
                let line = &mut lines[row];
                while line.len() < col {
                    line.push(' ');
                }
                if col < line.len() {
                    line[col] = c;
                } else {
                    line.push(c);
                }
                col += 1;
            }
        }
    }
    let mut out: Vec<String> =
        lines.into_iter().map(|l| l.into_iter().collect::<String>().trim_end().to_owned()).collect();
    while out.last().is_some_and(String::is_empty) {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::screen;

    #[test]
    fn screen_plays_redraws() {
        let out = "a\nb\n\x1b[2A\r\x1b[2Kx\n\r\x1b[2K\x1b[34my\x1b[0m\r\nz\n";
        assert_eq!(screen(out, 80), vec!["x", "y", "z"]);
        assert_eq!(screen("12345", 3), vec!["123", "45"]);
        assert_eq!(screen("one\r\ntwo\r\nthree\r\n\x1b[2A\x1b[J", 80), vec!["one"]);
        assert_eq!(screen("abc\r\x1b[1Cx\x1b[K", 80), vec!["ax"]);
    }
}
