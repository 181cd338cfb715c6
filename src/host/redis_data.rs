//! An owner's Redis data directory and secret as one bundle (`core::redis_bundle`),
//! for `hhlctl move`: written from the data directory on the old host (root's export),
//! read and checked anywhere on its way, and put in place on the new host (root's
//! import) before that owner's Redis first starts there.
//!
//! The data directory is the owner's (its Redis and its code run as the owner's user),
//! so root reads and writes there as `reown` does: every entry opened from its
//! directory's descriptor with O_NOFOLLOW, and only regular files owned by that user
//! (or root) with one link are taken; a link planted there is never followed. Files
//! are placed in a new directory root made, then renamed into place; what was there
//! is kept aside, never deleted.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Seek, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rustix::fs::{openat, statat, AtFlags, Dir, FileType, Mode, OFlags, CWD};

use crate::core::model::{Instance, Model};
use crate::core::redis_bundle::{self as bundle, Entry, Hasher, Header, Receipt, MAGIC};
use crate::host::reown::open_dir;
use crate::host::{secrets, users};

const CHUNK: usize = 64 * 1024;

/// The owner's Redis in `model` (every host's instances) and its user's ids here.
pub fn redis_of<'m>(model: &'m Model, owner: &str) -> Result<(&'m Instance, (u32, u32))> {
    let inst = crate::core::redis_acl::of(model, owner)
        .with_context(|| format!("`{owner}` has no Redis in hhl.yaml, so there is no Redis data to move"))?;
    let ids = users::lookup(&inst.user).with_context(|| {
        format!(
            "unix user `{}` (of `{owner}`) does not exist on this host: run `hhlctl apply` here first",
            inst.user
        )
    })?;
    Ok((inst, ids))
}

/// The files a data directory holds that may move, by name (one directory deep), and
/// what was left out and why.
fn listing(dir: &OwnedFd, uid: u32) -> Result<(Vec<String>, Vec<String>)> {
    let mut names = Vec::new();
    let mut skipped = Vec::new();
    let mut walk =
        |fd: &OwnedFd, prefix: Option<&str>, names: &mut Vec<String>, subdirs: &mut Vec<String>| -> Result<()> {
            for entry in Dir::read_from(fd)? {
                let entry = entry?;
                let raw = entry.file_name();
                if raw == c"." || raw == c".." {
                    continue;
                }
                let name = String::from_utf8_lossy(raw.to_bytes()).into_owned();
                let rel = match prefix {
                    Some(p) => format!("{p}/{name}"),
                    None => name.clone(),
                };
                let st = match statat(fd, raw, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => st,
                    Err(rustix::io::Errno::NOENT) => continue,
                    Err(e) => return Err(io::Error::from(e)).with_context(|| format!("reading {rel}")),
                };
                let kind = FileType::from_raw_mode(st.st_mode as _);
                if let Some(p) = bundle::name_problem(&rel) {
                    skipped.push(format!("{rel}: {p}"));
                } else if kind == FileType::Directory && prefix.is_none() {
                    subdirs.push(name);
                } else if kind != FileType::RegularFile {
                    skipped.push(format!("{rel}: not a regular file"));
                } else if name.starts_with("temp-") {
                    // What a save that never finished left (Redis names them so).
                    skipped.push(format!("{rel}: an unfinished save's temporary file"));
                } else if st.st_uid != uid && st.st_uid != 0 {
                    skipped.push(format!("{rel}: owned by uid {}, not the owner's", st.st_uid));
                } else if st.st_nlink != 1 {
                    skipped.push(format!("{rel}: has {} links", st.st_nlink));
                } else {
                    names.push(rel);
                }
            }
            Ok(())
        };
    let mut subdirs = Vec::new();
    walk(dir, None, &mut names, &mut subdirs)?;
    for sub in subdirs {
        let fd = open_dir(dir, sub.as_str()).with_context(|| format!("opening {sub}"))?;
        let mut none = Vec::new();
        walk(&fd, Some(&sub), &mut names, &mut none)?;
    }
    names.sort();
    Ok((names, skipped))
}

