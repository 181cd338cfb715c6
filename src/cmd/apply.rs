//! `hhlctl apply`: render, validate, write, and bring systemd to match.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

use crate::core::artifact::Artifact;
use crate::core::artifact::Change;
use crate::core::error::Diagnostics;
use crate::core::kind::Kind;
use crate::core::model::{Instance, Model};
use crate::core::names::MASTER;
use crate::core::package::WEB_UNIT;
use crate::core::pending::{self, Pending};
use crate::core::repos::{self, RepoKind, MAIN_BRANCH};
use crate::core::systemd_types::{ActiveState, JobKind, JobOutcome};
use crate::core::{reconcile, render};
use crate::host::fsapply::{self, Manifest, Ownership};
use crate::host::load;
use crate::host::load::Loaded;
use crate::host::release_info::{self, Deployment};
use crate::host::systemd::{journal, Systemd};
use crate::host::{fault, release, reown, users, validate};

use crate::ops::{ready, serverctrl};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// First copy hhl.yaml and the templates from serverctrl's master branch into
    /// hhl.yaml's directory (what a push to serverctrl runs, as hhl-apply.service).
    #[arg(long)]
    pub from_repo: bool,
}

pub fn run(config: &Path, args: Args) -> Result<i32> {
    let root = Path::new("/");
    let taken = if args.from_repo {
        Some(serverctrl::take(config)?)
    } else {
        None
    };
    let code = apply(root, config)?;
    if let (Some(commit), 0) = (taken, code) {
        serverctrl::record(config, &commit)?;
        return to_other_hosts(config, &commit);
    }
    if code == 0 && !args.from_repo {
        let loaded = load::load(config)?;
        if let (Some(h), Some(here)) = (&loaded.model.hosts, &loaded.model.here) {
            if h.primary().name == *here && h.list.len() > 1 {
                println!("the other hosts were not told: they apply serverctrl's commits (push hhl.yaml to serverctrl, or `ssh <entry>@<primary> apply`)");
            }
        }
    }
    Ok(code)
}

/// On the primary of several hosts: the same commit to every other host, each applying
/// it itself, side by side; one that fails or does not answer makes the exit 1 and is
/// owed a retry (hhl-hosts-sync.timer).
fn to_other_hosts(config: &Path, commit: &str) -> Result<i32> {
    let loaded = load::load(config)?;
    let model = &loaded.model;
    let (Some(h), Some(here)) = (&model.hosts, &model.here) else {
        return Ok(0);
    };
    if h.primary().name != *here || h.list.len() < 2 {
        return Ok(0);
    }
    let results = crate::ops::hosts::apply_all(model, commit, None);
    let failed = crate::ops::hosts::print_applied(&results);
    Ok(if failed > 0 { 1 } else { 0 })
}

