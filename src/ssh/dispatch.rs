//! `hhlctl ssh <identity>`: what sshd runs for every key (the forced command). It
//! parses SSH_ORIGINAL_COMMAND, asks `access::may` about every instance, repository
//! and branch involved, and only then runs git or the command, as the entry account.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use super::command::{self, Request, ADMIN_HELP, HELP};
use crate::core::access::{self, Action};
use crate::core::model::Model;
use crate::core::names::MASTER;
use crate::core::package::IDENTITY_ENV;
use crate::core::repos::{Repo, RepoKind};
use crate::core::systemd_types::JobKind;
use crate::core::voice::Voice;
use crate::host::load;
use crate::ops::act;
use crate::ops::remote_apply;
use crate::ops::select::Selection;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The identity whose key sshd matched (from authorized_keys, never the client).
    pub identity: String,
}

pub fn run(config: &Path, args: Args) -> Result<i32> {
    // Which host this is comes from its own host key here, never from the caller.
    std::env::remove_var(crate::host::here::HOST_ENV);
    serve(
        config,
        &args.identity,
        std::env::var("SSH_ORIGINAL_COMMAND").ok(),
        Via::Key,
    )
}

/// How a request reached this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The identity's own key, on this host.
    Key,
    /// Forwarded by the primary (`hhlctl peer`), which authorized it against its copy
    /// of hhl.yaml; asked again here against this host's.
    Peer,
}

/// One request `line` of `identity` (`None`: a login with no command).
pub fn serve(config: &Path, identity: &str, line: Option<String>, via: Via) -> Result<i32> {
    // Who acts, for what this process records (a release's pusher on `deploy`), as the
    // hooks of a push have it.
    std::env::set_var(IDENTITY_ENV, identity);
    if via == Via::Peer {
        std::env::set_var(crate::core::package::FORWARDED_ENV, "1");
    } else {
        std::env::remove_var(crate::core::package::FORWARDED_ENV);
    }
    let loaded = load::load(config)?;
    let model = &loaded.model;
    if !model.access.is_admin(identity) && !model.access.identities.contains_key(identity) {
        eprintln!("refused: `{identity}` is no longer an identity in hhl.yaml; ask an admin");
        return Ok(1);
    }
    let Some(line) = line else {
        // `ssh hhl@server` with no command: there is no shell here.
        eprint!(
            "there is no shell on this account; run one command at a time.\n{}",
            personal_help(model, identity)
        );
        return Ok(1);
    };
    handle(config, model, identity, &line, via)
}

/// `line` as this host serves it, whatever hhl.yaml says of other hosts.
pub fn serve_model(config: &Path, model: &Model, identity: &str, line: &str) -> Result<i32> {
    handle(config, model, identity, line, Via::Peer)
}