/// File `rel` (one directory deep) of the directory `dir`, for reading: a regular file
/// owned by `uid` or root with one link, checked on the open descriptor.
fn open_in(dir: &OwnedFd, rel: &str, uid: u32) -> Result<(File, u64)> {
    let (sub, name) = match rel.split_once('/') {
        Some((s, n)) => (Some(open_dir(dir, s).with_context(|| format!("opening {s}"))?), n),
        None => (None, rel),
    };
    let at = sub.as_ref().unwrap_or(dir);
    let fd = openat(
        at,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io::Error::from)
    .with_context(|| format!("opening {rel} (a link there is refused)"))?;
    let f = File::from(fd);
    let meta = f.metadata()?;
    if !meta.is_file() || meta.nlink() != 1 || (meta.uid() != uid && meta.uid() != 0) {
        bail!("{rel} is no longer a regular file of the owner's with one link");
    }
    Ok((f, meta.len()))
}

/// Read `f` to its end in chunks, each handed to `each`; its hash and length.
fn stream(mut f: impl Read, mut each: impl FnMut(&[u8]) -> Result<()>) -> Result<(String, u64)> {
    let mut h = Hasher::default();
    let mut buf = vec![0u8; CHUNK];
    let mut n = 0u64;
    loop {
        let got = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(got) => got,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        h.update(&buf[..got]);
        each(&buf[..got])?;
        n += got as u64;
    }
    Ok((h.hex(), n))
}

/// The data directory's files as a bundle's entries (each hashed), and what was left
/// out. A directory that does not exist is an empty one (a Redis that never saved).
fn snapshot(dir: &Path, uid: u32) -> Result<(Vec<Entry>, Vec<String>)> {
    let fd = match open_dir(CWD, dir) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), Vec::new())),
        Err(e) => return Err(e).with_context(|| format!("opening {} (a link there is refused)", dir.display())),
    };
    let (names, skipped) = listing(&fd, uid).with_context(|| format!("listing {}", dir.display()))?;
    let mut files = Vec::new();
    for name in names {
        let (f, _) = open_in(&fd, &name, uid).with_context(|| format!("in {}", dir.display()))?;
        let (blake2b, size) = stream(f, |_| Ok(())).with_context(|| format!("reading {}/{name}", dir.display()))?;
        files.push(Entry { name, size, blake2b });
    }
    Ok((files, skipped))
}

/// Write `path` atomically through `body`: a new temporary file beside it (never
/// through a link: O_EXCL), owned and moded from the start, synced, renamed over.
fn write_atomic(
    path: &Path,
    mode: u32,
    ids: Option<(u32, u32)>,
    body: impl FnOnce(&mut File) -> Result<()>,
) -> Result<()> {
    let dir = path.parent().context("a file in a directory")?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let _ = fs::remove_file(&tmp);
    let result = (|| -> Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        if let Some((uid, gid)) = ids {
            std::os::unix::fs::fchown(&f, Some(uid), Some(gid))?;
        }
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        body(&mut f)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("writing {}", path.display()))
}

/// What an export wrote.
#[derive(Debug)]
pub struct Exported {
    pub checksum: String,
    pub files: usize,
    pub bytes: u64,
    /// What the data directory held that does not move, and why.
    pub skipped: Vec<String>,
    pub dir: PathBuf,
}

