//! Several hosts: what the primary passes on to the host an owner runs on.
//!
//! - A request about another host's instances (`ssh <entry>@<primary> restart …`, the
//!   console's actions): `request` sends it as `as <identity> <request>`, after the
//!   primary's own `access::may`; that host asks `access::may` again against its own
//!   hhl.yaml. ssh streams the answer, the console shows it whole.
//! - A push for an owner placed on another host: the primary's pre-receive hands the
//!   same update to that host first (`-o no-deploy`, as the pusher, whose access that
//!   host checks again), so its checks speak at push time and an unreachable host
//!   refuses the push before any ref moves. The primary's post-receive then asks that
//!   host to deploy (`as <pusher> deploy <instance>`), its lines streamed back; a link
//!   that dies there leaves the deploy queued, done once by the retry (`deploy` makes
//!   a release only where the branch head is not live).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::core::model::hosts::HostSpec;
use crate::core::model::Model;
use crate::core::repos::{PushOptions, RefUpdate, Repo};
use crate::host::peer;

/// Where a forwarded request's answer goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// To this process's stdout and stderr as it comes (ssh).
    Streamed,
    /// Kept, to be shown whole (the console).
    Captured,
}

/// What the other host answered to a forwarded request.
#[derive(Debug, Clone)]
pub struct Forwarded {
    pub host: String,
    /// Its exit code; 255 is ssh's own failure (`unreachable` says what).
    pub code: i32,
    /// What it printed (captured only).
    pub stdout: String,
    pub stderr: String,
    /// The host was not reached, or the link died: what to tell, naming the host.
    pub unreachable: Option<String>,
}

impl Forwarded {
    pub fn ok(&self) -> bool {
        self.code == 0
    }
}

/// Send `line`, a request of `identity`'s that the caller has authorized with
/// `access::may`, to `host`, which runs it as `as <identity> <line>` and authorizes it
/// again; within `peer::ACT` (a restart waits for systemd there). Streamed, an
/// unreachable host is told on stderr here.
pub fn request(model: &Model, host: &HostSpec, identity: &str, line: &str, answer: Answer) -> Result<Forwarded> {
    let verb = format!("as {identity} {line}");
    // `logs -f` follows until the developer stops it: only the keep-alive ends it.
    let words: Vec<&str> = line.split_whitespace().collect();
    let follows = words.first() == Some(&"logs") && words.iter().any(|w| *w == "-f" || *w == "--follow");
    let streamed = if follows { peer::FOLLOW } else { peer::ACT };
    let (code, stdout, stderr) = match answer {
        Answer::Streamed => (peer::run(model, host, &verb, streamed)?, String::new(), String::new()),
        Answer::Captured => {
            let a = peer::ask(model, host, &verb, peer::ACT)?;
            let code = a.output.status.code().unwrap_or(1);
            (code, a.stdout(), String::from_utf8_lossy(&a.output.stderr).into_owned())
        }
    };
    let unreachable = (code == 255).then(|| {
        let why = stderr.trim();
        format!(
            "host {} ({}) cannot be reached{}, so nothing was done there; it keeps running what it runs.\n  \
             hint: your own host also takes `ssh {}@{} …` directly, while the primary cannot reach it",
            host.name,
            host.address,
            if why.is_empty() {
                String::new()
            } else {
                format!(" ({why})")
            },
            model.access.entry,
            host.address
        )
    });
    if let (Answer::Streamed, Some(u)) = (answer, &unreachable) {
        eprintln!("error: {u}");
    }
    Ok(Forwarded {
        host: host.name.clone(),
        code,
        stdout,
        stderr,
        unreachable,
    })
}