fn handle(config: &Path, model: &Model, identity: &str, line: &str, via: Via) -> Result<i32> {
    let request = match command::parse(model, line) {
        Ok(r) => r,
        Err(e) => return refuse(&e),
    };
    if let Some(code) = super::route::elsewhere(config, model, identity, line, &request, via)? {
        return Ok(code);
    }
    match request {
        Request::Receive(repo) => git(model, identity, "receive-pack", &repo),
        Request::Upload(repo) => git(model, identity, "upload-pack", &repo),
        Request::Help => {
            print!("{}", personal_help(model, identity));
            Ok(0)
        }
        Request::Status(names, json) => match act::selection(model, identity, &names) {
            Ok(sel) => crate::ops::status::print(config, &sel, json),
            Err(e) => refuse(&e.to_string()),
        },
        Request::Restart(names) => jobs(model, identity, &names, JobKind::Restart),
        Request::Reload(names) => jobs(model, identity, &names, JobKind::Reload),
        Request::Deploy(names) => deploy(model, identity, &names),
        Request::Start(names) => jobs(model, identity, &names, JobKind::Start),
        Request::Stop(names) => jobs(model, identity, &names, JobKind::Stop),
        Request::Logs {
            follow,
            lines,
            names,
            level,
            since,
        } => {
            let sel = match authorized_logs(model, identity, &names) {
                Ok(s) => s,
                Err(e) => return refuse(&e),
            };
            if level.is_some() || since.is_some() {
                // Filters choose lines, never units: the units are the authorized ones.
                let units: Vec<String> = sel.resolve(model, false)?.iter().map(|i| i.unit()).collect();
                let filter = crate::host::systemd::journal::Filtered {
                    lines,
                    follow,
                    level,
                    since: since.as_deref(),
                };
                return crate::host::systemd::journal::show_filtered(&units, &filter);
            }
            crate::ops::logs::print(config, &sel, lines, follow)
        }
        Request::Releases(name, json) => releases(model, identity, name.as_deref(), json),
        Request::Rollback(name, to) => match act::rollback(model, identity, &name, to.as_deref()) {
            Ok(r) => {
                println!("{}", r.summary(&name));
                Ok(if crate::ops::report::print(std::slice::from_ref(&r.reload)) > 0 {
                    1
                } else {
                    0
                })
            }
            Err(e) => refuse_or_fail(e),
        },
        Request::Web => match web_link::issue(model, identity) {
            Ok(link) => {
                println!("{link}");
                Ok(0)
            }
            Err(e) => refuse(&e),
        },
        Request::RedisSecret(owner) => redis_secret(model, identity, owner.as_deref()),
        Request::Redis { owner, words } => redis(model, identity, owner.as_deref(), &words),
        Request::Plan | Request::Apply => {
            if let Err(e) = access::may(model, identity, Action::Admin) {
                return refuse(&e);
            }
            if matches!(request, Request::Plan) {
                return crate::ops::plan::print(config, Path::new("/"), false, false);
            }
            apply()
        }
    }
}

/// `redis-secret [OWNER]`: the port and secret of the identity's own Redis (admins:
/// anyone's), after the same `access::may` as every other control command.
fn redis_secret(model: &Model, identity: &str, owner: Option<&str>) -> Result<i32> {
    let owner = owner.unwrap_or(identity);
    if let Err(e) = access::may(model, identity, Action::Redis { owner }) {
        return refuse(&e);
    }
    let Some(inst) = crate::core::redis_acl::of(model, owner) else {
        return refuse(&format!("`{owner}` has no Redis in hhl.yaml"));
    };
    let path = crate::core::redis_acl::entry_secret_path(model, owner);
    match crate::host::secrets::read_at(&path) {
        Some(secret) => {
            println!("port {}\nsecret {secret}", inst.port);
            Ok(0)
        }
        None => refuse(&format!(
            "no Redis secret for `{owner}` yet ({}); ask an admin to apply hhl.yaml",
            path.display()
        )),
    }
}

/// `help`: who the caller is, their instances (ports, state), their clone and push
/// commands, then the command list, every command as they type it.
fn personal_help(model: &Model, identity: &str) -> String {
    let voice = crate::host::caller::voice(model);
    let units: Vec<String> = model
        .instances
        .iter()
        .filter(|i| i.developer == identity)
        .map(|i| i.unit())
        .collect();
    // Without systemd the rest of the help is still worth printing: states unknown.
    let states = match crate::host::systemd::Systemd::connect() {
        Ok(s) if !units.is_empty() => s
            .active_states(&units)
            .unwrap_or_default()
            .into_iter()
            .map(|(u, a)| (u, a.to_string()))
            .collect(),
        _ => Default::default(),
    };
    let branches: std::collections::HashSet<String> = crate::core::repos::repos(model)
        .into_iter()
        .filter_map(|r| match r.kind {
            RepoKind::Server(s) => Some((s, r.path)),
            _ => None,
        })
        .filter(|(_, path)| {
            crate::host::git::run(
                crate::host::git::at(path),
                &["rev-parse", "--verify", "-q", &format!("refs/heads/{identity}")],
            )
            .is_ok()
        })
        .map(|(s, _)| s)
        .collect();
    let login = match &voice {
        Voice::Ssh { login } => login.clone(),
        Voice::Shell => "<entry>@<server>".into(),
    };
    let mut commands = HELP.replace("ssh <entry>@server", &format!("ssh {login}"));
    commands = commands.replace("<entry>@server:", &format!("{login}:"));
    commands.push('\n');
    if model.access.is_admin(identity) {
        commands.push_str(ADMIN_HELP);
        commands.push('\n');
    }
    let facts = crate::core::personal_help::Facts {
        states: &states,
        branches: &branches,
        commands: &commands,
    };
    crate::core::personal_help::text(model, identity, &voice, &facts)
}

