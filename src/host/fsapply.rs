//! The filesystem edge: compare artifacts with what is on disk, and write them
//! atomically (temp file in the same directory, fsync, rename, fsync the directory)
//! under an injected root, so tests use real files in a temp dir.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{symlink, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::core::artifact::{Artifact, Change, Content, FileChange, Owner};
use crate::core::config::RawPaths;
use crate::core::layout;
use crate::host::{fault, users};

/// Whether file owners are part of the job: yes on the live system; no when rendering
/// into a directory for review, or in tests that run as an unprivileged user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    Apply,
    Ignore,
}

/// (uid, gid) for `owner`, or None when its user does not exist (yet).
pub fn ids(owner: &Owner) -> Option<(u32, u32)> {
    match owner {
        Owner::Root => Some((0, 0)),
        Owner::User(u) => users::lookup(u),
        Owner::ReadBy(u) => users::lookup(u).map(|(_, gid)| (0, gid)),
        Owner::Entry(e, u) => users::lookup(e)
            .zip(users::lookup(u))
            .map(|((uid, _), (_, gid))| (uid, gid)),
    }
}

fn owner_name(owner: &Owner) -> &str {
    match owner {
        Owner::Root => "root",
        Owner::User(u) | Owner::ReadBy(u) | Owner::Entry(_, u) => u,
    }
}

/// `path` (absolute on the host) under `root`.
pub fn under(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

/// What hhlctl generated last time, so files it no longer generates can be removed.
/// Plain text, one absolute path a line, so the package's purge script can read it
/// with no hhlctl at hand.
#[derive(Debug, Default)]
pub struct Manifest {
    pub files: BTreeSet<PathBuf>,
}

pub const MANIFEST: &str = "generated.list";

impl Manifest {
    /// The list as stored, trusted only within what the layout `paths` could have
    /// generated (`layout::generatable`): a line naming anything else, a relative path,
    /// garbage or a directory is left out, with a warning naming the file and line, so a
    /// damaged or doctored list can never make hhlctl remove what it did not generate.
    /// Apply rewrites the list, which drops those lines.
    pub fn load(root: &Path, paths: &RawPaths) -> Result<(Manifest, Vec<String>)> {
        let p = under(root, &paths.state_dir.join(MANIFEST));
        let text = match fs::read_to_string(&p) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Manifest::default(), Vec::new())),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                return Ok((
                    Manifest::default(),
                    vec![format!(
                        "{} is not text; ignored (apply writes a fresh one; files it listed are no longer removed by hhlctl: check `hhlctl plan`)",
                        p.display()
                    )],
                ))
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", p.display())),
        };
        let mut files = BTreeSet::new();
        let mut warnings = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = format!("{}:{}", p.display(), n + 1);
            let path = Path::new(line);
            let why = if !path.is_absolute() {
                Some(format!("`{line}` is not an absolute path"))
            } else if !layout::generatable(paths, path) {
                Some(format!(
                    "{line} is not a file hhlctl generates under the paths in hhl.yaml (if it is a leftover of an older layout, delete it by hand)"
                ))
            } else if fs::symlink_metadata(under(root, path)).is_ok_and(|m| m.is_dir()) {
                Some(format!("{line} is a directory, and hhlctl never removes directories"))
            } else {
                None
            };
            match why {
                Some(why) => warnings.push(format!(
                    "{at}: {why}; ignored, and dropped from the list by the next apply"
                )),
                None => {
                    files.insert(path.to_path_buf());
                }
            }
        }
        Ok((Manifest { files }, warnings))
    }

    /// Both lists: what apply records before it writes, so a run killed midway leaves
    /// every file it may have written listed (and removable later).
    pub fn union(&self, other: &Manifest) -> Manifest {
        Manifest {
            files: self.files.union(&other.files).cloned().collect(),
        }
    }

    pub fn of(artifacts: &[Artifact]) -> Manifest {
        Manifest {
            files: artifacts
                .iter()
                .filter(|a| a.is_generated())
                .map(|a| a.path.clone())
                .collect(),
        }
    }

    pub fn store(&self, root: &Path, state_dir: &Path) -> Result<()> {
        let mut text = String::from("# Files generated by hhlctl apply; removed by `apt purge hhlctl`.\n");
        for f in &self.files {
            text += &format!("{}\n", f.display());
        }
        write_file(&under(root, &state_dir.join(MANIFEST)), text.as_bytes(), 0o644)
    }
}

