//! What an owner's Redis is when it moves between hosts (`hhlctl move`): one bundle, its
//! first line the format, its second a JSON header (the owner, the port, the secret,
//! and each file of the data directory with its size and BLAKE2b-256), then the files'
//! bytes in that order and nothing after. Every reader checks every file against the
//! header as it reads; the header's own hash is the move's checksum, so one value says
//! that the same bytes and the same secret came out of one host and went into the
//! other. Pure: the format, its checks and the hashing; `host::redis_data` reads and
//! writes it.

use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::core::model::Model;

/// The first line of every bundle.
pub const MAGIC: &str = "hhl-redis-bundle 1";
/// The header line's most bytes: a thousand files' names and hashes fit many times.
pub const MAX_HEADER: usize = 256 * 1024;
/// The most files a data directory may hold to move (an RDB, an AOF directory's few).
pub const MAX_FILES: usize = 1000;
/// The most bytes a bundle may carry: far above a development Redis (hhl.yaml's
/// `limits.<owner>.redis` is its memory), and what a host's disk takes twice.
pub const MAX_BYTES: u64 = 16 << 30;

/// One file of the data directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Relative to the data directory: `6382.rdb`, `appendonlydir/6382.aof.1.base.rdb`.
    pub name: String,
    pub size: u64,
    /// BLAKE2b-256, hex.
    pub blake2b: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub owner: String,
    pub port: u16,
    /// The owner's Redis secret (`redis_acl::secret_ok`).
    pub secret: String,
    pub files: Vec<Entry>,
}

impl Header {
    /// The bytes after the header.
    pub fn total(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// The header line as written (one line of JSON, with its newline).
    pub fn line(&self) -> String {
        let mut s = serde_json::to_string(self).expect("a header serializes");
        s.push('\n');
        s
    }
}

/// What a host's import put in place, as its entry account hands it to the primary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub owner: String,
    /// The checksum of the bundle it placed (checked file by file as it wrote).
    pub checksum: String,
    pub files: usize,
    pub bytes: u64,
    /// A data directory that was already there for the port, kept under this name.
    pub kept: Option<String>,
    /// The data directory already held exactly this (a rerun): nothing was written.
    pub already: bool,
}

/// `<state_dir>/move/` on a host other than the primary: root's side of a move
/// (root:<entry> 0750), the bundle its export wrote and the receipt of its import.
pub fn dir(model: &Model) -> PathBuf {
    model.paths.state_dir.join("move")
}

/// The bundle `hhl-redis-export@<owner>` writes (root:<entry> 0640).
pub fn outgoing(model: &Model, owner: &str) -> PathBuf {
    dir(model).join(format!("{owner}.bundle"))
}

/// What `hhl-redis-import@<owner>` placed (root:<entry> 0640).
pub fn receipt(model: &Model, owner: &str) -> PathBuf {
    dir(model).join(format!("{owner}.receipt"))
}

/// `<state_dir>/move/in/`: the entry account's own (0700), where it receives a bundle.
pub fn incoming_dir(model: &Model) -> PathBuf {
    dir(model).join("in")
}

/// The bundle the entry account received for `owner`, which root's import reads.
pub fn incoming(model: &Model, owner: &str) -> PathBuf {
    incoming_dir(model).join(format!("{owner}.bundle"))
}

/// The units that export and import an owner's Redis data, as root, for `move`.
pub fn export_unit(owner: &str) -> String {
    format!("hhl-redis-export@{owner}.service")
}

pub fn import_unit(owner: &str) -> String {
    format!("hhl-redis-import@{owner}.service")
}

/// BLAKE2b-256 as the bundle uses it.
#[derive(Default)]
pub struct Hasher(Blake2b<U32>);