/// `redis [--owner OWNER] CMD [ARG…]`: one command on the caller's own Redis (admins:
/// anyone's), as its `default` user, after `access::may`; the reply as redis-cli
/// shows it. Nothing in the words picks a host or port: only the owner does.
fn redis(model: &Model, identity: &str, owner: Option<&str>, words: &[Vec<u8>]) -> Result<i32> {
    let owner = owner.unwrap_or(identity);
    if let Err(e) = access::may(model, identity, Action::Redis { owner }) {
        return refuse(&e);
    }
    if let Some(why) = crate::core::redis_cmd::refusal(words) {
        return refuse(&why);
    }
    let Some(inst) = crate::core::redis_acl::of(model, owner) else {
        return refuse(&format!(
            "`{owner}` has no Redis in hhl.yaml{}",
            if model.access.is_admin(identity) {
                "; name an owner: redis --owner dev1 GET k"
            } else {
                ""
            }
        ));
    };
    let path = crate::core::redis_acl::entry_secret_path(model, owner);
    let Some(secret) = crate::host::secrets::read_at(&path) else {
        return refuse(&format!(
            "no Redis secret for `{owner}` yet ({}); ask an admin to apply hhl.yaml",
            path.display()
        ));
    };
    match crate::host::redis_client::run(inst.port, &secret, words) {
        Ok(reply) => {
            println!("{}", crate::core::redis_cmd::show(&reply));
            Ok(if matches!(reply, crate::core::redis_cmd::Reply::Error(_)) {
                1
            } else {
                0
            })
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            Ok(1)
        }
    }
}

pub(super) fn refuse(why: &str) -> Result<i32> {
    eprintln!("refused: {why}\n  hint: `{}` lists what you may run", help_command());
    Ok(1)
}

/// `ssh <entry>@<host> help` as this client types it (this process runs as the entry
/// account; the host is the address the client connected to).
fn help_command() -> String {
    let entry = crate::host::users::current().unwrap_or_else(|_| "<entry>".into());
    let conn = std::env::var("SSH_CONNECTION").unwrap_or_default();
    Voice::ssh(&entry, Voice::host_of_connection(&conn)).cmd("help")
}

fn authorized_logs(model: &Model, identity: &str, names: &[String]) -> Result<Selection, String> {
    if names.is_empty() {
        return act::selection(model, identity, &[]).map_err(|e| e.to_string());
    }
    let sel = Selection {
        names: names.to_vec(),
        dev: None,
        server: None,
        all: false,
    };
    let chosen = sel.resolve(model, false).map_err(|e| e.to_string())?;
    for i in &chosen {
        access::may(model, identity, Action::ReadLogs { owner: &i.developer })?;
    }
    Ok(sel)
}

/// Restart, reload, start or stop through the one shared path (`act`).
fn jobs(model: &Model, identity: &str, names: &[String], kind: JobKind) -> Result<i32> {
    match act::jobs(model, identity, names, kind) {
        Ok(done) => Ok(if crate::ops::report::print(&done) > 0 { 1 } else { 0 }),
        Err(e) => refuse_or_fail(e),
    }
}

/// A refusal is told as one; a failure of the host is an error (exit 1 with context).
fn refuse_or_fail(e: act::Refused) -> Result<i32> {
    match e {
        act::Refused::Failed(e) => Err(e),
        act::Refused::CannotReload { ref name, .. } => refuse(&format!("{e}; restart {name} instead")),
        other => refuse(&other.to_string()),
    }
}