fn differs(root: &Path, a: &Artifact, own: Ownership) -> io::Result<Option<bool>> {
    let p = under(root, &a.path);
    let meta = match fs::symlink_metadata(&p) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mode_differs = meta.permissions().mode() & 0o7777 != a.mode;
    let owner_differs = || own == Ownership::Apply && ids(&a.owner) != Some((meta.uid(), meta.gid()));
    Ok(Some(match &a.content {
        Content::File(bytes) => !meta.is_file() || mode_differs || owner_differs() || fs::read(&p)? != *bytes,
        Content::Symlink(target) => !meta.file_type().is_symlink() || fs::read_link(&p)? != *target,
        // A directory's mode and owner count only on the live system (render --out and
        // plan --root report directories only when missing).
        Content::Dir => !meta.is_dir() || (own == Ownership::Apply && mode_differs) || owner_differs(),
        Content::Seed(_) => false,
    }))
}

/// Compare `artifacts` with the disk under `root`; files in `previous` that are no
/// longer generated are `Removed`. Directories are reported only when missing.
pub fn diff(root: &Path, artifacts: &[Artifact], previous: &Manifest, own: Ownership) -> Result<Vec<FileChange>> {
    let mut out = Vec::new();
    for a in artifacts {
        let change =
            match differs(root, a, own).with_context(|| format!("reading {}", under(root, &a.path).display()))? {
                None => Change::Added,
                Some(true) => Change::Changed,
                Some(false) => Change::Unchanged,
            };
        if !(a.is_dir() && change == Change::Unchanged) {
            out.push(FileChange {
                path: a.path.clone(),
                change,
                dir: a.is_dir(),
            });
        }
    }
    let now = Manifest::of(artifacts);
    for gone in previous.files.difference(&now.files) {
        if fs::symlink_metadata(under(root, gone)).is_ok_and(|m| !m.is_dir()) {
            out.push(FileChange {
                path: gone.clone(),
                change: Change::Removed,
                dir: false,
            });
        }
    }
    Ok(out)
}

/// Paths `apply` writes: those added or changed.
pub fn written(changes: &[FileChange]) -> BTreeSet<&Path> {
    changes
        .iter()
        .filter(|c| matches!(c.change, Change::Added | Change::Changed))
        .map(|c| c.path.as_path())
        .collect()
}

/// Bring the disk under `root` to `artifacts` and remove `removed` files. Each write
/// is atomic; unchanged files are not touched.
pub fn apply(root: &Path, artifacts: &[Artifact], changes: &[FileChange], own: Ownership) -> Result<()> {
    let changed = written(changes);
    let mut first = true;
    for a in artifacts.iter().filter(|a| changed.contains(a.path.as_path())) {
        let fault = (first && matches!(a.content, Content::File(_))).then_some("apply:temp-written");
        write_artifact_at(root, a, own, fault)?;
        if std::mem::take(&mut first) {
            fault::point("apply:first-file");
        }
    }
    for c in changes.iter().filter(|c| c.change == Change::Removed) {
        let p = under(root, &c.path);
        // Never a directory, whatever the list said.
        if fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
            continue;
        }
        fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
        // Drop the `<unit>.d/` directory it leaves empty; ignore a non-empty one.
        if let Some(parent) = p.parent() {
            let _ = fs::remove_dir(parent);
        }
    }
    Ok(())
}

pub fn write_artifact(root: &Path, a: &Artifact, own: Ownership) -> Result<()> {
    write_artifact_at(root, a, own, None)
}

/// `write_artifact`; a file write dies at fault step `fault` (see `fault`) once its
/// temp file is complete.
fn write_artifact_at(root: &Path, a: &Artifact, own: Ownership, fault: Option<&str>) -> Result<()> {
    let p = under(root, &a.path);
    let owner = match own {
        Ownership::Ignore => None,
        Ownership::Apply => Some(ids(&a.owner).with_context(|| {
            format!(
                "{} should belong to unix user `{}`, who does not exist; create the user, or set `users.create: true` in hhl.yaml",
                p.display(),
                owner_name(&a.owner)
            )
        })?),
    };
    match &a.content {
        Content::File(bytes) => write_file_at(&p, bytes, a.mode, owner, fault),
        Content::Symlink(target) => replace_symlink(&p, target),
        Content::Seed(target) => match symlink(target, &p) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                Err(e).with_context(|| format!("linking {} -> {}", p.display(), target.display()))
            }
            _ => {
                if let Some((uid, gid)) = owner {
                    std::os::unix::fs::lchown(&p, Some(uid), Some(gid))
                        .with_context(|| format!("setting the owner of {}", p.display()))?;
                }
                Ok(())
            }
        },
        Content::Dir => ensure_dir(&p, a.mode, owner),
    }
}

