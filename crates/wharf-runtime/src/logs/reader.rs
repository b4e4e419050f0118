//! Reading a container's logs back for the daemon's `logs` endpoint.
//!
//! Files are read oldest first: `<path>.N`, …, `<path>.1`, `<path>`. `tail` finds its start by
//! reading backwards from the end (json-file: counting newlines in 64 KiB blocks; local: the
//! trailing length word of each record), so `--tail 10` of a huge log reads a few KiB.
//! `since`/`until` filter on the record time (Docker applies tail first, then since). `follow`
//! keeps reading the live file, notices rotation (the path's inode changes) and truncation, and
//! ends when the stream is dropped or the `stop` token is cancelled (after draining what is
//! written). The work runs on a blocking thread and arrives in batches, so throughput is bound
//! by parsing, not by channel hops.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wharf_types::{Classify, ErrorKind};

use super::format::{LogEntry, decode_json_file, decode_local_body};
use super::writer::rotated;
use crate::shim::protocol::LogDriver;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("open log file {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("read log file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("corrupt log record in {path} at offset {offset}")]
    Corrupt { path: PathBuf, offset: u64 },
    #[error("logs are not available for the \"none\" log driver")]
    NoneDriver,
}

impl Classify for LogError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Open { source, .. } if source.kind() == std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            Self::NoneDriver => ErrorKind::NotImplemented,
            _ => ErrorKind::Internal,
        }
    }
}

/// What to read.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    pub driver: LogDriver,
    /// Only the last N records (before `since` filtering), `None`: all.
    pub tail: Option<usize>,
    /// Skip records older than this (nanoseconds since the epoch).
    pub since: Option<i64>,
    /// Stop at the first record newer than this.
    pub until: Option<i64>,
    pub follow: bool,
    /// Ends a follow once cancelled (what is already written is still delivered).
    pub stop: Option<CancellationToken>,
    /// How often a follow polls for new data.
    pub poll_interval: Option<Duration>,
}

/// A stream of log entries, read on a blocking thread.
pub struct LogStream {
    rx: mpsc::Receiver<Result<Vec<LogEntry>, LogError>>,
    batch: VecDeque<LogEntry>,
}

impl Stream for LogStream {
    type Item = Result<LogEntry, LogError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(e) = this.batch.pop_front() {
                return Poll::Ready(Some(Ok(e)));
            }
            match this.rx.poll_recv(cx) {
                Poll::Ready(Some(Ok(b))) => this.batch = b.into(),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl LogStream {
    /// Receives the next batch of entries (faster than entry-by-entry polling).
    pub async fn next_batch(&mut self) -> Option<Result<Vec<LogEntry>, LogError>> {
        if !self.batch.is_empty() {
            return Some(Ok(self.batch.drain(..).collect()));
        }
        self.rx.recv().await
    }
}

/// Reads the log at `path` (the live file; rotated siblings are found next to it).
pub fn read_logs(path: PathBuf, opts: ReadOptions) -> LogStream {
    let (tx, rx) = mpsc::channel(8);
    tokio::task::spawn_blocking(move || {
        let mut r = Reader { path, opts, tx, batch: Vec::with_capacity(BATCH), stopped: false };
        if let Err(e) = r.run() {
            let _ = r.tx.blocking_send(Err(e));
        }
    });
    LogStream { rx, batch: VecDeque::new() }
}

const BATCH: usize = 2048;
const CHUNK: usize = 1 << 20;

struct Reader {
    path: PathBuf,
    opts: ReadOptions,
    tx: mpsc::Sender<Result<Vec<LogEntry>, LogError>>,
    batch: Vec<LogEntry>,
    /// `until` was passed or the consumer went away.
    stopped: bool,
}

/// Incremental record parser over a byte buffer.
struct Parser {
    driver: LogDriver,
    buf: Vec<u8>,
    start: usize,
    /// File offset of `buf[0]`.
    base: u64,
}

impl Parser {
    fn new(driver: LogDriver, base: u64) -> Self {
        Self { driver, buf: Vec::with_capacity(CHUNK + 4096), start: 0, base }
    }

    /// Parses complete records, calling `f`; returns `Err(offset)` on a corrupt local record.
    fn parse(&mut self, mut f: impl FnMut(LogEntry) -> bool) -> Result<(), u64> {
        let mut i = self.start;
        match self.driver {
            LogDriver::Local => {
                while self.buf.len() - i >= 4 {
                    let n = u32::from_le_bytes(self.buf[i..i + 4].try_into().expect("4 bytes")) as usize;
                    if !(10..=(64 << 20)).contains(&n) {
                        return Err(self.base + i as u64);
                    }
                    if self.buf.len() - i < n + 8 {
                        break;
                    }
                    let e = decode_local_body(&self.buf[i + 4..i + 4 + n]).ok_or(self.base + i as u64)?;
                    i += n + 8;
                    if !f(e) {
                        break;
                    }
                }
            }
            _ => {
                while let Some(nl) = memchr::memchr(b'\n', &self.buf[i..]) {
                    let line = &self.buf[i..i + nl];
                    i += nl + 1;
                    // Unparseable lines (a torn write after a crash) are skipped, as Docker does.
                    if let Some(e) = decode_json_file(line)
                        && !f(e)
                    {
                        break;
                    }
                }
            }
        }
        self.start = i;
        Ok(())
    }

    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.base += self.start as u64;
            self.start = 0;
        }
    }

