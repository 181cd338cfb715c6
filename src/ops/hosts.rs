//! The primary's operations on the other hosts, written once for `hhlctl apply`, `hhlctl
//! hosts` and the retry timer: ask each host in parallel (`host::peer`, every step under
//! a deadline), push it serverctrl's commit and let it apply that itself, and remember
//! which hosts are still owed one (retried with back-off).
//!
//! A host that cannot be reached keeps running what it last applied: nothing here ever
//! stops anything on a host; only that host's own apply changes it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::core::model::hosts::HostSpec;
use crate::core::model::Model;
use crate::core::peers::Pong;
use crate::core::repos::{MAIN_BRANCH, SERVERCTRL};
use crate::host::peer::{self, Answer};
use crate::ops::remote_apply::applied_commit;

/// One host as last asked.
#[derive(Debug, Clone, Serialize)]
pub struct Seen {
    pub host: String,
    pub address: String,
    pub primary: bool,
    /// Its answer, or why there was none.
    pub pong: Option<PongView>,
    pub error: Option<String>,
    pub took_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PongView {
    pub applied: Option<String>,
    pub version: String,
}

/// The others, asked in parallel (`ping`), each within `peer::ASK`.
pub fn ping_all(model: &Model) -> Vec<Seen> {
    let (Some(hosts), Some(here)) = (&model.hosts, model.here.as_deref()) else {
        return Vec::new();
    };
    let others: Vec<&HostSpec> = hosts.others(here).collect();
    let mut seen = crate::host::parallel::map(&others, others.len().max(1), |h| {
        let t0 = Instant::now();
        let (pong, error) = match ping(model, h) {
            Ok(p) => (
                Some(PongView {
                    applied: p.applied,
                    version: p.version,
                }),
                None,
            ),
            Err(e) => (None, Some(format!("{e:#}"))),
        };
        Seen {
            host: h.name.clone(),
            address: h.address.to_string(),
            primary: false,
            pong,
            error,
            took_ms: t0.elapsed().as_millis() as u64,
        }
    });
    let me = hosts.get(here).expect("here is a host");
    let applied = applied_commit(model);
    seen.insert(
        0,
        Seen {
            host: me.name.clone(),
            address: me.address.to_string(),
            primary: me.primary,
            pong: Some(PongView {
                applied,
                version: env!("CARGO_PKG_VERSION").to_string(),
            }),
            error: None,
            took_ms: 0,
        },
    );
    seen
}

/// Why a host's answer is not one: ssh's words (unreachable) or the verb's.
pub fn failure(a: &Answer) -> String {
    if let Some(u) = a.unreachable() {
        return format!("unreachable: {u}");
    }
    let e = String::from_utf8_lossy(&a.output.stderr).trim().to_string();
    format!("refused or failed (exit {}): {e}", a.output.status.code().unwrap_or(-1))
}

/// How one host's apply went.
#[derive(Debug, Clone)]
pub struct Applied {
    pub host: String,
    pub ok: bool,
    /// What the host printed (its apply's lines), or why it was not reached.
    pub output: String,
    pub took: Duration,
}

/// Push serverctrl's `commit` to every other host in parallel; each validates it in its
/// own pre-receive and applies it itself. A host whose apply ended well now has
/// `commit` as its applied one.
pub fn apply_all(model: &Model, commit: &str, only: Option<&[String]>) -> Vec<Applied> {
    let (Some(hosts), Some(here)) = (&model.hosts, model.here.as_deref()) else {
        return Vec::new();
    };
    let others: Vec<&HostSpec> = hosts
        .others(here)
        .filter(|h| only.is_none_or(|o| o.contains(&h.name)))
        .collect();
    crate::host::parallel::map(&others, others.len().max(1), |h| {
        let t0 = Instant::now();
        let (ok, output) = match apply_one(model, h, commit) {
            Ok(r) => r,
            Err(e) => (false, format!("{e:#}")),
        };
        Applied {
            host: h.name.clone(),
            ok,
            output,
            took: t0.elapsed(),
        }
    })
}

fn apply_one(model: &Model, h: &HostSpec, commit: &str) -> Result<(bool, String)> {
    let repo = model.git.root.join(format!("{SERVERCTRL}.git"));
    // As the entry account, whose repository it is: root running git there would run
    // the hooks and config that account may write.
    let mut cmd = crate::host::users::as_user(&model.access.entry, "git");
    cmd.arg("--git-dir").arg(&repo);
    cmd.env("GIT_SSH_COMMAND", peer::git_ssh_command_as_entry(model, h))
        .env("GIT_SSH_VARIANT", "ssh")
        .args(["push", "--porcelain"])
        .arg(format!("{}:{SERVERCTRL}", crate::core::peers::destination(model, h)))
        // Forced: each host seeded its own serverctrl at `repo init`; the primary's
        // history is the one that counts.
        .arg(format!("+{commit}:refs/heads/{MAIN_BRANCH}"));
    let out = crate::host::child::output(&mut cmd, peer::APPLY)
        .with_context(|| format!("pushing serverctrl to {}", h.name))?;
    let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stdout));
    if !out.status.success() {
        return Ok((false, text));
    }
    // The push ran its apply (or found the commit there already, and ran none):
    // what the host itself says it applied decides.
    let mut pong = ping(model, h)?;
    if pong.applied.as_deref() != Some(commit) {
        let a = peer::ask(model, h, "apply", peer::APPLY)?;
        text.push_str(&String::from_utf8_lossy(&a.output.stdout));
        text.push_str(&String::from_utf8_lossy(&a.output.stderr));
        pong = ping(model, h)?;
    }
    Ok((pong.applied.as_deref() == Some(commit), text))
}