/// Make directory `p` (mode, owner) without following a link at its place: some of
/// these directories sit in another user's (the entry account's `app/`), who could
/// swap one for a link to `/etc` between our check and our chown. The owner and mode
/// are set on the opened directory (fchown, fchmod), never by path.
fn ensure_dir(p: &Path, mode: u32, owner: Option<(u32, u32)>) -> Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.file_type().is_symlink() => anyhow::bail!(
            "{} is a symbolic link, where hhlctl keeps a directory; a link there is refused, never followed\n  \
             hint: remove the link (hhlctl did not make it) and run apply again",
            p.display()
        ),
        Ok(m) if !m.is_dir() => anyhow::bail!(
            "{} is not a directory, where hhlctl keeps one\n  hint: move it away and run apply again",
            p.display()
        ),
        Ok(_) => {}
        Err(_) => fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))?,
    }
    let dir = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(p)
        .with_context(|| format!("opening {} (a link there is refused)", p.display()))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::fchown(&dir, Some(uid), Some(gid))
            .with_context(|| format!("setting the owner of {}", p.display()))?;
    }
    dir.set_permissions(fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting mode of {}", p.display()))
}

fn temp_beside(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}{TEMP_MARK}{}", std::process::id()))
}

const TEMP_MARK: &str = ".hhl-tmp.";

/// Remove the temp files (`.<name>.hhl-tmp.<pid>`) that writers killed midway left in
/// `dir`; those of a process still running are its own business. Returns the paths
/// removed.
pub fn clear_temps(dir: &Path) -> Vec<PathBuf> {
    let mut gone = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return gone;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.rsplit_once(TEMP_MARK).map(|(_, pid)| pid) else {
            continue;
        };
        let dead = pid.parse::<u32>().is_ok_and(|pid| !alive(pid));
        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
        if name.starts_with('.') && dead && !is_dir && fs::remove_file(e.path()).is_ok() {
            gone.push(e.path());
        }
    }
    gone
}

/// Remove every temp file (`.<name>.hhl-tmp.<pid>`) in `dir` but this process's own,
/// whether or not a process with that pid runs now: for the directories only apply
/// writes, swept while it holds its lock, where a pid reused since the kill must not
/// keep a copy of a secret alive. Returns the paths removed.
pub fn clear_all_temps(dir: &Path) -> Vec<PathBuf> {
    let mut gone = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return gone;
    };
    let mine = std::process::id().to_string();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.rsplit_once(TEMP_MARK).map(|(_, pid)| pid) else {
            continue;
        };
        let is_file = e.file_type().is_ok_and(|t| !t.is_dir());
        if name.starts_with('.') && pid != mine && is_file && fs::remove_file(e.path()).is_ok() {
            gone.push(e.path());
        }
    }
    gone
}

/// The `paths:` of hhl.yaml that cannot work on this host (under `root`) because a
/// file stands where hhlctl needs a directory: the directory itself, or one of its
/// parents (for the rule files, their directory). Key under `paths:` and why.
pub fn file_where_a_directory_belongs(root: &Path, paths: &RawPaths) -> Vec<(&'static str, String)> {
    let dirs = [
        ("hhl_root", &paths.hhl_root, true),
        ("redis_conf_dir", &paths.redis_conf_dir, true),
        ("redis_data_dir", &paths.redis_data_dir, true),
        ("unit_dir", &paths.unit_dir, true),
        ("state_dir", &paths.state_dir, true),
        ("log_dir", &paths.log_dir, true),
        ("entry_home", &paths.entry_home, true),
        ("polkit_rules", &paths.polkit_rules, false),
        ("rsyslog_conf", &paths.rsyslog_conf, false),
    ];
    let mut out = Vec::new();
    for (key, path, is_dir) in dirs {
        let dir = if is_dir { Some(path.as_path()) } else { path.parent() };
        let Some(dir) = dir else { continue };
        // The nearest part of the path that exists must be a directory.
        let blocking = dir
            .ancestors()
            .find(|a| fs::metadata(under(root, a)).is_ok())
            .filter(|a| !fs::metadata(under(root, a)).is_ok_and(|m| m.is_dir()));
        if let Some(b) = blocking {
            let why = if b == dir {
                format!("paths.{key}: {} is a file, where hhlctl needs a directory", b.display())
            } else {
                format!(
                    "paths.{key}: {} is a file, so {} cannot be made inside it",
                    b.display(),
                    dir.display()
                )
            };
            out.push((key, why));
        }
    }
    out
}