/// Root, on the host the owner leaves, its Redis stopped: the owner's data directory
/// and secret as a bundle at `out` (`mode`, owned by `ids`). The files are read twice
/// (hashed for the header, then copied and hashed again): one that changed between
/// is an error, never a bundle that lies.
pub fn export(model: &Model, owner: &str, out: &Path, mode: u32, ids: Option<(u32, u32)>) -> Result<Exported> {
    let (inst, (uid, _)) = redis_of(model, owner)?;
    let secret = secrets::read(model, owner).with_context(|| {
        format!(
            "no Redis secret of `{owner}` in {}: run `hhlctl apply` on this host",
            crate::core::redis_acl::secret_path(model, owner).display()
        )
    })?;
    let (files, skipped) = snapshot(&inst.dir, uid)?;
    let header = Header {
        owner: owner.into(),
        port: inst.port,
        secret,
        files,
    };
    let line = header.line();
    bundle::parse_header(line.trim_end(), owner, inst.port)
        .map_err(|e| anyhow::anyhow!("{}: {e}", inst.dir.display()))?;
    let dir = if header.files.is_empty() {
        None
    } else {
        Some(open_dir(CWD, &inst.dir).with_context(|| format!("opening {}", inst.dir.display()))?)
    };
    write_atomic(out, mode, ids, |w| {
        w.write_all(format!("{MAGIC}\n").as_bytes())?;
        w.write_all(line.as_bytes())?;
        for e in &header.files {
            let (f, _) = open_in(dir.as_ref().expect("files, so a directory"), &e.name, uid)?;
            let (hash, size) = stream(f.take(e.size + 1), |b| Ok(w.write_all(b)?))?;
            if hash != e.blake2b || size != e.size {
                bail!(
                    "{}/{} changed while it was exported: is the owner's Redis running? Stop it and export again",
                    inst.dir.display(),
                    e.name
                );
            }
        }
        Ok(())
    })?;
    Ok(Exported {
        checksum: bundle::checksum(&line),
        files: header.files.len(),
        bytes: header.total(),
        skipped,
        dir: inst.dir.clone(),
    })
}

/// Where a bundle's parts go as `read` checks them.
pub trait Sink {
    /// Every byte of the bundle, as read (a copy).
    fn raw(&mut self, _bytes: &[u8]) -> Result<()> {
        Ok(())
    }
    fn start(&mut self, _e: &Entry) -> Result<()> {
        Ok(())
    }
    fn chunk(&mut self, _bytes: &[u8]) -> Result<()> {
        Ok(())
    }
    /// The file's bytes all came and matched its hash.
    fn end(&mut self, _e: &Entry) -> Result<()> {
        Ok(())
    }
}

/// Checks only.
pub struct Check;
impl Sink for Check {}

/// A copy of the bundle, as read.
pub struct CopyTo<W: Write>(pub W);
impl<W: Write> Sink for CopyTo<W> {
    fn raw(&mut self, bytes: &[u8]) -> Result<()> {
        Ok(self.0.write_all(bytes)?)
    }
}

/// A bundle read and checked: its header and checksum.
#[derive(Debug)]
pub struct Verified {
    pub header: Header,
    pub checksum: String,
}

/// One line of at most `limit` bytes (its newline included).
fn line(r: &mut impl BufRead, limit: usize, what: &str) -> Result<String> {
    let mut buf = Vec::new();
    r.take(limit as u64 + 1).read_until(b'\n', &mut buf)?;
    if buf.last() != Some(&b'\n') {
        bail!("the bundle's {what} is missing, cut short or over {limit} bytes");
    }
    String::from_utf8(buf).map_err(|_| anyhow::anyhow!("the bundle's {what} is not UTF-8"))
}