fn releases(model: &Model, identity: &str, name: Option<&str>, json: bool) -> Result<i32> {
    let inst = match act::openresty(model, identity, name) {
        Ok(i) => i,
        Err(e) => return refuse(&e.to_string()),
    };
    // What the console's deploys view shows, oldest first, the live one starred.
    let git_dir = crate::core::repos::repos(model)
        .into_iter()
        .find(|r| r.kind == RepoKind::Server(inst.server.clone()))
        .map(|r| r.path);
    let list = crate::host::release_info::releases(&inst.app_dir(), git_dir.as_deref())?;
    if json {
        // Newest first, as the console's deploys view takes them.
        println!("{}", serde_json::to_string(&list)?);
        return Ok(0);
    }
    for r in list.iter().rev() {
        let mark = if r.live { "*" } else { " " };
        let commit = r.commit.as_deref().map(|c| &c[..c.len().min(10)]).unwrap_or("-");
        let pusher = r
            .pusher
            .as_deref()
            .map(|p| format!(" (pushed by {p})"))
            .unwrap_or_default();
        println!(
            "{mark} {}  {commit}  {}{pusher}",
            r.id,
            r.subject.as_deref().unwrap_or("")
        );
    }
    Ok(0)
}

/// Start the unit that applies serverctrl as root, and show what it printed.
fn apply() -> Result<i32> {
    let ran = remote_apply::apply(&crate::host::systemd::Systemd::connect()?)?;
    remote_apply::print(&ran);
    Ok(if ran.ok { 0 } else { 1 })
}

/// A push to `repo` as `identity`, as `hhlctl ssh` takes one.
pub(super) fn receive_as(model: &Model, identity: &str, repo: &Repo) -> Result<i32> {
    git(model, identity, "receive-pack", repo)
}

/// `git-receive-pack` / `git-upload-pack` on the repository, as this process (the
/// entry account), with the refs the identity may not see hidden, the push size
/// bounded, hooks pinned to the repository's own, and the identity for the hooks.
fn git(model: &Model, identity: &str, service: &str, repo: &Repo) -> Result<i32> {
    let first = match repo.kind {
        RepoKind::Server(_) => Ok(()),
        _ if service == "receive-pack" => access::may(model, identity, Action::Write { repo }),
        _ => access::may(model, identity, Action::Read { repo, branch: MASTER }),
    };
    if let Err(e) = first {
        return refuse(&e);
    }
    let mut cmd = Command::new("git");
    for (k, v) in git_config(model, identity, service, repo) {
        cmd.arg("-c").arg(format!("{k}={v}"));
    }
    cmd.arg(service).arg(&repo.path);
    // Nothing from the client's environment reaches git or the hooks, not even the
    // protocol version (sshd passes GIT_PROTOCOL where ops set `AcceptEnv
    // GIT_PROTOCOL`): upload-pack speaking protocol v2 serves any object it holds by
    // its id, so another developer's hidden commit would be one `git fetch <sha>`
    // away; v0 serves only what the advertised (unhidden) refs reach. The identity is
    // ours to set.
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("GIT_") || k.starts_with("HHL_") {
            cmd.env_remove(k.as_ref());
        }
    }
    cmd.env(IDENTITY_ENV, identity);
    if std::env::var_os(crate::core::package::FORWARDED_ENV).is_some() {
        cmd.env(crate::core::package::FORWARDED_ENV, "1");
    }
    if service != "receive-pack" {
        let err = cmd.exec();
        return Err(err).context("running git");
    }
    // A push: git reports the ref updates before post-receive deploys, and ignores
    // that hook's exit code; so the hook notes how it ended in a file of this push's,
    // and this process, whose exit code `git push` takes, tells.
    let scratch = crate::host::release::Scratch::new("push")?;
    let report = scratch.0.join("report");
    cmd.env(crate::core::package::PUSH_REPORT_ENV, &report);
    // No deadline here: receive-pack goes at the pace of the client's upload (sshd's
    // keep-alive ends a client that went away); the hooks it runs are bounded.
    let status = cmd.status().context("running git receive-pack")?;
    // git's protocol on stdout is over: what follows goes where the hook's lines went.
    // SAFETY: dup2 on this process's own standard descriptors.
    unsafe { libc::dup2(2, 1) };
    if !status.success() {
        return Ok(status.code().unwrap_or(1));
    }
    let noted = std::fs::read_to_string(&report).unwrap_or_default();
    after_push(model, identity, repo, &noted)
}