fn apply(root: &Path, config: &Path) -> Result<i32> {
    let loaded = load::load(config)?;
    let artifacts = loaded.render()?;
    let model = &loaded.model;
    // Nothing is written and nothing running is touched until every check passed.
    refuse_system_accounts(&loaded)?;
    crate::ops::plan::refuse_file_paths(root, &loaded)?;
    crate::host::portholder::refuse_taken(&loaded)?;
    crate::host::optional::warn_missing(model);
    if !model.access.create {
        refuse_missing_users(&loaded)?;
    }
    let entry = users::entry_state(&model.access, &model.paths.entry_home);
    if let users::Entry::Foreign(why) = &entry {
        bail!("{why}");
    }
    // One apply at a time: the intent record and the manifest are read, then rewritten.
    let _lock = lock(root, model)?;
    let (previous, warnings) = Manifest::load(root, &model.paths)?;
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    let swept = sweep_leftovers(root, config, model, &artifacts, &previous);
    if swept > 0 {
        println!("cleared {swept} leftover(s) of an interrupted run");
    }
    let changes = fsapply::diff(root, &artifacts, &previous, Ownership::Apply)?;

    // Every check before the first write: a refusal leaves the host as it was. Configs
    // are tested as the user that will run them; those of users not made yet, in a
    // scratch copy of the tree; those whose files change hands, as their owner now (see
    // `validate::nginx_configs`).
    if validate::rsyslog_rules(model, &artifacts, &changes)? {
        println!("checked the rsyslog rules with rsyslogd -N1");
    }
    let tested = validate::nginx_configs(&loaded, &artifacts, &changes, &reown::plan(root, &artifacts))?;
    if tested > 0 {
        println!("checked {tested} nginx config(s) with nginx -t");
    }
    fault::point("apply:checked");

    for user in users::create_missing(&model.access, &model.paths.entry_home)? {
        println!("created unix user {user}");
    }
    // Directories whose user changes (an upgrade from 0.1.0, a users.map edit): handed
    // over after the checks, with their instances stopped (see host::reown).
    let reowns = reown::plan(root, &artifacts);
    // Before any Redis (re)starts: it refuses to start without its ACL file.
    if crate::host::secrets::ensure(root, model)? > 0 {
        println!("made Redis secrets in {}", crate::core::redis_acl::dir(model).display());
    }
    // The log page starts after the first apply: its link key (readable by the entry
    // account, for `ssh … web`) and a password file (empty: sign-in by link only).
    if crate::host::secrets::ensure_web_key(root, model)? {
        println!("made the log page's link key {}", crate::core::package::WEB_KEY);
    }
    if crate::host::peer::hand_key_to_entry(root, model)? {
        println!("handed the peer key to the entry account {}", model.access.entry);
    }
    super::web::ensure_passwd(&crate::host::fsapply::under(
        root,
        Path::new(crate::core::package::WEB_PASSWD),
    ))?;
    // Branches ahead of their live release (a push whose deploy failed or was killed):
    // deployed here; their reloads are owed, as a killed deploy's are, and run below.
    let (deployed, mut failed) = deploy_behind(root, model);

    let systemd = Systemd::connect()?;
    let units: Vec<String> = model
        .instances
        .iter()
        .map(|i| i.unit())
        .chain([reconcile::TARGET.to_string(), reconcile::RSYSLOG.to_string()])
        .chain([WEB_UNIT.to_string()])
        .collect();
    let mut active = systemd.active_states(&units)?;
    // Stopped before their files change owner (a Redis saves on the way down, as its
    // old user), started after as their new user.
    let reowned: Vec<String> = reown::instances(model, &reowns).iter().map(|i| i.unit()).collect();
    let mut stop_first: Vec<String> = reowned
        .iter()
        .filter(|u| reconcile::is_running(&active, u))
        .cloned()
        .collect();
    let convert = match &entry {
        users::Entry::Convert(args) => Some(args),
        _ => None,
    };
    // usermod moves no home of an account with a process, and the log page runs as the
    // entry account: it stops for the usermod and starts again after.
    let web_back = convert.is_some() && reconcile::is_running(&active, WEB_UNIT);
    if web_back {
        stop_first.push(WEB_UNIT.to_string());
    }
    for unit in &reowned {
        active.insert(unit.clone(), ActiveState::Inactive);
    }
    let mut actions = reconcile::plan(model, &changes, &active);
    // What a killed run wrote but never acted on.
    let (owed, switched) = owed(root, model)?;
    if !owed.is_empty() {
        println!("finishing an interrupted run: {}", describe(&owed));
    }
    reconcile::merge(model, &mut actions, &owed, &active);
    let intent = actions.owed();
    store_intent(root, model, &intent)?;
    fault::point("apply:intent");

    let stopped = systemd.run_jobs(
        &actions
            .stop
            .iter()
            .chain(&stop_first)
            .map(|u| (u.clone(), JobKind::Stop))
            .collect::<Vec<_>>(),
    )?;
    failed += report(&stopped);
    fault::point("apply:stopped");
    if !reowns.is_empty() {
        if let Some(o) = stopped.iter().find(|o| !o.ok() && reowned.contains(&o.unit)) {
            bail!(
                "{} did not stop, so no file changed owner; run `hhlctl apply` again once it stopped (`systemctl stop {}`)",
                o.unit,
                o.unit
            );
        }
        let n = reown::run(root, &reowns)?;
        // The trees, not every directory of them.
        let tops: Vec<String> = reowns
            .iter()
            .filter(|r| !reowns.iter().any(|o| o.path != r.path && r.path.starts_with(&o.path)))
            .map(|r| r.path.display().to_string())
            .collect();
        println!("re-owned {n} file(s) for their new users in {}", tops.join(", "));
    }
    fault::point("apply:reowned");
    if let Some(args) = convert {
        match users::convert_entry(args) {
            Ok(()) => println!(
                "made unix user {} the entry account (usermod {})",
                model.access.entry,
                args.join(" ")
            ),
            Err(e) => {
                failed += 1;
                eprintln!(
                    "error: {e:#}\n  hint: stop what runs as `{}` (`ps -u {}`), then run `hhlctl apply` again",
                    model.access.entry, model.access.entry
                );
            }
        }
    }

    // Listed before written: a run killed midway leaves every file it may have written
    // on the list, so the next run can still remove those it no longer generates.
    let now = Manifest::of(&artifacts);
    if changes.iter().any(|c| c.change != Change::Unchanged) {
        now.union(&previous).store(root, &model.paths.state_dir)?;
    }
    fault::point("apply:manifest-ahead");
    fsapply::apply(root, &artifacts, &changes, Ownership::Apply)?;
    fault::point("apply:files");
    now.store(root, &model.paths.state_dir)?;
    fault::point("apply:manifest");
    let count = |c: Change| changes.iter().filter(|f| f.change == c && !f.dir).count();
    let (added, changed, removed) = (count(Change::Added), count(Change::Changed), count(Change::Removed));
    if added + changed + removed > 0 {
        println!("files: {added} added, {changed} changed, {removed} removed");
    }
    if actions.daemon_reload {
        systemd.daemon_reload()?;
        println!("systemd: daemon-reload");
    }
    fault::point("apply:daemon-reload");
    // A unit that hit its start limit (or failed) refuses to start until reset.
    systemd
        .reset_failed(
            actions
                .jobs
                .iter()
                .filter(|(_, k)| matches!(k, JobKind::Start | JobKind::Restart))
                .map(|(u, _)| u.as_str()),
        )
        .context("asking systemd to reset-failed the units before starting them")?;
    let outcomes = systemd.run_jobs(&actions.jobs).context("running systemd jobs")?;
    fault::point("apply:jobs");
    failed += report(&outcomes);
    failed += ready::wait_for_ports(model, &outcomes, &crate::core::voice::Voice::Shell);
    if web_back {
        failed += report(&systemd.run_jobs(&[(WEB_UNIT.to_string(), JobKind::Start)])?);
    }
    settle(root, model, &outcomes, &switched)?;

    if actions.stop.is_empty()
        && actions.jobs.is_empty()
        && !actions.daemon_reload
        && added + changed + removed + swept + deployed == 0
    {
        println!("nothing to do: {} instances up to date", model.instances.len());
    }
    Ok(if failed > 0 { 1 } else { 0 })
}