/// Read a bundle from `r`, for `owner`'s Redis on `port`: every file checked against
/// its hash as it comes (handed to `sink`), and nothing after the last. Reads no more
/// than the header says.
pub fn read(r: impl Read, owner: &str, port: u16, sink: &mut impl Sink) -> Result<Verified> {
    let mut r = BufReader::with_capacity(CHUNK, r);
    let magic = line(&mut r, MAGIC.len() + 1, "first line")?;
    if magic.trim_end() != MAGIC {
        bail!("not a bundle of this hhlctl (its first line is not `{MAGIC}`)");
    }
    sink.raw(magic.as_bytes())?;
    let head = line(&mut r, bundle::MAX_HEADER, "header")?;
    let header = bundle::parse_header(head.trim_end(), owner, port).map_err(anyhow::Error::msg)?;
    sink.raw(head.as_bytes())?;
    let mut buf = vec![0u8; CHUNK];
    for e in &header.files {
        sink.start(e)?;
        let mut h = Hasher::default();
        let mut left = e.size;
        while left > 0 {
            let want = left.min(CHUNK as u64) as usize;
            let got = match r.read(&mut buf[..want]) {
                Ok(0) => bail!(
                    "the bundle ends inside {} ({} of {} bytes came): the transfer was cut",
                    e.name,
                    e.size - left,
                    e.size
                ),
                Ok(got) => got,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err.into()),
            };
            h.update(&buf[..got]);
            sink.raw(&buf[..got])?;
            sink.chunk(&buf[..got])?;
            left -= got as u64;
        }
        if h.hex() != e.blake2b {
            bail!(
                "{} does not match its BLAKE2b-256 in the header: the bundle was damaged on its way",
                e.name
            );
        }
        sink.end(e)?;
    }
    if r.read(&mut buf[..1])? != 0 {
        bail!("the bundle has bytes after its last file");
    }
    Ok(Verified {
        checksum: bundle::checksum(&head),
        header,
    })
}

/// The bundle from `r` copied to `into` (atomically, 0600), checked as it comes: what
/// the entry account does with what the primary sends.
pub fn receive(r: impl Read, into: &Path, owner: &str, port: u16) -> Result<Verified> {
    let mut verified = None;
    write_atomic(into, 0o600, None, |f| {
        verified = Some(read(r, owner, port, &mut CopyTo(f))?);
        Ok(())
    })?;
    Ok(verified.expect("written, so read"))
}

/// A regular file with one link, owned by `uid`, opened without following a link.
pub fn open_bundle(path: &Path, uid: u32) -> Result<File> {
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .with_context(|| format!("opening {} (a link there is refused)", path.display()))?;
    let meta = f.metadata()?;
    if !meta.is_file() || meta.nlink() != 1 || meta.uid() != uid {
        bail!(
            "{} is not a regular file of uid {uid} with one link; it is not taken",
            path.display()
        );
    }
    Ok(f)
}

/// The bundle at `path` (a regular file of `uid`), checked whole.
pub fn verify(path: &Path, uid: u32, owner: &str, port: u16) -> Result<Verified> {
    read(open_bundle(path, uid)?, owner, port, &mut Check).with_context(|| format!("checking {}", path.display()))
}

/// Writes each file of a bundle into a new directory root made.
struct Place {
    dir: PathBuf,
    ids: (u32, u32),
    file: Option<File>,
}

impl Sink for Place {
    fn start(&mut self, e: &Entry) -> Result<()> {
        if let Some((sub, _)) = e.name.split_once('/') {
            let d = self.dir.join(sub);
            if !d.is_dir() {
                fs::create_dir(&d).with_context(|| format!("creating {}", d.display()))?;
            }
        }
        let path = self.dir.join(&e.name);
        let f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        self.file = Some(f);
        Ok(())
    }
    fn chunk(&mut self, bytes: &[u8]) -> Result<()> {
        Ok(self.file.as_mut().expect("started").write_all(bytes)?)
    }
    fn end(&mut self, _e: &Entry) -> Result<()> {
        let f = self.file.take().expect("started");
        f.sync_all()?;
        std::os::unix::fs::fchown(&f, Some(self.ids.0), Some(self.ids.1))?;
        // What Redis itself writes under its unit's UMask=0027.
        f.set_permissions(fs::Permissions::from_mode(0o640))?;
        Ok(())
    }
}

