//! The layers of a pull in one pass: network → hash → decompress → untar, while downloading.
//!
//! ```text
//!  registry ─ BlobStream (resumes with Range, verifies the digest) ─┐        async (pump)
//!                                                                    │ bounded channel
//!  ChannelReader ─ TeeReader ─► content-store ingest (hash, temp file)│        blocking thread
//!                     └──────► unpack (sha256, gunzip/zstd, diff_id, untar) ─► snapshot `wharf-tmp-…`
//! ```
//!
//! Why layers can be unpacked at once: on overlay a layer's directory holds only its own
//! changes (whiteouts are written as overlay whiteouts, never applied to the parent), so every
//! layer is extracted into its own parentless snapshot while it downloads, up to
//! `max-concurrent-downloads` at a time, and the snapshots are committed in order, each
//! rebased onto the one below ([`wharf_snapshot::Snapshotter::commit_rebased`]), as soon as
//! the layers below are committed. The chain IDs need the order; the bytes do not.
//!
//! What "done" means for one layer: the blob stream ended with its digest verified (the
//! registry client checks it before ending the stream), the untar finished with the diff ID
//! the config names, and the content store verified digest and size once more while moving
//! the compressed blob into place (kept for push and save). Only then is the snapshot
//! committed. On any failure (digest mismatch, a body that stays truncated after the client's
//! ranged retries, a hostile tar) the layer's snapshot and temp blob are removed, the other
//! layers in flight are cancelled and cleaned up the same way, and nothing is recorded.
//!
//! Messages per layer, as moby sends them: `Downloading` progress while bytes arrive,
//! `Verifying Checksum` and `Download complete` when the stream ended verified, then
//! `Extracting` (what the untar still had to read after the download ended; at least one
//! message, at 100%) and `Pull complete` when the layer is committed. A layer whose blob is
//! already in the content store (or was downloaded earlier in the same pull) says `Download
//! complete` and is unpacked from the file.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use wharf_api::stream::{JsonMessage, ProgressSender};
use wharf_image::{ContentWriter, TeeReader};
use wharf_registry::client::{BlobEvent, Repository};
use wharf_types::oci::Descriptor;
use wharf_types::{EngineError, ErrorKind, Reference};

use super::super::gc::Lease;
use super::super::layer::{BlobLayer, tmp_key};
use super::super::store::LayerRow;
use super::super::{ImageError, ImageService};
use super::{pull_error, retrying};

/// Chunks buffered between the download and the untar (the HTTP frames, up to a few hundred
/// KiB each); the bytes they hold are bounded by [`BUFFER_BYTES`].
const CHANNEL_DEPTH: usize = 64;

/// Bytes of one layer held between the download and the untar: enough to ride out a slow file
/// create, small enough that a slow untar slows the download down instead of filling memory
/// (with 64 frames alone a pull of three layers held ~35 MiB).
const BUFFER_BYTES: usize = 4 << 20;

/// A layer of the image that is not in the store yet.
pub(super) struct LayerJob {
    pub layer: BlobLayer,
    pub desc: Descriptor,
    /// The progress id: 12 hex digits of the blob digest.
    pub id: String,
}

/// Where a layer's bytes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    Registry,
    /// The blob is in the content store (from before, or downloaded earlier in this pull).
    Store,
}

/// A layer unpacked into the uncommitted snapshot `key`.
struct Unpacked {
    key: String,
    row: LayerRow,
}

/// What the layers of one pull share.
pub(super) struct LayerPuller<'a> {
    pub svc: &'a Arc<ImageService>,
    pub repo: &'a Repository,
    pub reference: &'a Reference,
    pub progress: &'a ProgressSender,
    pub lease: &'a Lease<'a>,
    /// Layers downloaded (and unpacked) at once.
    pub concurrency: usize,
}

/// Commits unpacked layers in image order as they complete, and cleans up after a failure.
struct InOrder<'a, 'p> {
    puller: &'a LayerPuller<'p>,
    jobs: &'a [LayerJob],
    next: usize,
    ready: BTreeMap<usize, Unpacked>,
    rows: Vec<LayerRow>,
    error: Option<EngineError>,
    cancel: CancellationToken,
}

impl InOrder<'_, '_> {
    fn take(&mut self, i: usize, result: Result<Unpacked, EngineError>) {
        match result {
            Ok(u) if self.error.is_none() => {
                self.ready.insert(i, u);
                self.commit_ready();
            }
            Ok(u) => self.puller.svc.discard_snapshot(&u.key),
            Err(e) => {
                // The first error is the cause; the others are the cancellations it caused.
                if self.error.is_none() {
                    self.error = Some(e);
                    self.cancel.cancel();
                    for (_, u) in std::mem::take(&mut self.ready) {
                        self.puller.svc.discard_snapshot(&u.key);
                    }
                }
            }
        }
    }