    /// Appends up to CHUNK bytes from `file`; returns the count.
    fn fill(&mut self, file: &mut File) -> std::io::Result<usize> {
        self.compact();
        let old = self.buf.len();
        self.buf.resize(old + CHUNK, 0);
        let n = loop {
            match file.read(&mut self.buf[old..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.buf.truncate(old);
                    return Err(e);
                }
            }
        };
        self.buf.truncate(old + n);
        Ok(n)
    }
}

impl Reader {
    fn files(&self) -> Vec<PathBuf> {
        let mut v = Vec::new();
        let mut n = 1;
        while rotated(&self.path, n).exists() {
            v.push(rotated(&self.path, n));
            n += 1;
        }
        v.reverse();
        v.push(self.path.clone());
        v
    }

    fn emit(&mut self, e: LogEntry) -> bool {
        if let Some(until) = self.opts.until
            && e.timestamp > until
        {
            self.stopped = true;
            return false;
        }
        if let Some(since) = self.opts.since
            && e.timestamp < since
        {
            return true;
        }
        self.batch.push(e);
        if self.batch.len() >= BATCH {
            return self.flush();
        }
        true
    }

    /// Sends the pending batch; false once reading should stop (until passed, consumer gone).
    fn flush(&mut self) -> bool {
        if !self.batch.is_empty() {
            let b = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
            if self.tx.blocking_send(Ok(b)).is_err() {
                self.stopped = true;
            }
        }
        !self.stopped
    }