/// pre-receive: pass `u` (a branch of `repo` whose owner runs on `host`) on to it.
/// `Err` text: why the push is refused (said to the pusher).
pub fn push_ahead(model: &Model, host: &HostSpec, repo: &Repo, u: &RefUpdate, me: &str) -> Result<Result<(), String>> {
    // Reachable at all, quickly: a host that is down refuses the push in seconds.
    let ping = peer::ask(model, host, "ping", peer::ASK)?;
    if !ping.ok() {
        return Ok(Err(format!(
            "host {} ({}), where this branch deploys, cannot be reached: {}; nothing moved, here or there. Push again when it answers (`ssh <entry>@<primary> status` shows it)",
            host.name,
            host.address,
            crate::ops::hosts::failure(&ping)
        )));
    }
    let status = push_as(model, host, repo, &target_of(u), me, &["-o", "no-deploy"])?;
    Ok(match status.code() {
        Some(0) => Ok(()),
        _ => Err(format!(
            "host {} ({}) did not take the push (its words are above); nothing moved here",
            host.name, host.address
        )),
    })
}

/// The refspec that makes `host`'s ref what `u` made the primary's.
fn target_of(u: &RefUpdate) -> String {
    if u.is_delete() {
        format!(":{}", u.refname)
    } else {
        format!("+{}:{}", u.new, u.refname)
    }
}

/// `git push` of `target` from the primary's `repo` to `host`'s, as `me` (that host's
/// hooks check and deploy as for `me`'s own push); their lines go to stderr.
fn push_as(
    model: &Model,
    host: &HostSpec,
    repo: &Repo,
    target: &str,
    me: &str,
    extra: &[&str],
) -> Result<std::process::ExitStatus> {
    let mut cmd = crate::host::git::at(&repo.path);
    cmd.env("GIT_SSH_COMMAND", wrap_as(&peer::git_ssh_command(model, host), me))
        .env("GIT_SSH_VARIANT", "simple")
        .args(["push", "-q"])
        .args(extra)
        .arg(format!(
            "{}:{}",
            crate::core::peers::destination(model, host),
            repo.name
        ))
        .arg(target)
        .stdout(std::process::Stdio::null());
    crate::host::child::status(&mut cmd, peer::ACT).with_context(|| format!("passing the push on to {}", host.name))
}

/// post-receive of the shared Lua library on the primary: the same update to every
/// other host, whose own hook deploys it there (and reloads its instances). A host
/// that cannot be reached is queued: the retry pushes it again and applies there.
/// Returns how many hosts refused it.
pub fn lualib_to_others(model: &Model, repo: &Repo, u: &RefUpdate, me: &str) -> Result<usize> {
    let (Some(hosts), Some(here)) = (&model.hosts, model.here.as_deref()) else {
        return Ok(0);
    };
    let mut failed = 0;
    for h in hosts.others(here) {
        let code = match push_as(model, h, repo, &target_of(u), me, &[]) {
            Ok(s) => s.code().unwrap_or(255),
            Err(e) => {
                eprintln!("{e:#}");
                255
            }
        };
        match code {
            0 => println!(
                "host {}: {} {} deployed there",
                h.name,
                repo.name,
                crate::ops::deploy::short(&u.new)
            ),
            // git's exit when ssh failed (not reached, or lost on the way).
            128 | 255 => {
                let mut queue = load_queue(model);
                let q = Queued {
                    host: h.name.clone(),
                    identity: me.to_string(),
                    instance: LUALIB.to_string(),
                };
                queue.insert(format!("{}:{LUALIB}", h.name), q);
                store_queue(model, &queue)?;
                println!(
                    "queued: host {} ({}) did not take {} now; it gets it when it answers again (hhl-hosts-sync.timer)",
                    h.name, h.address, repo.name
                );
            }
            _ => {
                failed += 1;
                println!("host {}: refused {} (its words are above)", h.name, repo.name);
            }
        }
    }
    Ok(failed)
}

/// The queue's name for the shared Lua library (no instance is called that: names
/// are `<server>-<owner>` or a port).
const LUALIB: &str = "lualib";

/// git's ssh command whose remote command is prefixed with `as <me>`: git appends the
/// destination and `git-receive-pack '<repo>'`; a shell function puts `as <me>` first.
fn wrap_as(ssh: &str, me: &str) -> String {
    let me = crate::core::peers::shell_word(me);
    format!("f() {{ d=$1; shift; exec {ssh} \"$d\" as {me} \"$@\"; }}; f")
}

/// A deploy owed to a host whose link died after the ref moved.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Queued {
    pub host: String,
    pub identity: String,
    pub instance: String,
}