/// After receive-pack: the exit code of `git push`, from how the hooks ended
/// (`noted`). pre-receive notes `accepted` (refs move, a post-receive is owed), which
/// tells a post-receive killed before it noted `begin` from none at all. A push that
/// updated nothing ran no hook: the identity's own branch of `repo` that a deploy left
/// behind (failed, killed) is deployed now.
fn after_push(model: &Model, identity: &str, repo: &Repo, noted: &str) -> Result<i32> {
    let lines: Vec<&str> = noted.lines().collect();
    if lines.contains(&"end ok") {
        return Ok(0);
    }
    if lines.contains(&"end failed") {
        eprintln!("error: the push is stored, but its deploy did not succeed (see above); git push exits 1");
        return Ok(1);
    }
    if lines.contains(&"begin") || lines.contains(&"accepted") {
        eprintln!(
            "error: the push is stored, but its deploy was interrupted (the post-receive hook ended before it finished).\n  \
             `ssh <entry>@server status` shows the branch ahead of its live release; push again, or run `ssh <entry>@server deploy`, to deploy it"
        );
        return Ok(1);
    }
    let RepoKind::Server(server) = &repo.kind else {
        return Ok(0);
    };
    let mine: Vec<&crate::core::model::Instance> = model
        .instances
        .iter()
        .filter(|i| i.kind == crate::core::kind::Kind::Openresty && i.server == *server && i.developer == identity)
        .collect();
    match crate::ops::deploy::converge(model, &mine, false)? {
        (_, 0) => Ok(0),
        _ => {
            eprintln!("error: the deploy of the branch head did not succeed (see above)");
            Ok(1)
        }
    }
}

/// `deploy [INSTANCE…]`: each instance's branch head, when it is not the live release
/// (held back by `-o no-deploy` or a rollback included), after `access::may`.
fn deploy(model: &Model, identity: &str, names: &[String]) -> Result<i32> {
    let chosen = match act::authorized(model, identity, names) {
        Ok(c) => c,
        Err(e) => return refuse_or_fail(e),
    };
    let targets: Vec<&crate::core::model::Instance> = chosen
        .into_iter()
        .filter(|i| i.kind == crate::core::kind::Kind::Openresty)
        .collect();
    if targets.is_empty() {
        return refuse("deploy: no OpenResty instance chosen (Redis has no code to deploy)");
    }
    let (_, failed) = crate::ops::deploy::converge(model, &targets, true)?;
    Ok(if failed > 0 { 1 } else { 0 })
}

/// The `git -c` settings for one session. Pure.
pub fn git_config(model: &Model, identity: &str, service: &str, repo: &Repo) -> Vec<(String, String)> {
    let mut out = vec![(
        "core.hooksPath".to_string(),
        repo.path.join("hooks").display().to_string(),
    )];
    let push = model.git.max_push_size;
    out.push(("receive.maxInputSize".into(), push.to_string()));
    // Only what an advertised ref reaches may be asked for by id, whatever a system
    // or repository gitconfig says (protocol v0, which `git` below is held to).
    for key in [
        "uploadpack.allowAnySHA1InWant",
        "uploadpack.allowReachableSHA1InWant",
        "uploadpack.allowTipSHA1InWant",
        "uploadpack.allowRefInWant",
    ] {
        out.push((key.into(), "false".into()));
    }
    let hide = if service == "receive-pack" {
        "receive.hideRefs"
    } else {
        "uploadpack.hideRefs"
    };
    if !model.access.is_admin(identity) {
        // Hide every ref, then show the branches this identity may read.
        out.push((hide.into(), "refs/".into()));
        let branches: Vec<&str> = match repo.kind {
            RepoKind::Server(_) => model.owners().collect(),
            _ => vec![MASTER],
        };
        for b in branches {
            if access::may(model, identity, Action::Read { repo, branch: b }).is_ok() {
                out.push((hide.into(), format!("!refs/heads/{b}")));
            }
        }
    }
    out
}

/// The one-time sign-in link for the log page, signed with the page's key (which
/// apply makes readable by the entry account).
mod web_link {
    use crate::core::model::Model;

    pub fn issue(_model: &Model, identity: &str) -> Result<String, String> {
        crate::ops::web_link::issue(identity).map_err(|e| {
            format!("no sign-in link: {e:#}; ask an admin to apply hhl.yaml, which makes the log page's key")
        })
    }
}
