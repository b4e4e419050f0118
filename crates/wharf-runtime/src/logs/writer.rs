//! The synchronous log writer the shim uses: splits output into lines the way Docker's log
//! copier does and appends records with size-based rotation (`<path>.1`, `.2`, … oldest last).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::format::{StreamKind, encode_json_file, encode_local};
use crate::shim::protocol::{LogConfig, LogDriver};

/// Longest record Docker writes; longer lines are cut into partial records of this size.
pub const MAX_LINE: usize = 16 * 1024;

/// Splits a byte stream into lines; holds an incomplete line until its newline, EOF, or
/// [`MAX_LINE`] bytes.
#[derive(Debug, Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// Feeds `data`, calling `emit(line_without_newline, partial)` for each finished record.
    pub fn feed(&mut self, mut data: &[u8], mut emit: impl FnMut(&[u8], bool)) {
        while !data.is_empty() {
            let room = MAX_LINE - self.pending.len();
            let window = &data[..data.len().min(room)];
            match memchr::memchr(b'\n', window) {
                Some(i) => {
                    if self.pending.is_empty() {
                        emit(&window[..i], false);
                    } else {
                        self.pending.extend_from_slice(&window[..i]);
                        emit(&self.pending, false);
                        self.pending.clear();
                    }
                    data = &data[i + 1..];
                }
                None => {
                    self.pending.extend_from_slice(window);
                    data = &data[window.len()..];
                    if self.pending.len() == MAX_LINE {
                        emit(&self.pending, true);
                        self.pending.clear();
                    }
                }
            }
        }
    }

    /// At EOF: emits what is left as a final, complete record (Docker appends the newline).
    pub fn finish(&mut self, mut emit: impl FnMut(&[u8], bool)) {
        if !self.pending.is_empty() {
            emit(&self.pending, false);
            self.pending.clear();
        }
    }
}

/// Appends records to a container's log file.
pub struct LogWriter {
    driver: LogDriver,
    path: PathBuf,
    file: Option<File>,
    size: u64,
    max_size: Option<u64>,
    max_file: u32,
    buf: Vec<u8>,
}

impl LogWriter {
    /// Opens (appending) the log file named by `config`; the `none` driver opens nothing.
    pub fn open(config: &LogConfig) -> std::io::Result<Self> {
        let file = match config.driver {
            LogDriver::None => None,
            _ => Some(OpenOptions::new().create(true).append(true).open(&config.path)?),
        };
        let size = match &file {
            Some(f) => f.metadata()?.len(),
            None => 0,
        };
        Ok(Self {
            driver: config.driver,
            path: config.path.clone(),
            file,
            size,
            max_size: config.max_size,
            max_file: config.max_file.max(1),
            buf: Vec::with_capacity(256),
        })
    }

    /// Writes one record. Errors (disk full) are returned; the caller keeps going, as the
    /// container must not block on its logs.
    pub fn write(&mut self, stream: StreamKind, line: &[u8], partial: bool, nanos: i64) -> std::io::Result<()> {
        if self.file.is_none() {
            return Ok(());
        }
        self.buf.clear();
        match self.driver {
            LogDriver::JsonFile => encode_json_file(stream, line, partial, nanos, &mut self.buf),
            LogDriver::Local => encode_local(stream, line, partial, nanos, &mut self.buf),
            LogDriver::None => return Ok(()),
        }
        if let Some(max) = self.max_size
            && self.size > 0
            && self.size + self.buf.len() as u64 > max
        {
            self.rotate()?;
        }
        if let Some(f) = &mut self.file {
            f.write_all(&self.buf)?;
            self.size += self.buf.len() as u64;
        }
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        if self.max_file < 2 {
            if let Some(f) = &self.file {
                f.set_len(0)?;
            }
            self.size = 0;
            return Ok(());
        }
        for i in (1..self.max_file - 1).rev() {
            let _ = std::fs::rename(rotated(&self.path, i), rotated(&self.path, i + 1));
        }
        std::fs::rename(&self.path, rotated(&self.path, 1))?;
        self.file = Some(OpenOptions::new().create(true).append(true).open(&self.path)?);
        self.size = 0;
        Ok(())
    }
}

/// `<path>.<n>`: the n-th most recent rotated file.
pub fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// Parses Docker's size syntax (`10m`, `1g`, `512k`, `100`).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let s = s.strip_suffix('b').unwrap_or(&s);
    let (num, mul) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1u64 << 10),
        'm' => (&s[..s.len() - 1], 1 << 20),
        'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let v: f64 = num.trim().parse().ok()?;
    (v >= 0.0).then_some((v * mul as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_docker() {
        let mut s = LineSplitter::default();
        let mut got: Vec<(Vec<u8>, bool)> = Vec::new();
        s.feed(b"ab\ncd", |l, p| got.push((l.to_vec(), p)));
        s.feed(b"e\n", |l, p| got.push((l.to_vec(), p)));
        let long = vec![b'x'; MAX_LINE * 2 + 5];
        s.feed(&long, |l, p| got.push((l.to_vec(), p)));
        s.feed(b"\ntail", |l, p| got.push((l.to_vec(), p)));
        s.finish(|l, p| got.push((l.to_vec(), p)));
        let lens: Vec<(usize, bool)> = got.iter().map(|(l, p)| (l.len(), *p)).collect();
        assert_eq!(lens, vec![(2, false), (3, false), (MAX_LINE, true), (MAX_LINE, true), (5, false), (4, false)]);
    }

    #[test]
    fn rotates_keeping_max_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let cfg = LogConfig { driver: LogDriver::JsonFile, path: path.clone(), max_size: Some(200), max_file: 3 };
        let mut w = LogWriter::open(&cfg).unwrap();
        for i in 0..20 {
            w.write(StreamKind::Stdout, format!("line {i}").as_bytes(), false, 0).unwrap();
        }
        assert!(path.exists() && rotated(&path, 1).exists() && rotated(&path, 2).exists());
        assert!(!rotated(&path, 3).exists());
        assert!(std::fs::metadata(&path).unwrap().len() <= 200);
        assert_eq!(parse_size("10m"), Some(10 << 20));
        assert_eq!(parse_size("1.5k"), Some(1536));
    }
}