fn ping(model: &Model, h: &HostSpec) -> Result<Pong> {
    let a = peer::ask(model, h, "ping", peer::ASK)?;
    if !a.ok() {
        anyhow::bail!("{}", failure(&a));
    }
    serde_json::from_str(a.stdout().trim()).map_err(|e| anyhow::anyhow!("unreadable answer: {e}"))
}

/// A host's retries, kept by the retry itself (the entry account, in its own
/// directory): how many tries of which commit, and when the next may be.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Backoff {
    pub commit: String,
    pub tries: u32,
    pub next_at: u64,
}

fn backoff_path(model: &Model) -> PathBuf {
    crate::core::peers::control_dir(model, false).join("backoff.json")
}

fn load_backoff(model: &Model) -> BTreeMap<String, Backoff> {
    std::fs::read_to_string(backoff_path(model))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Back-off after `tries` failures: 30 s doubling, at most 15 min.
pub fn backoff(tries: u32) -> u64 {
    (30u64 << tries.min(5)).min(15 * 60)
}

/// Print each host's apply, its lines marked with the host; the number that failed.
pub fn print_applied(results: &[Applied]) -> usize {
    let mut failed = 0;
    for r in results {
        for line in r.output.lines().filter(|l| !l.trim().is_empty()) {
            println!("{}: {line}", r.host);
        }
        if r.ok {
            println!("host {}: applied in {} ms", r.host, r.took.as_millis());
        } else {
            failed += 1;
            println!(
                "host {}: NOT applied (after {} ms); it keeps running what it last applied. The retry timer tries again (`hhlctl hosts sync` now)",
                r.host,
                r.took.as_millis()
            );
        }
    }
    failed
}

/// The retry, as the entry account (`hhlctl hosts sync` drops to it): the deploys
/// queued when a link died, then every host whose applied commit is not this host's
/// and whose back-off is over (all of them: `force`). What is owed is asked of the
/// hosts themselves, never read from a file another account could write.
pub fn sync(model: &Model, force: bool) -> Result<usize> {
    let left = crate::ops::forward::drain(model)?;
    if left > 0 {
        println!("{left} queued deploy(s) still wait for their host");
    }
    // What this host (the primary) last applied is what every other host is owed.
    let Some(commit) = applied_commit(model) else {
        return Ok(0);
    };
    let mut tries = load_backoff(model);
    let owed: Vec<String> = ping_all(model)
        .into_iter()
        .filter(|s| !s.primary)
        .filter(|s| s.pong.as_ref().and_then(|p| p.applied.as_deref()) != Some(commit.as_str()))
        .map(|s| s.host)
        .filter(|h| force || tries.get(h).is_none_or(|b| b.commit != commit || b.next_at <= now()))
        .collect();
    if owed.is_empty() {
        return Ok(0);
    }
    let results = apply_all(model, &commit, Some(&owed));
    let failed = print_applied(&results);
    for r in &results {
        if r.ok {
            tries.remove(&r.host);
        } else {
            let b = tries.entry(r.host.clone()).or_default();
            if b.commit != commit {
                *b = Backoff::default();
                b.commit = commit.clone();
            }
            b.next_at = now() + backoff(b.tries);
            b.tries += 1;
        }
    }
    let path = backoff_path(model);
    crate::host::fsapply::write_file(&path, serde_json::to_string_pretty(&tries)?.as_bytes(), 0o600)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(failed)
}