/// Whether process `pid` runs (in our PID namespace); our own counts as dead, for a
/// temp file of ours is never left over on purpose.
pub fn alive(pid: u32) -> bool {
    pid != std::process::id() && Path::new(&format!("/proc/{pid}")).exists()
}

/// Write `bytes` to `path` atomically: readers see the old file or the new one, never a part.
pub fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    write_file_owned(path, bytes, mode, None)
}

/// `write_file`, owned by (uid, gid) from the moment it appears.
pub fn write_file_owned(path: &Path, bytes: &[u8], mode: u32, owner: Option<(u32, u32)>) -> Result<()> {
    write_file_at(path, bytes, mode, owner, None)
}

/// `write_file_owned` for a secret: the test hook `secrets:temp-written` can kill the
/// writer between its temp copy and the rename (what apply's sweep then removes).
pub fn write_secret(path: &Path, bytes: &[u8], mode: u32, owner: Option<(u32, u32)>) -> Result<()> {
    write_file_at(path, bytes, mode, owner, Some("secrets:temp-written"))
}

fn write_file_at(path: &Path, bytes: &[u8], mode: u32, owner: Option<(u32, u32)>, fault: Option<&str>) -> Result<()> {
    let dir = path.parent().context("path has no parent directory")?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = temp_beside(path);
    let result = (|| -> io::Result<()> {
        // Owner-only from the moment it exists (a secret's copy included); the
        // mode asked for is set once the owner is.
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::fchown(&f, Some(uid), Some(gid))?;
        }
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        if let Some(step) = fault {
            fault::point(step);
        }
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("writing {}", path.display()))
}