/// Root, on the host the owner comes to, its Redis not running here: the bundle at
/// `path` (a file of `from_uid`: the entry account's, or root's on the primary)
/// checked whole, then its files written into a new directory and renamed into the
/// owner's data directory; a data directory already there (an earlier stay on this
/// host) is kept aside as `<port>.before-move-<time>`. The secret goes where apply
/// keeps it. A directory that already holds exactly this bundle is left as it is.
pub fn import(model: &Model, owner: &str, path: &Path, from_uid: u32) -> Result<Receipt> {
    let (inst, ids) = redis_of(model, owner)?;
    let mut f = open_bundle(path, from_uid)?;
    let verified =
        read(&mut f, owner, inst.port, &mut Check).with_context(|| format!("checking {}", path.display()))?;
    let header = &verified.header;
    let receipt = |kept: Option<String>, already: bool| Receipt {
        owner: owner.into(),
        checksum: verified.checksum.clone(),
        files: header.files.len(),
        bytes: header.total(),
        kept,
        already,
    };
    let mut want = header.files.clone();
    want.sort_by(|a, b| a.name.cmp(&b.name));
    if inst.dir.is_dir() && secrets::read(model, owner).as_deref() == Some(header.secret.as_str()) {
        let (have, _) = snapshot(&inst.dir, ids.0)?;
        if have == want {
            return Ok(receipt(None, true));
        }
    }
    let parent = inst.dir.parent().context("a data directory has a parent")?;
    fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let port = inst.port;
    let incoming = parent.join(format!(".{port}.incoming"));
    // A killed import's: root's own, in a directory only root writes.
    if fs::symlink_metadata(&incoming).is_ok() {
        fs::remove_dir_all(&incoming).with_context(|| format!("removing {}", incoming.display()))?;
    }
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&incoming)
        .with_context(|| format!("creating {}", incoming.display()))?;
    f.rewind()?;
    let mut place = Place {
        dir: incoming.clone(),
        ids,
        file: None,
    };
    let placed = read(&mut f, owner, port, &mut place).and_then(|_| {
        for e in fs::read_dir(&incoming)? {
            let e = e?;
            if e.file_type()?.is_dir() {
                std::os::unix::fs::lchown(e.path(), Some(ids.0), Some(ids.1))?;
                fs::set_permissions(e.path(), fs::Permissions::from_mode(0o750))?;
            }
        }
        std::os::unix::fs::lchown(&incoming, Some(ids.0), Some(ids.1))?;
        fs::set_permissions(&incoming, fs::Permissions::from_mode(0o750))?;
        Ok(())
    });
    if let Err(e) = placed {
        let _ = fs::remove_dir_all(&incoming);
        return Err(e.context(format!("placing the bundle in {}", incoming.display())));
    }
    let mut kept = None;
    match fs::symlink_metadata(&inst.dir) {
        Ok(m) if m.is_dir() => {
            let empty = fs::read_dir(&inst.dir)?.next().is_none();
            if empty {
                fs::remove_dir(&inst.dir).with_context(|| format!("removing the empty {}", inst.dir.display()))?;
            } else {
                let aside = parent.join(format!("{port}.before-move-{}", now_secs()));
                fs::rename(&inst.dir, &aside)
                    .with_context(|| format!("keeping {} aside as {}", inst.dir.display(), aside.display()))?;
                kept = Some(aside.display().to_string());
            }
        }
        Ok(_) => bail!(
            "{} is not a directory; move it away and run the move again",
            inst.dir.display()
        ),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", inst.dir.display())),
    }
    fs::rename(&incoming, &inst.dir)
        .with_context(|| format!("moving {} to {}", incoming.display(), inst.dir.display()))?;
    File::open(parent)?.sync_all()?;
    // The secret: root:<owner's group> 0640, and the entry account's copy, as apply
    // keeps them; apply writes the Redis's ACL from it.
    let text = format!("{}\n", header.secret);
    let secret = crate::core::redis_acl::secret_path(model, owner);
    crate::host::fsapply::write_secret(&secret, text.as_bytes(), 0o640, Some((0, ids.1)))?;
    if let Some((_, entry_gid)) = users::lookup(&model.access.entry) {
        let copy = crate::core::redis_acl::entry_secret_path(model, owner);
        crate::host::fsapply::write_secret(&copy, text.as_bytes(), 0o640, Some((0, entry_gid)))?;
    }
    Ok(receipt(kept, false))
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_for(files: &[(&str, &[u8])]) -> (Header, Vec<u8>) {
        let header = Header {
            owner: "dev2".into(),
            port: 6382,
            secret: "c".repeat(64),
            files: files
                .iter()
                .map(|(n, b)| Entry {
                    name: n.to_string(),
                    size: b.len() as u64,
                    blake2b: bundle::hash_hex(b),
                })
                .collect(),
        };
        let mut bytes = format!("{MAGIC}\n{}", header.line()).into_bytes();
        for (_, b) in files {
            bytes.extend_from_slice(b);
        }
        (header, bytes)
    }

    #[test]
    fn a_bundle_is_read_back_and_checked_to_its_last_byte() {
        let (header, bytes) = header_for(&[("6382.rdb", b"REDIS0011..."), ("appendonlydir/a.aof", b"")]);
        let mut copy = Vec::new();
        let v = read(&bytes[..], "dev2", 6382, &mut CopyTo(&mut copy)).unwrap();
        assert_eq!(v.header, header);
        assert_eq!(v.checksum, bundle::checksum(&header.line()));
        assert_eq!(copy, bytes);

        let cut = &bytes[..bytes.len() - 2];
        let e = read(cut, "dev2", 6382, &mut Check).unwrap_err().to_string();
        assert!(e.contains("ends inside 6382.rdb (10 of 12 bytes came)"), "{e}");
        let mut more = bytes.clone();
        more.push(b'x');
        let e = read(&more[..], "dev2", 6382, &mut Check).unwrap_err().to_string();
        assert!(e.contains("bytes after its last file"), "{e}");
        let mut damaged = bytes.clone();
        let at = damaged.len() - 3;
        damaged[at] ^= 1;
        let e = read(&damaged[..], "dev2", 6382, &mut Check).unwrap_err().to_string();
        assert!(e.contains("6382.rdb does not match its BLAKE2b-256"), "{e}");
        let e = read(&b"GIF89a\n"[..], "dev2", 6382, &mut Check)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a bundle"), "{e}");
    }

    /// Unprivileged: only regular files of the owner with one link are listed; a link
    /// (to a file outside) and a save's temporary file are left out, and said.
    #[test]
    fn a_data_directory_is_listed_without_following_links() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("6382");
        fs::create_dir_all(data.join("appendonlydir")).unwrap();
        fs::write(data.join("6382.rdb"), "rdb").unwrap();
        fs::write(data.join("appendonlydir/6382.aof.1.base.rdb"), "base").unwrap();
        fs::write(data.join("temp-123.rdb"), "half").unwrap();
        fs::write(dir.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), data.join("stolen")).unwrap();
        let uid = fs::metadata(&data).unwrap().uid();
        let (files, skipped) = snapshot(&data, uid).unwrap();
        let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["6382.rdb", "appendonlydir/6382.aof.1.base.rdb"]);
        assert_eq!(files[0].blake2b, bundle::hash_hex(b"rdb"));
        assert!(
            skipped.iter().any(|s| s.starts_with("stolen: not a regular file")),
            "{skipped:?}"
        );
        assert!(skipped.iter().any(|s| s.starts_with("temp-123.rdb")), "{skipped:?}");
        // Another owner's files are not taken.
        let (files, skipped) = snapshot(&data, uid + 1).unwrap();
        if uid != 0 {
            assert!(files.is_empty() && skipped.len() >= 2, "{files:?} {skipped:?}");
        }
        assert!(snapshot(&dir.path().join("none"), uid).unwrap().0.is_empty());
    }
}
