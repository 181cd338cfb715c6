//! What the console shows about each kept release: commit, subject, author, who
//! pushed it, when, files and size. The post-receive hook records it beside the
//! release (`releases/.info-<id>.json`: `release::list` skips dot files) when it
//! deploys; for releases without a record (`initial`, older ones) it is worked out
//! from the release id (`<secs>.<ms>-<commit>`), the repository and the tree.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use walkdir::WalkDir;

use crate::core::render::{INITIAL_RELEASE, RELEASES};
use crate::host::release;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ReleaseInfo {
    pub id: String,
    /// Full commit id, when known.
    pub commit: Option<String>,
    pub subject: Option<String>,
    pub author: Option<String>,
    /// The identity that pushed it (`hhlctl ssh` sets it for the hooks).
    pub pusher: Option<String>,
    /// Seconds since the epoch when it was deployed.
    pub when: Option<u64>,
    pub files: Option<usize>,
    pub bytes: Option<u64>,
    /// `current` points at it.
    #[serde(default)]
    pub live: bool,
}

fn info_path(app: &Path, id: &str) -> PathBuf {
    app.join(RELEASES).join(format!(".info-{id}.json"))
}

/// Whether release `id` of `app` has its record.
pub fn recorded(app: &Path, id: &str) -> bool {
    info_path(app, id).exists()
}

/// Record release `id` of `app`, deployed from `commit` of `git_dir` by the identity
/// in the hook's environment, and drop the records of pruned releases. Best effort
/// for the caller: a deploy does not fail for want of its record.
pub fn record(app: &Path, id: &str, git_dir: &Path, commit: &str) -> anyhow::Result<()> {
    let pusher = std::env::var(crate::core::package::IDENTITY_ENV)
        .ok()
        .or_else(|| crate::host::users::current().ok());
    let mut info = derive(app, id, Some(git_dir));
    info.commit = Some(commit.to_string());
    if info.subject.is_none() {
        let (subject, author) = describe(git_dir, commit);
        info.subject = subject;
        info.author = author;
    }
    info.pusher = pusher;
    info.live = false;
    crate::host::fsapply::write_file(&info_path(app, id), &serde_json::to_vec_pretty(&info)?, 0o640)?;
    drop_pruned(app)
}

/// The bytes of release `id` of `app` as its record says, if it has one.
pub fn recorded_bytes(app: &Path, id: &str) -> Option<u64> {
    let text = fs::read(info_path(app, id)).ok()?;
    serde_json::from_slice::<ReleaseInfo>(&text).ok()?.bytes
}

/// Remove the records of releases no longer kept.
fn drop_pruned(app: &Path) -> anyhow::Result<()> {
    let kept = release::list(app)?;
    if let Ok(entries) = fs::read_dir(app.join(RELEASES)) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let gone = name
                .strip_prefix(".info-")
                .and_then(|n| n.strip_suffix(".json"))
                .is_some_and(|rid| !kept.iter().any(|k| k == rid));
            if gone {
                let _ = fs::remove_file(e.path());
            }
        }
    }
    Ok(())
}

/// `record` for a deploy that knows its tree's size already: no walk of the tree and
/// one git process (the subject and author), on the push's critical path.
pub fn record_deployed(
    app: &Path,
    id: &str,
    git_dir: &Path,
    commit: &str,
    files: usize,
    bytes: u64,
) -> anyhow::Result<()> {
    let (subject, author) = describe(git_dir, commit);
    let info = ReleaseInfo {
        id: id.to_string(),
        commit: Some(commit.to_string()),
        subject,
        author,
        pusher: std::env::var(crate::core::package::IDENTITY_ENV)
            .ok()
            .or_else(|| crate::host::users::current().ok()),
        when: parse_id(id).0,
        files: Some(files),
        bytes: Some(bytes),
        live: false,
    };
    crate::host::fsapply::write_file(&info_path(app, id), &serde_json::to_vec_pretty(&info)?, 0o640)?;
    drop_pruned(app)
}

/// Every kept release of `app`, newest first, the live one marked.
pub fn releases(app: &Path, git_dir: Option<&Path>) -> anyhow::Result<Vec<ReleaseInfo>> {
    let live = release::current(app);
    let mut out: Vec<ReleaseInfo> = release::list(app)?
        .into_iter()
        .map(|id| {
            let mut info = fs::read(info_path(app, &id))
                .ok()
                .and_then(|b| serde_json::from_slice::<ReleaseInfo>(&b).ok())
                .filter(|i| i.id == id)
                .unwrap_or_else(|| derive(app, &id, git_dir));
            info.live = live.as_deref() == Some(id.as_str());
            info
        })
        .collect();
    out.reverse();
    Ok(out)
}