/// In the entry account's directory: its hooks queue, and root's retry drains.
fn queue_path(model: &Model) -> PathBuf {
    crate::core::peers::control_dir(model, false).join("queued.json")
}

fn load_queue(model: &Model) -> BTreeMap<String, Queued> {
    std::fs::read(queue_path(model))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn store_queue(model: &Model, q: &BTreeMap<String, Queued>) -> Result<()> {
    crate::host::fsapply::write_file(&queue_path(model), &serde_json::to_vec_pretty(q)?, 0o644)
}

/// post-receive: deploy `server`'s branch `owner` on `host`; 1 when it failed.
pub fn deploy_there(
    model: &Model,
    host: &HostSpec,
    me: &str,
    server: &str,
    owner: &str,
    opts: &PushOptions,
) -> Result<usize> {
    if opts.no_deploy {
        println!(
            "{server} {owner}: updated on host {}; not deployed (-o no-deploy)",
            host.name
        );
        return Ok(0);
    }
    let q = Queued {
        host: host.name.clone(),
        identity: me.to_string(),
        instance: format!("{server}-{owner}"),
    };
    // Queued first: a hook killed midway leaves it owed, never lost.
    let mut queue = load_queue(model);
    queue.insert(q.instance.clone(), q.clone());
    store_queue(model, &queue)?;
    let code = peer::run(model, host, &format!("as {me} deploy {}", q.instance), peer::ACT)?;
    if code == 255 {
        println!(
            "queued: host {} ({}) was lost during the deploy of {}; it is deployed once when the host answers again (the primary retries every 30 s)",
            host.name, host.address, q.instance
        );
        return Ok(0);
    }
    queue.remove(&q.instance);
    store_queue(model, &queue)?;
    Ok(if code == 0 { 0 } else { 1 })
}

/// The retry: each queued deploy whose host answers now. Returns how many are left.
pub fn drain(model: &Model) -> Result<usize> {
    let mut queue = load_queue(model);
    let hosts = match &model.hosts {
        Some(h) => h,
        None => return Ok(0),
    };
    for (key, q) in queue.clone() {
        // Only what a hook of this host could have queued: a known host, an identity
        // of hhl.yaml (or root), an instance of it (or the library).
        let known_id = q.identity == "root"
            || model.access.identities.contains_key(&q.identity)
            || model.access.is_admin(&q.identity);
        let known_instance = q.instance == LUALIB || model.owner_of(&q.instance).is_some();
        let Some(h) = hosts.get(&q.host).filter(|_| known_id && known_instance) else {
            eprintln!("dropped a queued deploy that names no host, identity or instance of hhl.yaml: {key}");
            queue.remove(&key);
            continue;
        };
        let code = if q.instance == LUALIB {
            lualib_again(model, h, &q.identity)?
        } else {
            peer::run(model, h, &format!("as {} deploy {}", q.identity, q.instance), peer::ACT)?
        };
        if code != 255 {
            println!(
                "host {}: queued deploy of {} {}",
                h.name,
                q.instance,
                if code == 0 { "done" } else { "failed (see above)" }
            );
            queue.remove(&key);
        }
    }
    store_queue(model, &queue)?;
    Ok(queue.len())
}

/// The retry of a library push a host missed: master's head pushed again, then that
/// host's own apply, which deploys a library left behind (the push may have moved its
/// ref and been cut off before its deploy).
fn lualib_again(model: &Model, h: &HostSpec, me: &str) -> Result<i32> {
    let Some(repo) = crate::core::repos::repos(model)
        .into_iter()
        .find(|r| r.kind == crate::core::repos::RepoKind::Lualib)
    else {
        return Ok(0);
    };
    let head = crate::host::git::run(crate::host::git::at(&repo.path), &["rev-parse", "refs/heads/master"])?;
    let code = push_as(model, h, &repo, &format!("+{head}:refs/heads/master"), me, &[])?
        .code()
        .unwrap_or(255);
    if code != 0 {
        return Ok(if code == 128 { 255 } else { code });
    }
    peer::run(model, h, "apply", peer::APPLY)
}
