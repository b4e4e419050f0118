//! Hashing while streaming: readers and writers that digest and count what passes through.

use std::io::{self, Read, Write};

use sha2::{Digest as _, Sha256, Sha512};
use wharf_types::Digest;
use wharf_types::digest::Algorithm;

/// A running digest of one of the algorithms [`Digest`] accepts.
#[derive(Clone)]
pub(crate) enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    pub(crate) fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }

    pub(crate) fn sha256() -> Self {
        Hasher::Sha256(Sha256::new())
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    pub(crate) fn finish(self) -> Digest {
        match self {
            Hasher::Sha256(h) => Digest::sha256_bytes(&h.finalize().into()),
            Hasher::Sha512(h) => {
                format!("sha512:{}", hex::encode(h.finalize())).parse().expect("a sha512 hex string is a valid digest")
            }
        }
    }
}

/// Digests and counts the bytes read through it.
pub(crate) struct HashReader<R> {
    pub(crate) inner: R,
    pub(crate) hasher: Hasher,
    pub(crate) count: u64,
}

impl<R> HashReader<R> {
    pub(crate) fn new(inner: R, hasher: Hasher) -> Self {
        Self { inner, hasher, count: 0 }
    }
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Digests and counts the bytes written through it.
pub(crate) struct HashWriter<W> {
    pub(crate) inner: W,
    pub(crate) hasher: Hasher,
    pub(crate) count: u64,
}

impl<W> HashWriter<W> {
    pub(crate) fn new(inner: W, hasher: Hasher) -> Self {
        Self { inner, hasher, count: 0 }
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A random suffix for temp names: concurrent writers never collide.
pub(crate) fn random_suffix() -> String {
    let mut bytes = [0u8; 8];
    // On failure the zeros still differ between processes through the pid.
    let _ = getrandom::fill(&mut bytes);
    format!("{}-{}", std::process::id(), hex::encode(bytes))
}

/// The sha256 digest of `data` (config and manifest documents).
pub fn sha256_digest(data: &[u8]) -> wharf_types::Digest {
    let mut h = Hasher::sha256();
    h.update(data);
    h.finish()
}