/// The full commit of the live release of `app`: from its record, else its id's short
/// commit resolved in `git_dir` (or kept short). None for `initial` (made by apply).
pub fn live_commit(app: &Path, git_dir: Option<&Path>) -> Option<String> {
    let id = release::current(app)?;
    let recorded = fs::read(info_path(app, &id))
        .ok()
        .and_then(|b| serde_json::from_slice::<ReleaseInfo>(&b).ok())
        .filter(|i| i.id == id)
        .and_then(|i| i.commit);
    if recorded.is_some() {
        return recorded;
    }
    let short = parse_id(&id).1?;
    git_dir
        .and_then(|g| full_commit(g, short))
        .or_else(|| Some(short.to_string()))
}

/// A deploy target's branch against its live release: what `status` and the console
/// show, and what apply, `ssh … deploy` and the next push converge.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct Deployment {
    /// The branch that deploys here.
    pub branch: String,
    /// Its head (None: nothing was pushed to it).
    pub pushed: Option<String>,
    /// The commit of the live release (None: `initial`, before any deploy).
    pub live: Option<String>,
    /// The live release's reload has not happened (a deploy killed or failed after its
    /// switch): apply finishes it.
    pub reload_pending: bool,
    /// Why the branch head is deliberately not live (`-o no-deploy`, a rollback).
    pub held: Option<String>,
}

impl Deployment {
    /// The pushed head is not live and nothing held it back: the next push, `deploy`
    /// or apply deploys it. Pure.
    pub fn behind(&self) -> bool {
        self.ahead() && self.held.is_none()
    }

    /// The pushed head is not the live release's commit (held back or not). Pure.
    pub fn ahead(&self) -> bool {
        match &self.pushed {
            None => false,
            Some(p) => !self.live.as_deref().is_some_and(|l| p.starts_with(l)),
        }
    }
}

/// `app`'s `branch`, whose head is `pushed`, against its live release.
pub fn deployment(app: &Path, git_dir: &Path, branch: &str, pushed: Option<String>) -> Deployment {
    let held = release::held(app)
        .filter(|(commit, _)| pushed.as_deref() == Some(commit.as_str()))
        .map(|(_, why)| why);
    Deployment {
        branch: branch.to_string(),
        live: live_commit(app, Some(git_dir)),
        reload_pending: release::reload_pending(app).is_some(),
        held,
        pushed,
    }
}

/// Branch → head commit of the bare repository `git_dir`, read from its files (loose
/// refs over `packed-refs`, as git reads them) rather than by a git process: `status`
/// and the console read every repository on each call. Empty when it cannot be read.
pub fn heads(git_dir: &Path) -> std::collections::BTreeMap<String, String> {
    let is_commit = |s: &str| s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit());
    let mut out = std::collections::BTreeMap::new();
    if let Ok(packed) = fs::read_to_string(git_dir.join("packed-refs")) {
        for line in packed.lines() {
            let Some((commit, name)) = line.split_once(' ') else {
                continue;
            };
            if let Some(branch) = name.strip_prefix("refs/heads/") {
                if is_commit(commit) {
                    out.insert(branch.to_string(), commit.to_string());
                }
            }
        }
    }
    let loose = git_dir.join("refs/heads");
    for e in WalkDir::new(&loose).into_iter().filter_map(|e| e.ok()) {
        if !e.file_type().is_file() || e.file_name().to_string_lossy().ends_with(".lock") {
            continue;
        }
        let Ok(rel) = e.path().strip_prefix(&loose) else {
            continue;
        };
        let Ok(text) = fs::read_to_string(e.path()) else {
            continue;
        };
        let commit = text.trim();
        if is_commit(commit) {
            out.insert(rel.to_string_lossy().into_owned(), commit.to_string());
        }
    }
    out
}

/// The deployment of each of `insts` (None for those that are not deploy targets),
/// reading each repository's branches once.
pub fn deployments(
    model: &crate::core::model::Model,
    insts: &[&crate::core::model::Instance],
) -> Vec<Option<Deployment>> {
    let mut repos: std::collections::BTreeMap<PathBuf, std::collections::BTreeMap<String, String>> = Default::default();
    insts
        .iter()
        .map(|i| {
            let (repo, branch) = crate::core::repos::source_of(model, i)?;
            let heads = repos.entry(repo.path.clone()).or_insert_with(|| heads(&repo.path));
            let pushed = heads.get(&branch).cloned();
            Some(deployment(&i.app_dir(), &repo.path, &branch, pushed))
        })
        .collect()
}

/// What the id, the tree and the repository tell about a release.
fn derive(app: &Path, id: &str, git_dir: Option<&Path>) -> ReleaseInfo {
    let (when, short) = parse_id(id);
    let (files, bytes) = tree_size(&app.join(RELEASES).join(id));
    let commit = short.and_then(|s| git_dir.and_then(|g| full_commit(g, s)));
    let (subject, author) = match (&commit, git_dir) {
        (Some(c), Some(g)) => describe(g, c),
        _ if id == INITIAL_RELEASE => (Some("made when hhl.yaml was applied (before any push)".into()), None),
        _ => (None, None),
    };
    ReleaseInfo {
        id: id.to_string(),
        commit: commit.or_else(|| short.map(str::to_string)),
        subject,
        author,
        pusher: None,
        when,
        files: Some(files),
        bytes: Some(bytes),
        live: false,
    }
}

