//! Helpers shared by the layer tests: tar builders (including raw, hostile headers) and tree
//! snapshots for comparisons.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use sha2::{Digest as _, Sha256};
use tar::{Builder, EntryType, Header};

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

/// A tar under construction, with raw control over names (the tar crate refuses `..`).
pub struct Tar(pub Builder<Vec<u8>>);

impl Default for Tar {
    fn default() -> Self {
        Self::new()
    }
}

impl Tar {
    pub fn new() -> Self {
        Tar(Builder::new(Vec::new()))
    }

    fn header(name: &[u8], kind: EntryType, mode: u32, size: u64) -> Header {
        let mut h = Header::new_gnu();
        {
            let gnu = h.as_gnu_mut().unwrap();
            assert!(name.len() <= 100, "use long() for long names");
            gnu.name[..name.len()].copy_from_slice(name);
        }
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(1_600_000_000);
        h
    }

    fn link_header(name: &[u8], kind: EntryType, target: &[u8]) -> Header {
        let mut h = Self::header(name, kind, 0o777, 0);
        h.as_gnu_mut().unwrap().linkname[..target.len()].copy_from_slice(target);
        h
    }

    pub fn push(&mut self, mut h: Header, data: &[u8]) -> &mut Self {
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }

    pub fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.file_mode(name, data, 0o644)
    }

    pub fn file_mode(&mut self, name: &str, data: &[u8], mode: u32) -> &mut Self {
        let h = Self::header(name.as_bytes(), EntryType::Regular, mode, data.len() as u64);
        self.push(h, data)
    }

    pub fn file_owned(&mut self, name: &str, data: &[u8], mode: u32, uid: u64, gid: u64, mtime: u64) -> &mut Self {
        let mut h = Self::header(name.as_bytes(), EntryType::Regular, mode, data.len() as u64);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(mtime);
        self.push(h, data)
    }

    pub fn dir(&mut self, name: &str, mode: u32, mtime: u64) -> &mut Self {
        let mut h = Self::header(name.as_bytes(), EntryType::Directory, mode, 0);
        h.set_mtime(mtime);
        self.push(h, &[])
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        let h = Self::link_header(name.as_bytes(), EntryType::Symlink, target.as_bytes());
        self.push(h, &[])
    }

    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        let h = Self::link_header(name.as_bytes(), EntryType::Link, target.as_bytes());
        self.push(h, &[])
    }

    pub fn device(&mut self, name: &str, kind: EntryType, major: u32, minor: u32) -> &mut Self {
        let mut h = Self::header(name.as_bytes(), kind, 0o660, 0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.push(h, &[])
    }

    pub fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        self.0.append_pax_extensions(records.iter().map(|(k, v)| (*k, *v))).unwrap();
        self
    }

    /// A GNU long-name record followed by a regular file.
    pub fn gnu_long_file(&mut self, name: &[u8], data: &[u8]) -> &mut Self {
        let mut long = name.to_vec();
        long.push(0);
        let h = Self::header(b"././@LongLink", EntryType::GNULongName, 0o644, long.len() as u64);
        self.push(h, &long);
        let h = Self::header(b"placeholder", EntryType::Regular, 0o644, data.len() as u64);
        self.push(h, data)
    }

    /// A GNU long-link record followed by a symlink or hard link.
    pub fn gnu_long_link(&mut self, name: &str, kind: EntryType, target: &[u8]) -> &mut Self {
        let mut long = target.to_vec();
        long.push(0);
        let h = Self::header(b"././@LongLink", EntryType::GNULongLink, 0o644, long.len() as u64);
        self.push(h, &long);
        let h = Self::link_header(name.as_bytes(), kind, b"placeholder");
        self.push(h, &[])
    }

    pub fn finish(&mut self) -> Vec<u8> {
        let b = std::mem::replace(&mut self.0, Builder::new(Vec::new()));
        b.into_inner().unwrap()
    }
}

/// Everything about a tree that a layer can carry, by relative path.
pub fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let mut names: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        for name in names {
            let p = dir.join(&name);
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let m = fs::symlink_metadata(&p).unwrap();
            let ft = m.file_type();
            let what = if ft.is_dir() {
                "dir".to_string()
            } else if ft.is_symlink() {
                format!("link->{}", fs::read_link(&p).unwrap().display())
            } else if ft.is_file() {
                format!("file {}", sha256(&fs::read(&p).unwrap()))
            } else if ft.is_char_device() {
                format!("chr {}:{}", rustix::fs::major(m.rdev()), rustix::fs::minor(m.rdev()))
            } else if ft.is_block_device() {
                format!("blk {}:{}", rustix::fs::major(m.rdev()), rustix::fs::minor(m.rdev()))
            } else {
                "fifo".to_string()
            };
            let mtime = if ft.is_dir() { String::new() } else { format!(" mtime={}", m.mtime()) };
            out.insert(rel, format!("{what} mode={:o} uid={} gid={}{mtime}", m.mode() & 0o7777, m.uid(), m.gid()));
            if ft.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    walk(root, root, &mut out);
    out
}

/// Names of everything directly in `dir`, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    v.sort();
    v
}
