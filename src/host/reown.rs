//! Handing an owner's files to the user that will run their instances, when that user
//! changes: an upgrade from 0.1.0 (instances ran as the developers' own accounts,
//! `dev1`; now as `hhl-dev1`), or a `users.map` edit. Every directory apply owns that
//! is on disk with another owner or group than it will have is re-owned with
//! everything in it: what its old owner (or group) had goes to the new one; anything
//! of a third user stays theirs.
//!
//! The order is apply's, for every kind of instance: the instance is stopped first (a
//! Redis saves its data on the way down, as its old user, into a directory its old
//! user still owns), then its files change owner, then it starts as the new user.
//!
//! The walk never follows a link: each directory is opened from its parent's open
//! descriptor with O_NOFOLLOW and listed from that descriptor, and each entry is
//! re-owned by name in that directory with AT_SYMLINK_NOFOLLOW, so a link an instance planted in its logs is re-owned
//! itself and nothing it points to is touched.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rustix::fs::{chownat, fchown, openat, statat, AtFlags, Dir, FileType, Gid, Mode, OFlags, Uid, CWD};
use rustix::io::Errno;

use crate::core::artifact::{Artifact, Content, Owner};
use crate::core::model::{Instance, Model};
use crate::host::fsapply;

/// A directory on disk whose owner or group is not the one apply gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reown {
    /// As on the host (not under apply's root).
    pub path: PathBuf,
    /// (uid, gid) on disk now.
    pub from: (u32, u32),
    /// (uid, gid) it gets.
    pub to: (u32, u32),
}

/// Every owned directory of `artifacts` that exists under `root` with another owner
/// or group than it will have, parents before children. A directory whose new owner
/// does not exist yet (users are created first) or that is a link is left out.
pub fn plan(root: &Path, artifacts: &[Artifact]) -> Vec<Reown> {
    let mut out: Vec<Reown> = artifacts
        .iter()
        .filter(|a| matches!(a.content, Content::Dir) && a.owner != Owner::Root)
        .filter_map(|a| {
            let to = fsapply::ids(&a.owner)?;
            let meta = std::fs::symlink_metadata(fsapply::under(root, &a.path)).ok()?;
            let from = (meta.uid(), meta.gid());
            (meta.is_dir() && from != to).then(|| Reown {
                path: a.path.clone(),
                from,
                to,
            })
        })
        .collect();
    out.sort_by_key(|r| r.path.components().count());
    out
}

/// The instances whose files `plan` re-owns: each is stopped before, started after.
pub fn instances<'m>(model: &'m Model, plan: &[Reown]) -> Vec<&'m Instance> {
    model
        .instances
        .iter()
        .filter(|i| plan.iter().any(|r| r.path.starts_with(&i.dir)))
        .collect()
}

/// The user and group that own `inst`'s files now, when they are not the ones it
/// will run as: `nginx -t` of its new config runs as them, since the files are
/// theirs until apply hands them over (after the checks, with the instance stopped).
pub fn current_owner(plan: &[Reown], inst: &Instance) -> Option<(u32, u32)> {
    plan.iter()
        .filter(|r| r.path.starts_with(&inst.dir) && r.from.0 != 0)
        .map(|r| r.from)
        .next()
}

/// Carry out `plan` under `root`: each directory's content, then the directory
/// itself (a run killed midway leaves that directory as it was, so the next apply
/// finds it again). Directories of the plan nested in another are their own step.
/// Returns how many entries changed owner.
pub fn run(root: &Path, plan: &[Reown]) -> Result<usize> {
    let mut n = 0;
    for r in plan {
        let path = fsapply::under(root, &r.path);
        let nested: Vec<PathBuf> = plan
            .iter()
            .filter(|o| o.path != r.path && o.path.starts_with(&r.path))
            .map(|o| fsapply::under(root, &o.path))
            .collect();
        let map = |uid: u32, gid: u32| {
            (
                if uid == r.from.0 { r.to.0 } else { uid },
                if gid == r.from.1 { r.to.1 } else { gid },
            )
        };
        n += tree(&path, &map, &nested, r.to)?;
    }
    Ok(n)
}

/// Everything in `path` and `path` itself to `to`, whoever owned it: a repository an
/// older hhlctl made (root's, group-writable by every developer) adopted by the entry
/// account. Returns how many entries changed owner.
pub fn hand_over(path: &Path, to: (u32, u32)) -> Result<usize> {
    tree(path, &|_, _| to, &[], to)
}

type Map<'a> = dyn Fn(u32, u32) -> (u32, u32) + 'a;

fn tree(path: &Path, map: &Map, nested: &[PathBuf], top: (u32, u32)) -> Result<usize> {
    let dir = open_dir(CWD, path).with_context(|| format!("opening {}", path.display()))?;
    let n = walk(&dir, path, map, nested).with_context(|| format!("re-owning what is in {}", path.display()))?;
    fchown(&dir, Some(Uid::from_raw(top.0)), Some(Gid::from_raw(top.1)))
        .with_context(|| format!("chown {}", path.display()))?;
    Ok(n + 1)
}

/// `name` in directory `at`, as a directory, never through a link.
pub(crate) fn open_dir<P: rustix::path::Arg>(at: impl AsFd, name: P) -> io::Result<OwnedFd> {
    Ok(openat(
        at,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

fn walk(dir: &OwnedFd, path: &Path, map: &Map, nested: &[PathBuf]) -> io::Result<usize> {
    let mut n = 0;
    for entry in Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        let st = match statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => continue,
            Err(e) => return Err(e.into()),
        };
        let child = path.join(OsStr::from_bytes(name.to_bytes()));
        if FileType::from_raw_mode(st.st_mode as _) == FileType::Directory {
            if nested.contains(&child) {
                continue;
            }
            let sub = open_dir(dir, name)?;
            n += walk(&sub, &child, map, nested)?;
        }
        let (uid, gid) = map(st.st_uid, st.st_gid);
        if (uid, gid) != (st.st_uid, st.st_gid) {
            // A link is re-owned itself, never what it points to.
            chownat(
                dir,
                name,
                Some(Uid::from_raw(uid)),
                Some(Gid::from_raw(gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )?;
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unprivileged: a plan from one owner to the same owner changes nothing, walks
    /// everything, and never follows a link out of the tree.
    #[test]
    fn walks_without_following_links() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let tree = root.join("opt/data");
        std::fs::create_dir_all(tree.join("a/b")).unwrap();
        std::fs::write(tree.join("a/b/f"), "x").unwrap();
        let outside = root.join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, tree.join("a/link")).unwrap();
        let meta = std::fs::metadata(&tree).unwrap();
        let me = (meta.uid(), meta.gid());
        let r = Reown {
            path: "/opt/data".into(),
            from: (me.0 + 1, me.1 + 1),
            to: me,
        };
        // Nothing is owned by `from`: only the top directory counts.
        assert_eq!(run(root, &[r]).unwrap(), 1);
        let link = std::fs::symlink_metadata(tree.join("a/link")).unwrap();
        assert!(link.file_type().is_symlink());
    }

    #[test]
    fn a_link_in_place_of_the_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("opt")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("opt/data")).unwrap();
        let r = Reown {
            path: "/opt/data".into(),
            from: (1, 1),
            to: (2, 2),
        };
        let e = run(root, &[r]).unwrap_err();
        assert!(format!("{e:#}").contains("opening "), "{e:#}");
    }
}