fn lock(root: &Path, model: &Model) -> Result<release::Lock> {
    let dir = fsapply::under(root, &model.paths.state_dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    release::Lock::take_for(&dir, LOCK_WAIT, "hhlctl apply, in")
}

const LOCK_WAIT: Duration = Duration::from_secs(120);

/// What killed runs left: temp files beside every file apply writes, in `state_dir`,
/// its secrets' directories, and beside hhl.yaml (`--from-repo` copies into it), and half-extracted releases and
/// switch links of killed deploys.
fn sweep_leftovers(root: &Path, config: &Path, model: &Model, artifacts: &[Artifact], previous: &Manifest) -> usize {
    let mut dirs: BTreeSet<PathBuf> = artifacts
        .iter()
        .filter(|a| a.is_generated())
        .map(|a| a.path.as_path())
        .chain(previous.files.iter().map(PathBuf::as_path))
        .filter_map(|p| p.parent())
        .map(|d| fsapply::under(root, d))
        .collect();
    dirs.insert(fsapply::under(root, &model.paths.state_dir));
    if let Some(dir) = config.parent() {
        dirs.insert(dir.to_path_buf());
    }
    let mut n: usize = dirs.iter().map(|d| fsapply::clear_temps(d).len()).sum();
    // The secrets' directories (owners' secrets and Redis ACLs, the entry account's
    // copies): only apply writes there, and it holds its lock, so every temp copy is a
    // killed run's, whatever process has its pid now.
    let secrets = crate::core::redis_acl::dir(model);
    for d in [secrets.join("entry"), secrets] {
        n += fsapply::clear_all_temps(&fsapply::under(root, &d)).len();
    }
    for app in app_dirs(model) {
        n += release::sweep(&fsapply::under(root, &app)).unwrap_or(0);
    }
    n
}

/// Deploy the head of every branch that is ahead of its live release and not held
/// back (`release_info::Deployment::behind`): each OpenResty instance's, and the Lua
/// library's. Only on the live host (`root` is `/`). Returns (deployed, failed).
fn deploy_behind(root: &Path, model: &Model) -> (usize, usize) {
    if root != Path::new("/") {
        return (0, 0);
    }
    let insts: Vec<&Instance> = model.instances.iter().filter(|i| i.kind == Kind::Openresty).collect();
    let mut targets: Vec<(PathBuf, String, PathBuf, Deployment)> = insts
        .iter()
        .zip(release_info::deployments(model, &insts))
        .filter_map(|(i, d)| {
            let (repo, _) = repos::source_of(model, i)?;
            Some((i.app_dir(), i.name.clone(), repo.path, d?))
        })
        .collect();
    if let Some(lib) = repos::repos(model).into_iter().find(|r| r.kind == RepoKind::Lualib) {
        let app = render::lib_app_dir(model);
        let head = release_info::heads(&lib.path).remove(MAIN_BRANCH);
        let d = release_info::deployment(&app, &lib.path, MAIN_BRANCH, head);
        targets.push((app, model.paths.lua_lib_dir.display().to_string(), lib.path, d));
    }
    let (mut deployed, mut failed) = (0, 0);
    for (app, name, git_dir, d) in targets {
        let Some(head) = d.pushed.as_deref().filter(|_| d.behind()) else {
            continue;
        };
        let live = d.live.as_deref().map(short).unwrap_or("initial");
        match release::deploy(&git_dir, head, &app, crate::ops::deploy::keep(model)) {
            Ok(dep) => {
                let _ = release_info::record_deployed(&app, &dep.id, &git_dir, head, dep.files, dep.bytes);
                println!(
                    "deployed {} to {name}: branch `{}` was ahead of its live release {live}",
                    short(head),
                    d.branch
                );
                deployed += 1;
            }
            Err(e) => {
                eprintln!(
                    "error: deploying {} (branch `{}`) to {name} failed: {e:#}",
                    short(head),
                    d.branch
                );
                failed += 1;
            }
        }
    }
    (deployed, failed)
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(10)]
}