/// Point `path` at `target` atomically (new link beside it, then rename over).
pub fn replace_symlink(path: &Path, target: &Path) -> Result<()> {
    let dir = path.parent().context("path has no parent directory")?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = temp_beside(path);
    let _ = fs::remove_file(&tmp);
    symlink(target, &tmp)
        .and_then(|_| fs::rename(&tmp, path))
        .with_context(|| format!("linking {} -> {}", path.display(), target.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A link planted where a directory belongs is refused, and what it points at
    /// keeps its mode.
    #[test]
    fn a_link_where_a_directory_belongs_is_refused_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::create_dir(&victim).unwrap();
        fs::set_permissions(&victim, fs::Permissions::from_mode(0o700)).unwrap();
        let planted = dir.path().join("releases");
        symlink(&victim, &planted).unwrap();
        let a = Artifact::dir("/releases", 0o2775);
        let e = write_artifact(dir.path(), &a, Ownership::Ignore).unwrap_err();
        assert!(
            format!("{e:#}").contains(
                "releases is a symbolic link, where hhlctl keeps a directory; a link there is refused, never followed"
            ),
            "{e:#}"
        );
        assert_eq!(fs::metadata(&victim).unwrap().permissions().mode() & 0o7777, 0o700);
        // A real directory gets its mode.
        fs::remove_file(&planted).unwrap();
        write_artifact(dir.path(), &a, Ownership::Ignore).unwrap();
        assert_eq!(fs::metadata(&planted).unwrap().permissions().mode() & 0o7777, 0o2775);
    }

    #[test]
    fn diff_then_apply_then_nothing_left() {
        let root = tempfile::tempdir().unwrap();
        let arts = vec![
            Artifact::file("/etc/a.conf", "one\n", 0o644),
            Artifact::symlink("/etc/w/x.service", "/usr/lib/x.service"),
            Artifact::dir("/opt/d", 0o755),
        ];
        let d = diff(root.path(), &arts, &Manifest::default(), Ownership::Ignore).unwrap();
        assert!(d.iter().all(|c| c.change == Change::Added), "{d:?}");
        apply(root.path(), &arts, &d, Ownership::Ignore).unwrap();
        assert_eq!(fs::read_to_string(root.path().join("etc/a.conf")).unwrap(), "one\n");
        let again = diff(root.path(), &arts, &Manifest::of(&arts), Ownership::Ignore).unwrap();
        assert!(again.iter().all(|c| c.change == Change::Unchanged), "{again:?}");

        let fewer = vec![Artifact::file("/etc/a.conf", "two\n", 0o644)];
        let d = diff(root.path(), &fewer, &Manifest::of(&arts), Ownership::Ignore).unwrap();
        let kinds: Vec<_> = d.iter().map(|c| (c.path.to_str().unwrap(), c.change)).collect();
        assert_eq!(
            kinds,
            [("/etc/a.conf", Change::Changed), ("/etc/w/x.service", Change::Removed)]
        );
        apply(root.path(), &fewer, &d, Ownership::Ignore).unwrap();
        assert!(!root.path().join("etc/w").exists(), "empty directory left behind");
    }

    #[test]
    fn a_damaged_list_never_removes_what_hhlctl_did_not_generate() {
        let root = tempfile::tempdir().unwrap();
        let paths = RawPaths::default();
        let state = under(root.path(), &paths.state_dir);
        fs::create_dir_all(&state).unwrap();
        for f in ["etc/passwd", "opt/redis/etc/6381.conf", "opt/redis/etc/6382.conf/x"] {
            let p = root.path().join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, "x").unwrap();
        }
        let list = "# header\n/opt/redis/etc/6381.conf\ngarbage here\nrelative/x.conf\n/etc/passwd\n/opt/redis/etc/6382.conf\n/opt/hhl/../../etc/passwd\n";
        fs::write(state.join(MANIFEST), list).unwrap();
        let (m, warnings) = Manifest::load(root.path(), &paths).unwrap();
        assert_eq!(
            m.files.iter().collect::<Vec<_>>(),
            [Path::new("/opt/redis/etc/6381.conf")]
        );
        let file = state.join(MANIFEST).display().to_string();
        assert_eq!(
            warnings,
            [
                format!("{file}:3: `garbage here` is not an absolute path; ignored, and dropped from the list by the next apply"),
                format!("{file}:4: `relative/x.conf` is not an absolute path; ignored, and dropped from the list by the next apply"),
                format!("{file}:5: /etc/passwd is not a file hhlctl generates under the paths in hhl.yaml (if it is a leftover of an older layout, delete it by hand); ignored, and dropped from the list by the next apply"),
                format!("{file}:6: /opt/redis/etc/6382.conf is a directory, and hhlctl never removes directories; ignored, and dropped from the list by the next apply"),
                format!("{file}:7: /opt/hhl/../../etc/passwd is not a file hhlctl generates under the paths in hhl.yaml (if it is a leftover of an older layout, delete it by hand); ignored, and dropped from the list by the next apply"),
            ]
        );
        let d = diff(root.path(), &[], &m, Ownership::Ignore).unwrap();
        apply(root.path(), &[], &d, Ownership::Ignore).unwrap();
        assert!(root.path().join("etc/passwd").exists());
        assert!(root.path().join("opt/redis/etc/6382.conf/x").exists());
        assert!(!root.path().join("opt/redis/etc/6381.conf").exists());
    }

    #[test]
    fn temps_of_dead_writers_are_cleared_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let dead = dir.path().join(".a.conf.hhl-tmp.4194999");
        let live = dir.path().join(".b.conf.hhl-tmp.1");
        let other = dir.path().join("c.conf");
        for p in [&dead, &live, &other] {
            fs::write(p, "x").unwrap();
        }
        assert_eq!(clear_temps(dir.path()), std::slice::from_ref(&dead));
        assert!(live.exists() && other.exists());
    }

    #[test]
    fn mode_change_counts_as_change() {
        let root = tempfile::tempdir().unwrap();
        let a = Artifact::file("/x", "x", 0o644);
        write_artifact(root.path(), &a, Ownership::Ignore).unwrap();
        let b = Artifact::file("/x", "x", 0o600);
        assert_eq!(
            diff(root.path(), &[b], &Manifest::default(), Ownership::Ignore).unwrap()[0].change,
            Change::Changed
        );
    }
}