    fn commit_ready(&mut self) {
        while let Some(u) = self.ready.remove(&self.next) {
            let job = &self.jobs[self.next];
            let parent = job.layer.parent.as_ref().map(ToString::to_string);
            let svc = self.puller.svc;
            if let Err(e) = svc.commit_layer(self.puller.lease, &u.key, &job.layer.chain, Some(parent.as_deref())) {
                self.take(self.next, Err(EngineError::from(e)));
                return;
            }
            self.puller.progress.send(JsonMessage::layer(&job.id, "Pull complete"));
            self.rows.push(u.row);
            self.next += 1;
        }
    }
}

impl LayerPuller<'_> {
    /// Downloads and unpacks `jobs` (bottom first; each one's parent is the one before or a
    /// layer already stored) and commits their snapshots in order. `sources[i]` says where
    /// job `i`'s bytes come from; a job whose blob an earlier job downloads must say
    /// [`Source::Store`] and runs once the downloads are done. Returns the rows to record.
    pub(super) async fn run(&self, jobs: &[LayerJob], sources: &[Source]) -> Result<Vec<LayerRow>, EngineError> {
        let cancel = CancellationToken::new();
        let mut order = InOrder {
            puller: self,
            jobs,
            next: 0,
            ready: BTreeMap::new(),
            rows: Vec::new(),
            error: None,
            cancel: cancel.clone(),
        };
        // A layer whose blob another job of this pull downloads (the same layer twice in one
        // image) is unpacked from the store after the downloads.
        let mut downloading = std::collections::HashSet::new();
        let (mut first, mut later) = (Vec::new(), Vec::new());
        for (i, job) in jobs.iter().enumerate() {
            match sources[i] {
                Source::Registry => {
                    downloading.insert(&job.layer.blob);
                    first.push(i);
                }
                Source::Store if downloading.contains(&job.layer.blob) => later.push(i),
                Source::Store => first.push(i),
            }
        }
        for batch in [first, later] {
            let mut running = futures_util::stream::iter(batch.into_iter().map(|i| {
                let cancel = cancel.clone();
                let source = sources[i];
                async move { (i, self.layer(&jobs[i], source, cancel).await) }
            }))
            .buffer_unordered(self.concurrency);
            while let Some((i, result)) = running.next().await {
                order.take(i, result);
            }
            if order.error.is_some() {
                break;
            }
        }
        match order.error.take() {
            Some(e) => Err(e),
            None => Ok(std::mem::take(&mut order.rows)),
        }
    }

    /// One layer: its blob streamed (or read from the store) into a new snapshot, uncommitted.
    async fn layer(&self, job: &LayerJob, source: Source, cancel: CancellationToken) -> Result<Unpacked, EngineError> {
        if cancel.is_cancelled() {
            return Err(cancelled());
        }
        let key = tmp_key();
        self.lease.add(&key);
        let svc = self.svc.clone();
        let (layer, id, total) = (job.layer.clone(), job.id.clone(), job.desc.size);
        let downloaded = Arc::new(AtomicBool::new(source == Source::Store));
        let extracting =
            Extracting { id: id.clone(), total, progress: self.progress.clone(), downloaded: downloaded.clone() };
        if source == Source::Store {
            self.progress.send(JsonMessage::layer(&id, "Download complete"));
            let unpack_key = key.clone();
            let task = tokio::task::spawn_blocking(move || {
                let file = svc.content.open_blob(&layer.blob).map_err(ImageError::Content)?;
                let reader = Cancellable { inner: io::BufReader::with_capacity(256 * 1024, file), cancel };
                let row = svc.unpack_detached(&unpack_key, extracting.wrap(reader), &layer)?;
                extracting.finish();
                Ok(row)
            });
            let row = joined(task.await)?.map_err(register_error)?;
            return Ok(Unpacked { key, row });
        }
        let stream = self.repo.fetch_blob(&job.desc).await.map_err(|e| pull_error(self.reference, e))?;
        // The stream verifies the digest and the untar reads to its verified end before the
        // blob is committed (see `unpack_streamed`): not hashed a second time.
        let writer = self.svc.content.writer_verified(&job.desc.digest, total).map_err(ImageError::Content)?;
        let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
        let budget = Arc::new(Semaphore::new(BUFFER_BYTES));
        let rx = ChannelReader::new(rx, budget.clone());
        let unpack_key = key.clone();
        let task =
            tokio::task::spawn_blocking(move || unpack_streamed(&svc, &unpack_key, rx, writer, &layer, extracting));
        let pumped = self.pump(job, stream, tx, &budget, &downloaded, &cancel).await;
        let unpacked = joined(task.await)?;
        match (pumped, unpacked) {
            // A network error (or the cancellation) is the cause of the untar's early EOF.
            (Err(e), Err(_)) => Err(e),
            // Not expected (the untar reads to the end, which only a complete download sends),
            // but the download failed: the layer is not to be trusted.
            (Err(e), Ok(_)) => {
                self.svc.discard_snapshot(&key);
                Err(e)
            }
            (Ok(()), Err(e)) => Err(register_error(e)),
            (Ok(()), Ok(row)) => Ok(Unpacked { key, row }),
        }
    }

    /// Moves the blob's chunks from the network into the channel, reporting `Downloading`.
    /// Ends the channel cleanly only when the stream ended verified; otherwise dropping the
    /// sender makes the untar fail. A consumer that stopped early (a bad tar) is not an error
    /// here: its own error is the one reported.
    async fn pump(
        &self,
        job: &LayerJob,
        mut stream: wharf_registry::client::BlobStream,
        tx: mpsc::Sender<Piece>,
        budget: &Semaphore,
        downloaded: &AtomicBool,
        cancel: &CancellationToken,
    ) -> Result<(), EngineError> {
        let total = job.desc.size;
        let step = (total / 100).max(512 * 1024);
        let (mut done, mut last) = (0u64, 0u64);
        loop {
            let next = tokio::select! {
                _ = cancel.cancelled() => return Err(cancelled()),
                next = stream.next_event() => next,
            };
            let chunk = match next {
                None => break,
                Some(Err(e)) => return Err(pull_error(self.reference, e)),
                Some(Ok(BlobEvent::Retrying { delay, .. })) => {
                    self.progress.send(JsonMessage::layer(&job.id, retrying(delay)));
                    continue;
                }
                Some(Ok(BlobEvent::Chunk(chunk))) => chunk,
            };
            done += chunk.len() as u64;
            // Wait until the untar has room; a closed budget means it is gone.
            let want = chunk.len().min(BUFFER_BYTES) as u32;
            let room = tokio::select! {
                _ = cancel.cancelled() => return Err(cancelled()),
                room = budget.acquire_many(want) => room,
            };
            let Ok(room) = room else {
                return Ok(());
            };
            room.forget();
            if tx.send(Piece::Data(chunk)).await.is_err() {
                return Ok(());
            }
            if done - last >= step || done == total {
                last = done;
                self.progress.send(JsonMessage::progress(job.id.clone(), "Downloading", done, total));
            }
        }
        self.progress.send(JsonMessage::layer(&job.id, "Verifying Checksum"));
        self.progress.send(JsonMessage::layer(&job.id, "Download complete"));
        downloaded.store(true, Ordering::Release);
        let _ = tx.send(Piece::End).await;
        Ok(())
    }
}

