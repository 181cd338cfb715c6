//! Releases of a deploy target (an instance's `app/`, or the Lua library's): each
//! deploy extracts a commit into a fresh `releases/<id>` and then swaps the `current`
//! link with one rename, so nginx sees the old tree or the new one, never a mix. A
//! lock file serializes deploys to one target; a deploy killed midway leaves only a
//! `.tmp-` directory, which the next one clears.

use std::fs::{self, File};
use std::os::unix::fs::{symlink, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use walkdir::WalkDir;

use crate::core::render::{INITIAL_RELEASE, RELEASES};

/// An exclusive `flock` on `<app>/.lock`, held until dropped.
pub struct Lock(#[allow(dead_code)] File);

impl Lock {
    pub fn take(app: &Path, timeout: Duration) -> Result<Lock> {
        Lock::take_for(app, timeout, "deploy to")
    }

    /// The lock only if nobody holds it now (a deploy running): `None` then.
    pub fn try_take(dir: &Path) -> Result<Option<Lock>> {
        Lock::take_for(dir, Duration::ZERO, "").map(Some).or_else(|e| {
            if dir.join(".lock").exists() {
                Ok(None)
            } else {
                Err(e)
            }
        })
    }

    /// `what` words the holder in the message: "another {what} {dir} has held its lock…".
    pub fn take_for(app: &Path, timeout: Duration, what: &str) -> Result<Lock> {
        let path = app.join(".lock");
        // Never through a link planted at the lock's path (O_NOFOLLOW); a lock root
        // creates goes to the app's owner (fchown on the open file, not the path), and
        // a lock file someone else made is still lockable read-only.
        let open = |write: bool| {
            fs::OpenOptions::new()
                .create(write)
                .truncate(false)
                .write(write)
                .read(!write)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)
        };
        let f = open(true)
            .or_else(|e| {
                if e.kind() == std::io::ErrorKind::PermissionDenied {
                    open(false)
                } else {
                    Err(e)
                }
            })
            .with_context(|| format!("opening {} (a symbolic link there is refused)", path.display()))?;
        if rustix::process::geteuid().is_root() {
            if let Ok(dir) = fs::symlink_metadata(app) {
                let _ = std::os::unix::fs::fchown(&f, Some(dir.uid()), Some(dir.gid()));
            }
        }
        let _ = f.set_permissions(fs::Permissions::from_mode(0o640));
        let deadline = Instant::now() + timeout;
        loop {
            if rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok() {
                return Ok(Lock(f));
            }
            if Instant::now() >= deadline {
                bail!(
                    "another {what} {} has held its lock ({}) for {} s; try again when it is done",
                    app.display(),
                    path.display(),
                    timeout.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A scratch directory removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(what: &str) -> Result<Scratch> {
        Scratch::new_in(&std::env::temp_dir(), what)
    }

    /// A scratch directory (mode 0700) inside `parent`, made (0700) if missing: a push's
    /// checks use one inside the repository's own directory, private to the entry
    /// account and never the shared /tmp; what they put there is bounded by the push
    /// limits checked before.
    pub fn new_in(parent: &Path, what: &str) -> Result<Scratch> {
        use std::os::unix::fs::DirBuilderExt;
        if !parent.is_dir() {
            fs::DirBuilder::new()
                .mode(0o700)
                .create(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        clear_dead_scratches(parent);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let p = parent.join(format!("hhl-{what}-{}-{nanos}", std::process::id()));
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&p)
            .with_context(|| format!("creating {}", p.display()))?;
        Ok(Scratch(p))
    }
}

/// Scratch directories (`hhl-<what>-<pid>-<nanos>`) of runs that were killed.
fn clear_dead_scratches(tmp: &Path) {
    let Ok(entries) = fs::read_dir(tmp) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let mut parts = name.rsplitn(3, '-');
        let (Some(_nanos), Some(pid), Some(head)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        // This process's own are in use (a Scratch may be made while another is held).
        let gone = |p: u32| !Path::new(&format!("/proc/{p}")).exists();
        if head.starts_with("hhl-") && pid.parse::<u32>().is_ok_and(gone) {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[derive(Debug)]
pub struct Deployed {
    pub id: String,
    pub files: usize,
    /// Bytes of those files.
    pub bytes: u64,
    pub previous: Option<String>,
}

fn releases_dir(app: &Path) -> PathBuf {
    app.join(RELEASES)
}

/// The release `current` points at.
pub fn current(app: &Path) -> Option<String> {
    let target = fs::read_link(app.join("current")).ok()?;
    Some(target.file_name()?.to_string_lossy().into_owned())
}

/// Release ids, oldest first: `initial` (made by apply), then by time.
pub fn list(app: &Path) -> Result<Vec<String>> {
    let dir = releases_dir(app);
    let mut ids: Vec<String> = fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    ids.sort_by_key(|i| (i != INITIAL_RELEASE, i.clone()));
    Ok(ids)
}

/// Extract `commit` of the bare repository `git_dir` into a new release of `app`, make
/// it current, and keep the newest `keep` releases (and the current one).
pub fn deploy(git_dir: &Path, commit: &str, app: &Path, keep: Keep) -> Result<Deployed> {
    let _lock = Lock::take(app, Duration::from_secs(120))?;
    let dir = releases_dir(app);
    clear_leftovers(&dir);
    clear_app_temps(app);
    let id = new_id(&dir, commit);
    let tmp = dir.join(format!(".tmp-{id}"));
    fs::create_dir(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    // Others read a release only where they read the app (the shared Lua library).
    let others = fs::metadata(app).map(|m| m.permissions().mode() & 0o005).unwrap_or(0);
    // tar creates the files with the modes `share_with_group` wants (0640 or 0644),
    // so that it has only the directories left to change, not every file.
    extract_masked(git_dir, commit, &tmp, Some(0o022 | (0o005 & !others)))?;
    crate::host::fault::point("release:extracted");
    // Root (apply deploying a branch a killed push left behind) deploys as the entry
    // account would: the release belongs to the app's owner, who prunes it later.
    let owner = rustix::process::geteuid()
        .is_root()
        .then(|| fs::metadata(app).map(|m| (m.uid(), m.gid())).ok())
        .flatten();
    let (files, bytes) = share_with_group(&tmp, others, owner)?;
    fs::rename(&tmp, dir.join(&id)).with_context(|| format!("renaming {} into place", tmp.display()))?;
    let previous = current(app);
    mark_reload(app, &deploy_record(&id))?;
    switch(app, &id)?;
    unhold(app)?;
    crate::host::fault::point("release:switched");
    prune(app, keep, (&id, bytes))?;
    Ok(Deployed {
        id,
        files,
        bytes,
        previous,
    })
}

/// A branch head deliberately not live (`git push -o no-deploy`, a rollback): the
/// commit the branch had then. Apply and `deploy` leave such a branch as it is while
/// its head is that commit; the next deploy clears it.
const HELD: &str = ".held";

/// Record that `app` stays as it is while its branch is at `commit` (`why`: what held it).
pub fn hold(app: &Path, commit: &str, why: &str) -> Result<()> {
    crate::host::fsapply::write_file(&app.join(HELD), format!("{commit} {why}\n").as_bytes(), 0o660)
}

/// The commit (and the reason) `app` is held at, if any.
pub fn held(app: &Path) -> Option<(String, String)> {
    let text = fs::read_to_string(app.join(HELD)).ok()?;
    let (commit, why) = text.trim().split_once(' ').unwrap_or((text.trim(), ""));
    Some((commit.to_string(), why.to_string()))
}

fn unhold(app: &Path) -> Result<()> {
    match fs::remove_file(app.join(HELD)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", app.join(HELD).display()))
        }
        _ => Ok(()),
    }
}

/// A switch of `current` whose reload has not happened yet: recorded before the
/// switch, cleared once the reload succeeded. `apply` (and the next rollback) finish
/// what a killed deploy or rollback left undone.
const RELOAD_PENDING: &str = ".reload-pending";

/// The record a deploy of release `id` leaves until its reload is done.
pub fn deploy_record(id: &str) -> String {
    format!("deploy {id}")
}

/// The record a rollback leaves until its reload is done.
pub fn rollback_record(from: &str, to: &str) -> String {
    format!("rollback {from} {to}")
}

fn mark_reload(app: &Path, what: &str) -> Result<()> {
    crate::host::fsapply::write_file(&app.join(RELOAD_PENDING), format!("{what}\n").as_bytes(), 0o660)
}

/// What switched `current` without the reload that should follow (`deploy <id>`,
/// `rollback <from> <to>`), if anything.
pub fn reload_pending(app: &Path) -> Option<String> {
    fs::read_to_string(app.join(RELOAD_PENDING))
        .ok()
        .map(|s| s.trim().to_string())
}

/// The reload after the switch recorded as `seen` succeeded. Left alone when a later
/// switch replaced the record, or while a deploy holds the lock: that deploy reloads,
/// and clears it, itself.
pub fn reload_done(app: &Path, seen: &str) -> Result<()> {
    if reload_pending(app).as_deref() != Some(seen) {
        return Ok(());
    }
    if let Some(_lock) = Lock::try_take(app)? {
        if reload_pending(app).as_deref() != Some(seen) {
            return Ok(());
        }
        match fs::remove_file(app.join(RELOAD_PENDING)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("removing {}", app.join(RELOAD_PENDING).display()))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Clear what killed deploys left in `app`, unless a deploy runs now. Returns how many.
pub fn sweep(app: &Path) -> Result<usize> {
    // No lock file: no deploy ever started here, so none was killed.
    if !app.join(".lock").exists() {
        return Ok(0);
    }
    match Lock::try_take(app) {
        Ok(Some(_lock)) => Ok(clear_leftovers(&releases_dir(app)) + clear_app_temps(app)),
        _ => Ok(0),
    }
}

/// Point `current` back at the release before it. A rollback killed between its switch
/// and its reload is finished instead of going back one more: returns (from, to, whether
/// it was such a resumption).
pub fn rollback(app: &Path) -> Result<(String, String, bool)> {
    let _lock = Lock::take(app, Duration::from_secs(120))?;
    let ids = list(app)?;
    let Some(now) = current(app) else {
        bail!("{} has no current release", app.display());
    };
    if let Some(rest) = reload_pending(app).as_deref().and_then(|p| p.strip_prefix("rollback ")) {
        if let Some((from, to)) = rest.split_once(' ') {
            if to == now {
                return Ok((from.to_string(), now, true));
            }
        }
    }
    let pos = ids.iter().position(|i| *i == now);
    let Some(before) = pos.and_then(|p| p.checked_sub(1)).map(|p| ids[p].clone()) else {
        bail!(
            "nothing to roll back to: {now} is the oldest release kept in {} (releases: {})",
            releases_dir(app).display(),
            ids.join(", ")
        );
    };
    mark_reload(app, &rollback_record(&now, &before))?;
    switch(app, &before)?;
    crate::host::fault::point("release:switched");
    Ok((now, before, false))
}

/// Point `current` at kept release `to`, older or newer than the live one (the
/// console's rollback to any release). Returns the release it left.
pub fn rollback_to(app: &Path, to: &str) -> Result<String> {
    let _lock = Lock::take(app, Duration::from_secs(120))?;
    let ids = list(app)?;
    if !ids.iter().any(|i| i == to) {
        bail!(
            "no release `{}` is kept in {} (releases: {})",
            crate::core::error::excerpt(to),
            releases_dir(app).display(),
            ids.join(", ")
        );
    }
    let Some(now) = current(app) else {
        bail!("{} has no current release", app.display());
    };
    if now == to {
        bail!("{to} is the live release already");
    }
    mark_reload(app, &rollback_record(&now, to))?;
    switch(app, to)?;
    crate::host::fault::point("release:switched");
    Ok(now)
}

/// Swap `current` to `releases/<id>` with one rename.
fn switch(app: &Path, id: &str) -> Result<()> {
    let tmp = app.join(format!(".current.tmp-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    symlink(Path::new(RELEASES).join(id), &tmp).with_context(|| format!("creating {}", tmp.display()))?;
    fs::rename(&tmp, app.join("current")).with_context(|| format!("switching {}/current", app.display()))
}

/// `git archive | tar -x`: the tree of `commit`, nothing of git's own.
pub fn extract(git_dir: &Path, commit: &str, into: &Path) -> Result<()> {
    extract_masked(git_dir, commit, into, None)
}

/// `extract`, with the files' modes under `umask` (for root too) where given.
fn extract_masked(git_dir: &Path, commit: &str, into: &Path, umask: Option<u32>) -> Result<()> {
    let mut archive = crate::host::git::at(git_dir);
    archive
        .args(["archive", "--format=tar", commit])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: as for tar below.
    unsafe { archive.pre_exec(die_with_parent) };
    // Each of the two under `child::GIT`: a stuck one ends the other (its pipe closes).
    let mut archive = crate::host::child::Bounded::spawn(&mut archive, crate::host::child::GIT)?;
    let mut tar = Command::new("tar");
    tar.args(["-x", "--no-same-owner", "-C"]).arg(into);
    if umask.is_some() {
        tar.arg("--no-same-permissions");
    }
    // SAFETY: umask(2) and prctl(2) are async-signal-safe and touch only the child.
    unsafe {
        tar.pre_exec(move || {
            if let Some(mask) = umask {
                rustix::process::umask(rustix::fs::Mode::from_bits_truncate(mask));
            }
            die_with_parent()
        });
    }
    tar.stdin(archive.child().stdout.take().expect("piped"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let tar = crate::host::child::Bounded::spawn(&mut tar, crate::host::child::GIT)?.wait_with_output(None)?;
    let git = archive.wait_with_output(None)?;
    if !git.status.success() {
        bail!(
            "git archive {commit} failed: {}",
            String::from_utf8_lossy(&git.stderr).trim()
        );
    }
    if !tar.status.success() {
        bail!(
            "extracting {commit} failed: {}",
            String::from_utf8_lossy(&tar.stderr).trim()
        );
    }
    Ok(())
}

/// In a child before exec: killed when the process that started it dies, so that a
/// deploy killed midway (`kill -9` of a post-receive hook) leaves no tar writing
/// into the release the next deploy clears.
fn die_with_parent() -> std::io::Result<()> {
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL)).map_err(std::io::Error::from)
}

/// Group-writable, so the owner and admins (members of the owner's group) can both
/// prune what either deployed. Returns the number of files and their bytes.
/// `owner` (uid, gid): given to every entry (run as root).
fn share_with_group(root: &Path, others: u32, owner: Option<(u32, u32)>) -> Result<(usize, u64)> {
    let (mut files, mut bytes) = (0, 0);
    for entry in WalkDir::new(root) {
        let entry = entry?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::lchown(entry.path(), Some(uid), Some(gid))
                .with_context(|| format!("chown {}", entry.path().display()))?;
        }
        let meta = entry.path().symlink_metadata()?;
        if meta.file_type().is_symlink() {
            continue;
        }
        if meta.is_file() {
            files += 1;
            bytes += meta.len();
        }
        let mode = meta.permissions().mode() & 0o7777;
        // The instance's group reads (and runs) what is there and writes nothing.
        let exec = meta.is_dir() || mode & 0o100 != 0;
        let group = if exec { 0o050 } else { 0o040 } | if exec { others } else { others & 0o004 };
        let want = if meta.is_dir() {
            (mode & 0o700) | 0o2000 | group
        } else {
            (mode & 0o700) | group
        };
        if want != mode {
            fs::set_permissions(entry.path(), fs::Permissions::from_mode(want))?;
        }
    }
    Ok((files, bytes))
}

fn new_id(dir: &Path, commit: &str) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let short = &commit[..commit.len().min(12)];
    let base = format!("{}.{:03}-{short}", now.as_secs(), now.subsec_millis());
    let mut id = base.clone();
    let mut n = 1;
    while dir.join(&id).exists() {
        id = format!("{base}.{n}");
        n += 1;
    }
    id
}

/// What killed deploys left behind in `releases/`. Returns how many.
fn clear_leftovers(dir: &Path) -> usize {
    let mut n = 0;
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(".tmp-") && fs::remove_dir_all(e.path()).is_ok() {
                n += 1;
            }
        }
    }
    n
}

/// `.current.tmp-<pid>` links and `.hhl-tmp.` files of killed switches in `app`.
fn clear_app_temps(app: &Path) -> usize {
    let mut n = crate::host::fsapply::clear_temps(app).len();
    if let Ok(entries) = fs::read_dir(app) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let dead = name
                .strip_prefix(".current.tmp-")
                .and_then(|pid| pid.parse::<u32>().ok())
                .is_some_and(|pid| !crate::host::fsapply::alive(pid));
            if dead && fs::remove_file(e.path()).is_ok() {
                n += 1;
            }
        }
    }
    n
}

/// How many releases a deploy target keeps (git.keep), and how much they may take
/// together (git.max_releases_size).
#[derive(Debug, Clone, Copy)]
pub struct Keep {
    pub count: usize,
    pub bytes: u64,
}

/// Remove the oldest releases beyond `keep.count`, then more of the oldest while the
/// kept ones take more than `keep.bytes` (sizes from their records, the new one's
/// `new`), never the live release nor the one before it (rollback's).
fn prune(app: &Path, keep: Keep, new: (&str, u64)) -> Result<()> {
    // `initial` belongs to apply, which would only make it again.
    let ids: Vec<String> = list(app)?.into_iter().filter(|i| i != INITIAL_RELEASE).collect();
    let cur = current(app);
    let excess = ids.len().saturating_sub(keep.count);
    let (gone, kept) = ids.split_at(excess);
    let mut remove: Vec<&String> = gone.iter().filter(|i| Some(*i) != cur.as_ref()).collect();
    let size = |id: &str| {
        if id == new.0 {
            return new.1;
        }
        crate::host::release_info::recorded_bytes(app, id).unwrap_or_else(|| tree_bytes(&releases_dir(app).join(id)))
    };
    let mut total: u64 = kept.iter().map(|i| size(i)).sum();
    let mut left = kept.len();
    for id in kept {
        if total <= keep.bytes || left <= 2 {
            break;
        }
        if Some(id) != cur.as_ref() {
            total -= size(id);
            left -= 1;
            remove.push(id);
        }
    }
    for id in remove {
        let p = releases_dir(app).join(id);
        fs::remove_dir_all(&p).with_context(|| format!("removing old release {}", p.display()))?;
    }
    Ok(())
}

/// Bytes of the files under `dir` (a release without a record).
fn tree_bytes(dir: &Path) -> u64 {
    WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "-c",
                "init.defaultBranch=master",
            ])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    #[test]
    fn scratch_directories_of_killed_runs_are_cleared() {
        let tmp = tempfile::tempdir().unwrap();
        let dead = tmp.path().join("hhl-check-4194999-123");
        let live = tmp.path().join(format!("hhl-check-{}-123", std::process::id()));
        let other = tmp.path().join("someone-else-4194999-123");
        for d in [&dead, &live, &other] {
            fs::create_dir(d).unwrap();
        }
        clear_dead_scratches(tmp.path());
        assert!(!dead.exists());
        assert!(live.exists(), "a running process's scratch was removed");
        assert!(other.exists());
    }

    /// The deploy tests fork git and tar while the other holds a lock: a fork in
    /// between holds the lock's descriptor for a moment, and `reload_done`'s
    /// try-lock would find it held. One at a time.
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn releases_beyond_the_size_bound_are_pruned_but_never_the_live_one_and_the_one_before() {
        let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let t = tempfile::tempdir().unwrap();
        let work = t.path().join("work");
        fs::create_dir_all(&work).unwrap();
        git(&work, &["init", "-q"]);
        let app = t.path().join("app");
        fs::create_dir_all(app.join("releases/initial")).unwrap();
        symlink("releases/initial", app.join("current")).unwrap();
        // 3000-byte trees; 8000 bytes hold two of them, not three.
        let keep = Keep { count: 5, bytes: 8000 };
        let mut ids = Vec::new();
        for n in 0..4 {
            fs::write(work.join("main.lua"), format!("-- {n}\n{}", "x".repeat(3000 - 5))).unwrap();
            git(&work, &["add", "-A"]);
            git(&work, &["commit", "-qm", &n.to_string()]);
            let commit = git(&work, &["rev-parse", "HEAD"]);
            let d = deploy(&work.join(".git"), &commit, &app, keep).unwrap();
            assert_eq!(d.bytes, 3000);
            crate::host::release_info::record_deployed(&app, &d.id, &work.join(".git"), &commit, d.files, d.bytes)
                .unwrap();
            ids.push(d.id);
        }
        assert_eq!(list(&app).unwrap(), ["initial", ids[2].as_str(), ids[3].as_str()]);
        // A bound below one release still keeps the live one and the one before.
        let keep = Keep { count: 5, bytes: 1024 };
        fs::write(work.join("main.lua"), "-- 4\n").unwrap();
        git(&work, &["commit", "-qam", "4"]);
        let d = deploy(&work.join(".git"), &git(&work, &["rev-parse", "HEAD"]), &app, keep).unwrap();
        assert_eq!(list(&app).unwrap(), ["initial", ids[3].as_str(), d.id.as_str()]);
    }

    #[test]
    fn deploy_swaps_prunes_and_rolls_back() {
        let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let t = tempfile::tempdir().unwrap();
        let work = t.path().join("work");
        fs::create_dir_all(work.join("lib")).unwrap();
        git(&work, &["init", "-q"]);
        let app = t.path().join("app");
        fs::create_dir_all(app.join("releases/initial")).unwrap();
        symlink("releases/initial", app.join("current")).unwrap();
        // A killed deploy's leftovers are cleared by the next one.
        fs::create_dir_all(app.join("releases/.tmp-dead")).unwrap();

        let mut commits = Vec::new();
        for n in 0..4 {
            fs::write(work.join("main.lua"), format!("ngx.say({n})\n")).unwrap();
            fs::write(work.join("lib/x.lua"), "return 1\n").unwrap();
            git(&work, &["add", "-A"]);
            git(&work, &["commit", "-qm", &n.to_string()]);
            commits.push(git(&work, &["rev-parse", "HEAD"]));
            let keep = Keep {
                count: 3,
                bytes: 1 << 20,
            };
            let d = deploy(&work.join(".git"), commits.last().unwrap(), &app, keep).unwrap();
            assert_eq!(d.files, 2);
            assert_eq!(
                fs::read_to_string(app.join("current/main.lua")).unwrap(),
                format!("ngx.say({n})\n")
            );
        }
        assert!(!app.join("releases/.tmp-dead").exists());
        let ids = list(&app).unwrap();
        assert_eq!(ids.len(), 4, "{ids:?}");
        assert_eq!(ids[0], "initial");
        let ids = &ids[1..];

        let (from, to, resumed) = rollback(&app).unwrap();
        assert_eq!(
            (from.as_str(), to.as_str(), resumed),
            (ids[2].as_str(), ids[1].as_str(), false)
        );
        // Its reload never happened (killed): the next rollback finishes it, going no further.
        assert_eq!(rollback(&app).unwrap(), (ids[2].clone(), ids[1].clone(), true));
        reload_done(&app, "something else").unwrap();
        assert_eq!(reload_pending(&app), Some(format!("rollback {} {}", ids[2], ids[1])));
        reload_done(&app, &format!("rollback {} {}", ids[2], ids[1])).unwrap();
        assert_eq!(reload_pending(&app), None);
        assert_eq!(
            fs::read_to_string(app.join("current/main.lua")).unwrap(),
            "ngx.say(2)\n"
        );
        for _ in 0..2 {
            let (from, to, _) = rollback(&app).unwrap();
            reload_done(&app, &format!("rollback {from} {to}")).unwrap();
        }
        assert_eq!(current(&app).unwrap(), "initial");
        let e = rollback(&app).unwrap_err().to_string();
        assert!(e.contains("nothing to roll back to"), "{e}");
    }
}