/// Every deploy target: each OpenResty instance's `app/`, and the shared library's.
fn app_dirs(model: &Model) -> Vec<PathBuf> {
    model
        .instances
        .iter()
        .filter(|i| i.kind == Kind::Openresty)
        .map(|i| i.app_dir())
        .chain([render::lib_app_dir(model)])
        .collect()
}

/// A deploy target whose `current` was switched by a killed deploy or rollback, and
/// the record it left.
type Switched = Vec<(PathBuf, String)>;

/// The intent record a killed run left, plus reloads that killed deploys and
/// rollbacks owe (a `current` switched, its reload never run).
fn owed(root: &Path, model: &Model) -> Result<(Pending, Switched)> {
    let path = fsapply::under(root, &model.paths.state_dir.join(pending::FILE));
    let mut owed = match std::fs::read_to_string(&path) {
        Ok(text) => Pending::parse(&text).map_err(|(line, what)| {
            anyhow!(
                "{}:{line}: {what}\n  hint: hhlctl writes this file itself, before it changes files, and removes it once systemd acted on them; \
                 delete it, run `hhlctl apply`, then `hhlctl restart --all` to be sure every instance runs its config",
                path.display()
            )
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Pending::default(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut switched = Switched::new();
    for app in app_dirs(model) {
        let app = fsapply::under(root, &app);
        if let Some(record) = release::reload_pending(&app) {
            switched.push((app, record));
        }
    }
    let lib = fsapply::under(root, &render::lib_app_dir(model));
    let lib_owed = switched.iter().any(|(app, _)| *app == lib);
    for inst in model.instances.iter().filter(|i| i.kind == Kind::Openresty) {
        let app = fsapply::under(root, &inst.app_dir());
        if lib_owed || switched.iter().any(|(a, _)| *a == app) {
            owed.jobs.push((inst.unit(), JobKind::Reload));
        }
    }
    Ok((owed, switched))
}

fn describe(owed: &Pending) -> String {
    let mut parts: Vec<String> = Vec::new();
    if owed.daemon_reload {
        parts.push("daemon-reload".into());
    }
    parts.extend(owed.jobs.iter().map(|(u, k)| format!("{} {u}", k.command())));
    parts.join(", ")
}

fn store_intent(root: &Path, model: &Model, intent: &Pending) -> Result<()> {
    let path = fsapply::under(root, &model.paths.state_dir.join(pending::FILE));
    if intent.is_empty() {
        return remove_if_there(&path);
    }
    fsapply::write_file(&path, intent.to_text().as_bytes(), 0o644)
}

fn remove_if_there(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// The jobs ran: what succeeded is no longer owed; what failed stays owed, so the
/// next apply tries it again rather than say `nothing to do`.
fn settle(root: &Path, model: &Model, outcomes: &[JobOutcome], switched: &Switched) -> Result<()> {
    let still = Pending {
        daemon_reload: false,
        jobs: outcomes
            .iter()
            .filter(|o| !o.ok())
            .map(|o| (o.unit.clone(), o.kind))
            .collect(),
    };
    store_intent(root, model, &still)?;
    let done = |unit: &str| outcomes.iter().any(|o| o.unit == unit && o.ok());
    let openresty: Vec<&Instance> = model.instances.iter().filter(|i| i.kind == Kind::Openresty).collect();
    let lib = fsapply::under(root, &render::lib_app_dir(model));
    for (app, record) in switched {
        let reloaded = if *app == lib {
            openresty.iter().all(|i| done(&i.unit()))
        } else {
            openresty
                .iter()
                .any(|i| fsapply::under(root, &i.app_dir()) == *app && done(&i.unit()))
        };
        if reloaded {
            release::reload_done(app, record)?;
        }
    }
    Ok(())
}

/// Print each job's outcome (with the journal's last lines on failure); returns the
/// number that failed.
pub fn report(outcomes: &[JobOutcome]) -> usize {
    let mut failed = 0;
    for o in outcomes {
        if o.ok() {
            println!("{} {}", o.kind.past(), o.unit);
        } else {
            failed += 1;
            eprintln!(
                "error: {} {} failed (systemd job: {}; unit now: {})",
                o.kind.verb(),
                o.unit,
                o.result(),
                o.active_state
            );
            eprintln!("  last lines of its journal (journalctl -u {}):", o.unit);
            for line in journal::last_lines(&o.unit, 15).lines() {
                eprintln!("  | {line}");
            }
        }
    }
    failed
}

/// Instances never run as a pre-existing system account (uid below 1000) that hhlctl
/// did not create, whatever its name.
fn refuse_system_accounts(loaded: &Loaded) -> Result<()> {
    let mut errs = Diagnostics::default();
    for (owner, user, uid) in users::system_accounts(&loaded.model.access) {
        let access = &loaded.model.access;
        let index;
        let at: Vec<&str> = if owner == MASTER {
            vec!["users", "master"]
        } else if access.users.get(owner).is_some_and(|u| *u != format!("hhl-{owner}")) {
            vec!["users", "map", owner]
        } else {
            index = loaded
                .model
                .developers
                .iter()
                .position(|d| d == owner)
                .unwrap_or(0)
                .to_string();
            vec!["developers", &index]
        };
        errs.push(
            loaded
                .source
                .diag(
                    &at,
                    format!("unix user `{user}` of `{owner}` is a system account (uid {uid}) on this host"),
                )
                .hint("give the developer a user of their own; hhlctl creates it if it does not exist"),
        );
    }
    errs.into_result(()).map_err(Into::into)
}

/// With `users.create: false`, every unix user must exist before anything is written.
fn refuse_missing_users(loaded: &Loaded) -> Result<()> {
    let access = &loaded.model.access;
    let mut errs = Diagnostics::default();
    for (owner, user) in users::missing(access) {
        let at: Vec<String> = if owner == MASTER {
            vec!["users".into(), "master".into()]
        } else if access.users.get(owner).is_some_and(|u| *u != format!("hhl-{owner}")) {
            vec!["users".into(), "map".into(), owner.into()]
        } else {
            let i = loaded.model.developers.iter().position(|d| d == owner).unwrap_or(0);
            vec!["developers".into(), i.to_string()]
        };
        let at: Vec<&str> = at.iter().map(String::as_str).collect();
        errs.push(
            loaded
                .source
                .diag(
                    &at,
                    format!("unix user `{user}` (of `{owner}`) does not exist on this host"),
                )
                .hint("create it (adduser), or set `users.create: true` to let `hhlctl apply` create it"),
        );
    }
    Ok(errs.into_result(())?)
}