/// The blocking half of a streamed layer: untar what the channel brings while writing the
/// same bytes into the content store, then commit the blob. The snapshot is removed on error.
fn unpack_streamed(
    svc: &ImageService,
    key: &str,
    rx: ChannelReader,
    mut writer: ContentWriter,
    layer: &BlobLayer,
    extracting: Extracting,
) -> Result<LayerRow, ImageError> {
    let reader = TeeReader::new(rx, &mut writer);
    let row = svc.unpack_detached(key, extracting.wrap(reader), layer)?;
    // The blob's digest is leased by the pull, so GC cannot take it between commit and record.
    if let Err(e) = writer.commit() {
        svc.discard_snapshot(key);
        return Err(ImageError::Content(e));
    }
    extracting.finish();
    Ok(row)
}

/// Why a layer stopped when another one failed (never reported: the other error is).
fn cancelled() -> EngineError {
    EngineError::new(ErrorKind::Cancelled, "pull cancelled")
}

fn joined<T>(r: Result<T, tokio::task::JoinError>) -> Result<T, EngineError> {
    r.map_err(|e| EngineError::internal(format!("layer unpack task failed: {e}")))
}

/// An unpack failure as moby words it (`failed to register layer: …`, with the cause).
fn register_error(e: ImageError) -> EngineError {
    match e {
        ImageError::Unpack(u) => {
            let cause = EngineError::from_classified(&u);
            EngineError::new(cause.kind, format!("failed to register layer: {}", cause.message))
        }
        other => EngineError::from(other),
    }
}

/// What the pump sends: data, then `End` once the stream ended verified.
enum Piece {
    Data(Bytes),
    End,
}