impl Hasher {
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    pub fn hex(self) -> String {
        self.0.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

pub fn hash_hex(bytes: &[u8]) -> String {
    let mut h = Hasher::default();
    h.update(bytes);
    h.hex()
}

/// The move's checksum: the header line's hash (it holds every file's).
pub fn checksum(header_line: &str) -> String {
    hash_hex(header_line.as_bytes())
}

/// Why `name` may not be a file of a bundle: one or two plain components (a file of
/// the data directory, or of one directory in it, as Redis's `appendonlydir`).
pub fn name_problem(name: &str) -> Option<String> {
    let shown = crate::core::error::excerpt(name);
    let parts: Vec<&str> = name.split('/').collect();
    if parts.len() > 2 {
        return Some(format!("`{shown}` is more than one directory deep"));
    }
    for p in &parts {
        let plain = !p.is_empty()
            && p.len() <= 255
            && !p.starts_with('.')
            && p.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !plain {
            return Some(format!("`{shown}` is not a plain file name"));
        }
    }
    None
}

/// The header line (without its newline), checked: well-formed, for `owner` and
/// `port` when given, every name plain and once, sizes within the bounds.
pub fn parse_header(line: &str, owner: &str, port: u16) -> Result<Header, String> {
    if line.len() > MAX_HEADER {
        return Err(format!("the header is over {MAX_HEADER} bytes"));
    }
    let h: Header = serde_json::from_str(line).map_err(|e| format!("the header is not one: {e}"))?;
    if h.owner != owner {
        return Err(format!(
            "the bundle is `{}`'s, not `{owner}`'s",
            crate::core::error::excerpt(&h.owner)
        ));
    }
    if h.port != port {
        return Err(format!(
            "the bundle is of Redis port {}, and `{owner}`'s is {port} here: the hosts' hhl.yaml differ (`hhlctl hosts` shows which commit each applied)",
            h.port
        ));
    }
    if !crate::core::redis_acl::secret_ok(&h.secret) {
        return Err("the bundle's secret is not one hhlctl makes (64 hex digits)".into());
    }
    if h.files.len() > MAX_FILES {
        return Err(format!("{} files; at most {MAX_FILES} move", h.files.len()));
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut total: u64 = 0;
    for f in &h.files {
        if let Some(p) = name_problem(&f.name) {
            return Err(p);
        }
        if !seen.insert(f.name.as_str()) {
            return Err(format!("`{}` is listed twice", f.name));
        }
        if f.blake2b.len() != 64 || !f.blake2b.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("`{}` has no BLAKE2b-256", f.name));
        }
        total = total.saturating_add(f.size);
    }
    // A name that is both a file and a directory of others.
    if let Some(f) = h
        .files
        .iter()
        .find(|f| seen.iter().any(|o| o.starts_with(&format!("{}/", f.name))))
    {
        return Err(format!("`{}` is a file and a directory", f.name));
    }
    if total > MAX_BYTES {
        return Err(format!("{total} bytes; at most {MAX_BYTES} move"));
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            owner: "dev2".into(),
            port: 6382,
            secret: "a".repeat(64),
            files: vec![
                Entry {
                    name: "6382.rdb".into(),
                    size: 3,
                    blake2b: hash_hex(b"abc"),
                },
                Entry {
                    name: "appendonlydir/6382.aof.1.incr.aof".into(),
                    size: 0,
                    blake2b: hash_hex(b""),
                },
            ],
        }
    }

    #[test]
    fn a_header_reads_back_and_its_hash_is_the_checksum() {
        let h = header();
        let line = h.line();
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
        assert_eq!(parse_header(line.trim_end(), "dev2", 6382).unwrap(), h);
        assert_eq!(h.total(), 3);
        assert_eq!(checksum(&line).len(), 64);
        let mut other = h.clone();
        other.secret = "b".repeat(64);
        assert_ne!(checksum(&line), checksum(&other.line()), "the secret counts");
    }

    #[test]
    fn refusals_say_what() {
        let line = |h: &Header| h.line().trim_end().to_string();
        let h = header();
        assert!(parse_header(&line(&h), "dev3", 6382)
            .unwrap_err()
            .contains("`dev2`'s, not `dev3`'s"));
        assert!(parse_header(&line(&h), "dev2", 6383).unwrap_err().contains("port 6382"));
        let mut bad = h.clone();
        bad.files[0].name = "../shadow".into();
        assert!(parse_header(&line(&bad), "dev2", 6382)
            .unwrap_err()
            .contains("not a plain file name"));
        bad.files[0].name = "a/b/c".into();
        assert!(parse_header(&line(&bad), "dev2", 6382)
            .unwrap_err()
            .contains("more than one directory deep"));
        bad.files[0].name = "appendonlydir".into();
        assert!(parse_header(&line(&bad), "dev2", 6382)
            .unwrap_err()
            .contains("a file and a directory"));
        let mut twice = h.clone();
        twice.files[1].name = "6382.rdb".into();
        assert!(parse_header(&line(&twice), "dev2", 6382)
            .unwrap_err()
            .contains("listed twice"));
        let mut secret = h.clone();
        secret.secret = "nope".into();
        assert!(parse_header(&line(&secret), "dev2", 6382)
            .unwrap_err()
            .contains("secret"));
        let mut big = h.clone();
        big.files[0].size = MAX_BYTES + 1;
        assert!(parse_header(&line(&big), "dev2", 6382).unwrap_err().contains("at most"));
        assert!(parse_header("{\"owner\":1}", "dev2", 6382)
            .unwrap_err()
            .contains("not one"));
        assert!(name_problem(".hidden").is_some() && name_problem("6382.rdb").is_none());
    }
}
