//! The local terminal: is a stream a TTY, its size, raw mode (restored on drop), as `moby/term`
//! does it for the docker CLI.

use std::os::fd::{AsFd, BorrowedFd};

use rustix::termios::{self, Termios};

pub fn stdin_is_tty() -> bool {
    termios::isatty(rustix::stdio::stdin())
}

pub fn stdout_is_tty() -> bool {
    termios::isatty(rustix::stdio::stdout())
}

pub fn stderr_is_tty() -> bool {
    termios::isatty(rustix::stdio::stderr())
}

/// `(rows, cols)` of the terminal on `fd`, if it is one.
pub fn size(fd: BorrowedFd<'_>) -> Option<(u16, u16)> {
    let ws = termios::tcgetwinsize(fd).ok()?;
    Some((ws.ws_row, ws.ws_col))
}

/// `(rows, cols)` of stdout — what the CLI sends as the console size (`Out().GetTtySize()`);
/// `(0, 0)` when stdout is not a terminal.
pub fn stdout_size() -> (u16, u16) {
    size(rustix::stdio::stdout()).unwrap_or((0, 0))
}

/// The size of whichever standard stream is a terminal.
pub fn size_of_any() -> Option<(u16, u16)> {
    size(rustix::stdio::stderr()).or_else(|| size(rustix::stdio::stdout())).or_else(|| size(rustix::stdio::stdin()))
}

/// Puts stdin into raw mode until dropped (`term.SetRawTerminal`); `NORAW=1` disables it.
pub struct RawMode {
    saved: Option<Termios>,
}

impl RawMode {
    pub fn enable() -> std::io::Result<Self> {
        if std::env::var_os("NORAW").is_some_and(|v| !v.is_empty()) {
            return Ok(Self { saved: None });
        }
        let fd = rustix::stdio::stdin();
        let saved = termios::tcgetattr(fd)?;
        let mut raw = saved.clone();
        make_raw(&mut raw);
        termios::tcsetattr(fd, termios::OptionalActions::Now, &raw)?;
        Ok(Self { saved: Some(saved) })
    }

    /// Restores the terminal now (idempotent).
    pub fn restore(&mut self) {
        if let Some(saved) = self.saved.take() {
            let _ = termios::tcsetattr(rustix::stdio::stdin().as_fd(), termios::OptionalActions::Now, &saved);
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        self.restore();
    }
}

/// moby/term's `MakeRaw` (the flags cfmakeraw clears, VMIN 1, VTIME 0).
fn make_raw(t: &mut Termios) {
    use termios::{ControlModes, InputModes, LocalModes, OutputModes, SpecialCodeIndex};
    t.input_modes -= InputModes::IGNBRK
        | InputModes::BRKINT
        | InputModes::PARMRK
        | InputModes::ISTRIP
        | InputModes::INLCR
        | InputModes::IGNCR
        | InputModes::ICRNL
        | InputModes::IXON;
    t.output_modes -= OutputModes::OPOST;
    t.local_modes -= LocalModes::ECHO | LocalModes::ECHONL | LocalModes::ICANON | LocalModes::ISIG | LocalModes::IEXTEN;
    t.control_modes -= ControlModes::CSIZE | ControlModes::PARENB;
    t.control_modes |= ControlModes::CS8;
    t.special_codes[SpecialCodeIndex::VMIN] = 1;
    t.special_codes[SpecialCodeIndex::VTIME] = 0;
}

/// Parses docker's `--detach-keys` syntax (`ctrl-p,ctrl-q`, `a`, `ctrl-@`, `DEL`).
pub fn detach_keys(keys: &str) -> Result<Vec<u8>, String> {
    const CTRL: &str = "@abcdefghijklmnopqrstuvwxyz[\\]^_";
    let mut out = Vec::new();
    for key in keys.split(',') {
        if key.len() == 1 {
            out.push(key.as_bytes()[0]);
            continue;
        }
        if let Some(c) = key.strip_prefix("ctrl-")
            && c.len() == 1
            && let Some(i) = CTRL.find(c)
        {
            out.push(i as u8);
            continue;
        }
        if key == "DEL" {
            out.push(127);
            continue;
        }
        return Err(format!("Unknown character: '{key}'"));
    }
    Ok(out)
}

/// The default detach sequence, ctrl-p ctrl-q.
pub const DEFAULT_DETACH_KEYS: &[u8] = &[16, 17];

/// moby/term's `escapeProxy`: passes input through while watching for the detach sequence.
/// Bytes that might start the sequence are held back until it is clear they do not.
pub struct EscapeProxy {
    keys: Vec<u8>,
    pos: usize,
}

impl EscapeProxy {
    pub fn new(keys: Vec<u8>) -> Self {
        Self { keys, pos: 0 }
    }

    /// Feeds `input`; returns the bytes to forward and whether the sequence completed (the
    /// session must then detach; bytes after the sequence are dropped).
    pub fn feed(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len());
        if self.keys.is_empty() {
            out.extend_from_slice(input);
            return (out, false);
        }
        for &b in input {
            if b == self.keys[self.pos] {
                self.pos += 1;
                if self.pos == self.keys.len() {
                    return (out, true);
                }
                continue;
            }
            if self.pos > 0 {
                // a partial match that failed: release the held-back prefix
                out.extend_from_slice(&self.keys[..self.pos]);
                self.pos = 0;
                if b == self.keys[0] {
                    self.pos = 1;
                    continue;
                }
            }
            out.push(b);
        }
        (out, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_key_syntax() {
        assert_eq!(detach_keys("ctrl-p,ctrl-q").unwrap(), vec![16, 17]);
        assert_eq!(detach_keys("a,ctrl-@,DEL").unwrap(), vec![b'a', 0, 127]);
        assert_eq!(detach_keys("ctrl-\\").unwrap(), vec![28]);
        assert_eq!(detach_keys("ctrl-pp").unwrap_err(), "Unknown character: 'ctrl-pp'");
    }

    #[test]
    fn escape_proxy() {
        let mut p = EscapeProxy::new(vec![16, 17]);
        assert_eq!(p.feed(b"ab"), (b"ab".to_vec(), false));
        assert_eq!(p.feed(&[b'x', 16]), (b"x".to_vec(), false));
        // ctrl-p then something else: the held ctrl-p is released
        assert_eq!(p.feed(b"y"), (vec![16, b'y'], false));
        assert_eq!(p.feed(&[16, 16, 17, b'z']), (vec![16], true));
        let mut q = EscapeProxy::new(vec![]);
        assert_eq!(q.feed(&[16, 17]), (vec![16, 17], false));
    }
}