/// The channel as a blocking reader. A sender dropped before `End` is an unexpected EOF: the
/// download failed or was cancelled, and the untar must not take a short stream for a layer.
struct ChannelReader {
    rx: mpsc::Receiver<Piece>,
    chunk: Bytes,
    ended: bool,
    /// The sender's byte budget: what the current chunk took is given back when the next one
    /// is taken; closed when the reader goes, so that a waiting sender stops.
    budget: Arc<Semaphore>,
    held: usize,
}

impl ChannelReader {
    fn new(rx: mpsc::Receiver<Piece>, budget: Arc<Semaphore>) -> Self {
        Self { rx, chunk: Bytes::new(), ended: false, budget, held: 0 }
    }
}

impl Drop for ChannelReader {
    fn drop(&mut self) {
        self.budget.close();
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            if self.ended {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Piece::Data(b)) => {
                    self.budget.add_permits(std::mem::replace(&mut self.held, b.len().min(BUFFER_BYTES)));
                    self.chunk = b;
                }
                Some(Piece::End) => self.ended = true,
                None => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the layer download stopped")),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk = self.chunk.slice(n..);
        Ok(n)
    }
}

/// A reader that fails once the pull is cancelled (for layers read from the store).
struct Cancellable<R> {
    inner: R,
    cancel: CancellationToken,
}

impl<R: Read> Read for Cancellable<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancel.is_cancelled() {
            return Err(io::Error::other("pull cancelled"));
        }
        self.inner.read(buf)
    }
}

/// `Extracting` progress of one layer: compressed bytes the untar consumed, out of the blob
/// size (moby measures the same). Sent only once the download is complete, so that a
/// terminal's line for the layer does not flip between `Downloading` and `Extracting`.
struct Extracting {
    id: String,
    total: u64,
    progress: ProgressSender,
    downloaded: Arc<AtomicBool>,
}

impl Extracting {
    fn wrap<R: Read>(&self, inner: R) -> ExtractingReader<'_, R> {
        ExtractingReader { inner, read: 0, reported: 0, owner: self }
    }

    /// The last `Extracting` message (100%), once the untar is done.
    fn finish(&self) {
        self.progress.send(JsonMessage::progress(self.id.clone(), "Extracting", self.total, self.total));
    }
}

struct ExtractingReader<'a, R> {
    inner: R,
    read: u64,
    reported: u64,
    owner: &'a Extracting,
}

impl<R: Read> Read for ExtractingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        let o = self.owner;
        let step = (o.total / 100).max(512 * 1024);
        if self.read < o.total && self.read - self.reported >= step && o.downloaded.load(Ordering::Acquire) {
            self.reported = self.read;
            o.progress.send(JsonMessage::progress(o.id.clone(), "Extracting", self.read, o.total));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_reader_ends_only_at_end() {
        let (tx, rx) = mpsc::channel(4);
        tx.try_send(Piece::Data(Bytes::from_static(b"hello "))).unwrap();
        tx.try_send(Piece::Data(Bytes::from_static(b"world"))).unwrap();
        tx.try_send(Piece::End).unwrap();
        let mut out = String::new();
        let budget = Arc::new(Semaphore::new(BUFFER_BYTES));
        ChannelReader::new(rx, budget.clone()).read_to_string(&mut out).unwrap();
        assert!(budget.is_closed(), "a reader that is gone closes the budget");
        assert_eq!(out, "hello world");

        // A sender gone without `End` (a failed or cancelled download) is not a short layer.
        let (tx, rx) = mpsc::channel(4);
        tx.try_send(Piece::Data(Bytes::from_static(b"half"))).unwrap();
        drop(tx);
        let mut out = Vec::new();
        let e = ChannelReader::new(rx, Arc::new(Semaphore::new(BUFFER_BYTES))).read_to_end(&mut out).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(out, b"half");
    }

    #[test]
    fn extracting_progress_waits_for_the_download() {
        let (progress, mut rx) = ProgressSender::buffer();
        let downloaded = Arc::new(AtomicBool::new(false));
        let total = 4 << 20;
        let ex = Extracting { id: "abc".into(), total, progress, downloaded: downloaded.clone() };
        let data = vec![0u8; total as usize];
        let mut r = ex.wrap(&data[..]);
        let mut buf = vec![0u8; 1 << 20];
        r.read_exact(&mut buf).unwrap();
        assert!(rx.try_recv().is_none(), "nothing while downloading");
        downloaded.store(true, Ordering::Release);
        r.read_exact(&mut buf).unwrap();
        let m = rx.try_recv().expect("progress once downloaded");
        assert_eq!(m.status.as_deref(), Some("Extracting"));
        assert_eq!(m.progress_detail.and_then(|p| p.current), Some(2 << 20));
        ex.finish();
        let m = rx.try_recv().unwrap();
        assert_eq!(m.progress_detail.and_then(|p| p.current), Some(total as i64));
    }
}