/// `1795604477.806-0123456789ab` → (seconds, short commit). Pure.
pub fn parse_id(id: &str) -> (Option<u64>, Option<&str>) {
    let Some((stamp, rest)) = id.split_once('-') else {
        return (None, None);
    };
    let secs = stamp.split('.').next().and_then(|s| s.parse().ok());
    // A same-millisecond deploy gets `.N` after the commit.
    let short = rest
        .split('.')
        .next()
        .filter(|c| c.len() >= 7 && c.bytes().all(|b| b.is_ascii_hexdigit()));
    (secs, short)
}

fn tree_size(dir: &Path) -> (usize, u64) {
    let (mut files, mut bytes) = (0, 0);
    for e in WalkDir::new(dir).into_iter().filter_map(|e| e.ok()) {
        if e.file_type().is_file() {
            files += 1;
            bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
        }
    }
    (files, bytes)
}

fn full_commit(git_dir: &Path, short: &str) -> Option<String> {
    crate::host::git::run(
        crate::host::git::at(git_dir),
        &["rev-parse", "--verify", "-q", &format!("{short}^{{commit}}")],
    )
    .ok()
}

/// (subject, `author <email>`) of `commit`.
fn describe(git_dir: &Path, commit: &str) -> (Option<String>, Option<String>) {
    match crate::host::git::run(
        crate::host::git::at(git_dir),
        &["log", "-1", "--format=%s%x00%an <%ae>", commit, "--"],
    ) {
        Ok(out) => {
            let mut parts = out.splitn(2, '\0');
            (parts.next().map(str::to_string), parts.next().map(str::to_string))
        }
        Err(_) => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_branch_is_behind_when_its_head_is_not_live_and_not_held() {
        let d = |pushed: Option<&str>, live: Option<&str>, held: Option<&str>| Deployment {
            branch: "dev1".into(),
            pushed: pushed.map(String::from),
            live: live.map(String::from),
            reload_pending: false,
            held: held.map(String::from),
        };
        let head = "0123456789abcdef0123456789abcdef01234567";
        // Nothing pushed: nothing to deploy.
        assert!(!d(None, None, None).behind());
        // Pushed, never deployed (`initial` is live): behind.
        assert!(d(Some(head), None, None).behind());
        // The live release's id keeps 12 characters of the commit.
        assert!(!d(Some(head), Some("0123456789ab"), None).ahead());
        assert!(!d(Some(head), Some(head), None).behind());
        assert!(d(Some(head), Some("fedcba987654"), None).behind());
        // Held back (-o no-deploy, a rollback): ahead, not behind.
        let held = d(Some(head), Some("fedcba987654"), Some("rollback"));
        assert!(held.ahead() && !held.behind());
    }

    #[test]
    fn heads_are_read_as_git_reads_them() {
        let t = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| {
            let out = std::process::Command::new("git")
                .arg("-C")
                .arg(t.path())
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
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        git(&["init", "-q", "--bare", "r.git"]);
        git(&["init", "-q", "w"]);
        let w = |args: &[&str]| git(&[&["-C", "w"], args].concat());
        w(&["commit", "-q", "--allow-empty", "-m", "1"]);
        for b in ["master", "dev1", "team/dev2"] {
            w(&["push", "-q", "../r.git", &format!("HEAD:refs/heads/{b}")]);
        }
        // Some packed, one loose over its packed value, one only loose.
        git(&["--git-dir", "r.git", "pack-refs", "--all"]);
        w(&["commit", "-q", "--allow-empty", "-m", "2"]);
        w(&["push", "-q", "../r.git", "HEAD:refs/heads/dev1", "HEAD:refs/heads/dev3"]);
        let want: std::collections::BTreeMap<String, String> = git(&[
            "--git-dir",
            "r.git",
            "for-each-ref",
            "--format=%(refname:strip=2) %(objectname)",
            "refs/heads/",
        ])
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(b, c)| (b.to_string(), c.to_string()))
        .collect();
        assert_eq!(want.len(), 4);
        assert_eq!(heads(&t.path().join("r.git")), want);
        assert!(heads(&t.path().join("nowhere")).is_empty());
    }

    #[test]
    fn ids_give_time_and_commit() {
        assert_eq!(
            parse_id("1795604477.806-0123456789ab"),
            (Some(1795604477), Some("0123456789ab"))
        );
        assert_eq!(
            parse_id("1795604477.806-0123456789ab.2"),
            (Some(1795604477), Some("0123456789ab"))
        );
        assert_eq!(parse_id("initial"), (None, None));
        assert_eq!(parse_id("1-xyz"), (Some(1), None));
    }
}