    fn run(&mut self) -> Result<(), LogError> {
        if self.opts.driver == LogDriver::None {
            return Err(LogError::NoneDriver);
        }
        let files = self.files();
        let (first, offset) = match self.opts.tail {
            None => (0, 0),
            Some(n) => self.tail_start(&files, n)?,
        };
        let last = files.len() - 1;
        for (idx, path) in files.iter().enumerate().skip(first) {
            let start = if idx == first { offset } else { 0 };
            let mut file = match File::open(path) {
                Ok(f) => f,
                // Rotated away while we were reading: its records are in the next file.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && idx != last => continue,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && self.opts.follow => {
                    return self.follow(None, 0);
                }
                Err(source) => {
                    return Err(LogError::Open { path: path.clone(), source });
                }
            };
            file.seek(SeekFrom::Start(start)).map_err(|source| LogError::Read { path: path.clone(), source })?;
            let mut parser = Parser::new(self.opts.driver, start);
            self.read_to_end(&mut file, path, &mut parser)?;
            if self.stopped {
                self.flush();
                return Ok(());
            }
            if idx == last && self.opts.follow {
                self.flush();
                return self.follow(Some((file, parser)), 0);
            }
        }
        self.flush();
        Ok(())
    }

    fn read_to_end(&mut self, file: &mut File, path: &Path, parser: &mut Parser) -> Result<(), LogError> {
        loop {
            let n = parser.fill(file).map_err(|source| LogError::Read { path: path.to_path_buf(), source })?;
            let mut cont = true;
            parser
                .parse(|e| {
                    cont = self.emit(e);
                    cont
                })
                .map_err(|offset| LogError::Corrupt { path: path.to_path_buf(), offset })?;
            if !cont || self.stopped || n == 0 {
                return Ok(());
            }
        }
    }

    /// Follows the live file. `current` is the open file and its parser positioned at its end.
    fn follow(&mut self, mut current: Option<(File, Parser)>, _depth: u32) -> Result<(), LogError> {
        let interval = self.opts.poll_interval.unwrap_or(Duration::from_millis(100));
        let path = self.path.clone();
        loop {
            if let Some((file, parser)) = &mut current {
                self.read_to_end(file, &path, parser)?;
                if self.stopped || !self.flush() {
                    return Ok(());
                }
            }
            if self.tx.is_closed() {
                return Ok(());
            }
            let cancelled = self.opts.stop.as_ref().is_some_and(|t| t.is_cancelled());
            // Rotation: the path names a new file; finish the old one, then switch.
            let meta = std::fs::metadata(&path).ok();
            let switched = match (&current, &meta) {
                (None, Some(_)) => true,
                (Some((f, _)), Some(m)) => {
                    f.metadata().map(|fm| fm.ino() != m.ino() || fm.dev() != m.dev()).unwrap_or(true)
                }
                _ => false,
            };
            if switched {
                if let Some((mut f, mut p)) = current.take() {
                    self.read_to_end(&mut f, &path, &mut p)?;
                    // Several rotations may have happened since the last poll: the old file is
                    // now `<path>.k`; `.k-1` … `.1` are newer and were never seen.
                    if let Ok(old) = f.metadata() {
                        let mut k = 1;
                        while let Ok(m) = std::fs::metadata(rotated(&path, k)) {
                            if m.ino() == old.ino() && m.dev() == old.dev() {
                                break;
                            }
                            k += 1;
                        }
                        for n in (1..k).rev() {
                            let rp = rotated(&path, n);
                            if let Ok(mut rf) = File::open(&rp) {
                                let mut parser = Parser::new(self.opts.driver, 0);
                                self.read_to_end(&mut rf, &rp, &mut parser)?;
                            }
                        }
                    }
                }
                match File::open(&path) {
                    Ok(f) => current = Some((f, Parser::new(self.opts.driver, 0))),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(source) => {
                        return Err(LogError::Open { path: path.clone(), source });
                    }
                }
                continue;
            }
            // Truncation (max-file=1 rotation truncates in place): start over.
            if let (Some((f, p)), Some(m)) = (&mut current, &meta)
                && m.len() < p.base + p.buf.len() as u64
            {
                let _ = f.seek(SeekFrom::Start(0));
                *p = Parser::new(self.opts.driver, 0);
                continue;
            }
            if cancelled {
                if let Some((f, p)) = &mut current {
                    self.read_to_end(f, &path, p)?;
                }
                self.flush();
                return Ok(());
            }
            std::thread::sleep(interval);
        }
    }

    /// Where reading starts so that exactly `n` records remain: (file index, offset).
    fn tail_start(&self, files: &[PathBuf], n: usize) -> Result<(usize, u64), LogError> {
        let mut need = n;
        for idx in (0..files.len()).rev() {
            let path = &files[idx];
            let file = match File::open(path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(LogError::Open { path: path.clone(), source });
                }
            };
            let len = file.metadata().map_err(|source| LogError::Read { path: path.clone(), source })?.len();
            let read_err = |source| LogError::Read { path: path.clone(), source };
            if need == 0 {
                return Ok((idx, len));
            }
            match self.opts.driver {
                LogDriver::Local => {
                    let mut pos = len;
                    while pos >= 8 {
                        let mut w = [0u8; 4];
                        file.read_exact_at(&mut w, pos - 4).map_err(read_err)?;
                        let rec = u32::from_le_bytes(w) as u64 + 8;
                        if rec > pos {
                            return Err(LogError::Corrupt { path: path.clone(), offset: pos });
                        }
                        pos -= rec;
                        need -= 1;
                        if need == 0 {
                            return Ok((idx, pos));
                        }
                    }
                }
                _ => {
                    let mut end = len;
                    let mut block = vec![0u8; 64 * 1024];
                    // The final newline terminates the last record; it does not start one.
                    let mut skip_last = true;
                    while end > 0 {
                        let start = end.saturating_sub(block.len() as u64);
                        let b = &mut block[..(end - start) as usize];
                        file.read_exact_at(b, start).map_err(read_err)?;
                        for i in memchr::memrchr_iter(b'\n', b) {
                            if skip_last && start + i as u64 == len - 1 {
                                skip_last = false;
                                continue;
                            }
                            skip_last = false;
                            need -= 1;
                            if need == 0 {
                                return Ok((idx, start + i as u64 + 1));
                            }
                        }
                        skip_last = false;
                        end = start;
                    }
                    // The file's first line counts too (it has no newline before it).
                    if len > 0 {
                        need -= 1;
                        if need == 0 {
                            return Ok((idx, 0));
                        }
                    }
                }
            }
        }
        Ok((0, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::format::StreamKind;
    use crate::logs::writer::LogWriter;
    use crate::shim::protocol::LogConfig;
    use futures_util::StreamExt;

    fn write_log(dir: &Path, driver: LogDriver, n: usize, max_size: Option<u64>) -> PathBuf {
        let path = dir.join("c.log");
        let cfg = LogConfig { driver, path: path.clone(), max_size, max_file: 5 };
        let mut w = LogWriter::open(&cfg).unwrap();
        for i in 0..n {
            let kind = if i % 3 == 0 { StreamKind::Stderr } else { StreamKind::Stdout };
            w.write(kind, format!("line {i}").as_bytes(), false, 1_000 + i as i64).unwrap();
        }
        path
    }

    async fn collect(path: PathBuf, opts: ReadOptions) -> Vec<LogEntry> {
        let mut s = read_logs(path, opts);
        let mut v = Vec::new();
        while let Some(e) = s.next().await {
            v.push(e.unwrap());
        }
        v
    }

    #[tokio::test]
    async fn reads_tail_since_until_across_rotation() {
        for driver in [LogDriver::JsonFile, LogDriver::Local] {
            let dir = tempfile::tempdir().unwrap();
            let path = write_log(dir.path(), driver, 100, Some(1000));
            assert!(rotated(&path, 1).exists());
            let all = collect(path.clone(), ReadOptions { driver, ..Default::default() }).await;
            let kept = all.len();
            assert!(kept > 20 && kept <= 100, "{driver:?} kept {kept}");
            assert_eq!(&all.last().unwrap().bytes[..], b"line 99\n");
            for w in all.windows(2) {
                assert!(w[0].timestamp < w[1].timestamp);
            }
            for n in [0, 1, 7, kept, kept + 10] {
                let t = collect(path.clone(), ReadOptions { driver, tail: Some(n), ..Default::default() }).await;
                assert_eq!(t.len(), n.min(kept), "{driver:?} tail {n}");
                assert_eq!(t[..], all[kept - n.min(kept)..]);
            }
            let f = collect(
                path.clone(),
                ReadOptions { driver, since: Some(1090), until: Some(1094), ..Default::default() },
            )
            .await;
            assert_eq!(f.len(), 5);
            assert_eq!(f[0].stream, StreamKind::Stderr); // record 90: every third is stderr
        }
    }

    #[tokio::test]
    async fn follow_sees_appends_and_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let cfg = LogConfig { driver: LogDriver::JsonFile, path: path.clone(), max_size: Some(300), max_file: 3 };
        let mut w = LogWriter::open(&cfg).unwrap();
        w.write(StreamKind::Stdout, b"first", false, 1).unwrap();
        let stop = CancellationToken::new();
        let mut s = read_logs(
            path.clone(),
            ReadOptions {
                follow: true,
                stop: Some(stop.clone()),
                poll_interval: Some(Duration::from_millis(10)),
                ..Default::default()
            },
        );
        assert_eq!(&s.next().await.unwrap().unwrap().bytes[..], b"first\n");
        for i in 0..20 {
            w.write(StreamKind::Stdout, format!("more {i}").as_bytes(), false, 2 + i).unwrap();
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
        stop.cancel();
        let mut got = Vec::new();
        while let Some(e) = s.next().await {
            got.push(e.unwrap());
        }
        assert_eq!(got.len(), 20, "{got:?}");
        assert_eq!(&got[19].bytes[..], b"more 19\n");
    }
}
