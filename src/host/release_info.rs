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
