//! The filesystem edge: compare artifacts with what is on disk, and write them
//! atomically (temp file in the same directory, fsync, rename, fsync the directory)
//! under an injected root, so tests use real files in a temp dir.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::artifact::{Artifact, Content};

/// `path` (absolute on the host) under `root`.
pub fn under(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Added,
    Changed,
    Unchanged,
    Removed,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileChange {
    pub path: PathBuf,
    pub change: Change,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dir: bool,
}

/// What hhlctl generated last time, so files it no longer generates can be removed.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Manifest {
    pub files: BTreeSet<PathBuf>,
}

pub const MANIFEST: &str = "manifest.json";

impl Manifest {
    pub fn load(root: &Path, state_dir: &Path) -> Result<Manifest> {
        let p = under(root, &state_dir.join(MANIFEST));
        match fs::read(&p) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "{} is not a valid hhlctl manifest; remove it and run `hhlctl apply` again",
                    p.display()
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Manifest::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
        }
    }

    pub fn of(artifacts: &[Artifact]) -> Manifest {
        Manifest {
            files: artifacts
                .iter()
                .filter(|a| !a.is_dir())
                .map(|a| a.path.clone())
                .collect(),
        }
    }

    pub fn store(&self, root: &Path, state_dir: &Path) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self)?;
        write_file(&under(root, &state_dir.join(MANIFEST)), &bytes, 0o644)
    }
}

fn differs(root: &Path, a: &Artifact) -> io::Result<Option<bool>> {
    let p = under(root, &a.path);
    let meta = match fs::symlink_metadata(&p) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(Some(match &a.content {
        Content::File(bytes) => {
            !meta.is_file() || meta.permissions().mode() & 0o7777 != a.mode || fs::read(&p)? != *bytes
        }
        Content::Symlink(target) => !meta.file_type().is_symlink() || fs::read_link(&p)? != *target,
        Content::Dir => !meta.is_dir(),
    }))
}

/// Compare `artifacts` with the disk under `root`; files in `previous` that are no
/// longer generated are `Removed`. Directories are reported only when missing.
pub fn diff(root: &Path, artifacts: &[Artifact], previous: &Manifest) -> Result<Vec<FileChange>> {
    let mut out = Vec::new();
    for a in artifacts {
        let change = match differs(root, a).with_context(|| format!("reading {}", under(root, &a.path).display()))? {
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
        if fs::symlink_metadata(under(root, gone)).is_ok() {
            out.push(FileChange {
                path: gone.clone(),
                change: Change::Removed,
                dir: false,
            });
        }
    }
    Ok(out)
}

/// Bring the disk under `root` to `artifacts` and remove `removed` files. Each write
/// is atomic; unchanged files are not touched.
pub fn apply(root: &Path, artifacts: &[Artifact], changes: &[FileChange]) -> Result<()> {
    let changed: BTreeSet<&Path> = changes
        .iter()
        .filter(|c| matches!(c.change, Change::Added | Change::Changed))
        .map(|c| c.path.as_path())
        .collect();
    for a in artifacts.iter().filter(|a| changed.contains(a.path.as_path())) {
        write_artifact(root, a)?;
    }
    for c in changes.iter().filter(|c| c.change == Change::Removed) {
        let p = under(root, &c.path);
        fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
        // Drop the `<unit>.d/` directory it leaves empty; ignore a non-empty one.
        if let Some(parent) = p.parent() {
            let _ = fs::remove_dir(parent);
        }
    }
    Ok(())
}

pub fn write_artifact(root: &Path, a: &Artifact) -> Result<()> {
    let p = under(root, &a.path);
    match &a.content {
        Content::File(bytes) => write_file(&p, bytes, a.mode),
        Content::Symlink(target) => replace_symlink(&p, target),
        Content::Dir => {
            fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?;
            fs::set_permissions(&p, fs::Permissions::from_mode(a.mode))
                .with_context(|| format!("setting mode of {}", p.display()))
        }
    }
}

fn temp_beside(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.hhl-tmp.{}", std::process::id()))
}

/// Write `bytes` to `path` atomically: readers see the old file or the new one, never a part.
pub fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().context("path has no parent directory")?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = temp_beside(path);
    let result = (|| -> io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()?;
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

    #[test]
    fn diff_then_apply_then_nothing_left() {
        let root = tempfile::tempdir().unwrap();
        let arts = vec![
            Artifact::file("/etc/a.conf", "one\n", 0o644),
            Artifact::symlink("/etc/w/x.service", "/usr/lib/x.service"),
            Artifact::dir("/opt/d", 0o755),
        ];
        let d = diff(root.path(), &arts, &Manifest::default()).unwrap();
        assert!(d.iter().all(|c| c.change == Change::Added), "{d:?}");
        apply(root.path(), &arts, &d).unwrap();
        assert_eq!(fs::read_to_string(root.path().join("etc/a.conf")).unwrap(), "one\n");
        let again = diff(root.path(), &arts, &Manifest::of(&arts)).unwrap();
        assert!(again.iter().all(|c| c.change == Change::Unchanged), "{again:?}");

        let fewer = vec![Artifact::file("/etc/a.conf", "two\n", 0o644)];
        let d = diff(root.path(), &fewer, &Manifest::of(&arts)).unwrap();
        let kinds: Vec<_> = d.iter().map(|c| (c.path.to_str().unwrap(), c.change)).collect();
        assert_eq!(
            kinds,
            [("/etc/a.conf", Change::Changed), ("/etc/w/x.service", Change::Removed)]
        );
        apply(root.path(), &fewer, &d).unwrap();
        assert!(!root.path().join("etc/w").exists(), "empty directory left behind");
    }

    #[test]
    fn mode_change_counts_as_change() {
        let root = tempfile::tempdir().unwrap();
        let a = Artifact::file("/x", "x", 0o644);
        write_artifact(root.path(), &a).unwrap();
        let b = Artifact::file("/x", "x", 0o600);
        assert_eq!(
            diff(root.path(), &[b], &Manifest::default()).unwrap()[0].change,
            Change::Changed
        );
    }
}
