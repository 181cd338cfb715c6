//! `hhlctl apply`: render, validate, write, and bring systemd to match.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::error::Diagnostics;
use crate::fsapply::{self, Change, Manifest, Ownership};
use crate::load;
use crate::load::Loaded;
use crate::model::{Instance, Model};
use crate::names::MASTER;
use crate::reconcile;
use crate::systemd::{journal, JobKind, JobOutcome, Systemd};
use crate::users;
use crate::validate;

use super::serverctrl;

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
    }
    Ok(code)
}

fn apply(root: &Path, config: &Path) -> Result<i32> {
    let loaded = load::load(config)?;
    let artifacts = loaded.render()?;
    let model = &loaded.model;
    let previous = Manifest::load(root, &model.paths.state_dir)?;
    let changes = fsapply::diff(root, &artifacts, &previous, Ownership::Apply)?;

    // Nothing is written and nothing running is touched until every check passed.
    refuse_system_accounts(&loaded)?;
    if !model.access.create {
        refuse_missing_users(&loaded)?;
    }
    // Users first: configs are tested as the user that will run them.
    for user in users::create_missing(&model.access)? {
        println!("created unix user {user}");
    }
    for admin in users::admit_admins(&model.access)? {
        println!("added admin {admin} to the instance owners' groups");
    }
    if validate::rsyslog_rules(model, &artifacts, &changes)? {
        println!("checked the rsyslog rules with rsyslogd -N1");
    }
    let tested = validate::nginx_configs(model, &artifacts, &changes)?;
    if tested > 0 {
        println!("checked {tested} nginx config(s) with nginx -t");
    }

    let systemd = Systemd::connect()?;
    let units: Vec<String> = model
        .instances
        .iter()
        .map(|i| i.unit())
        .chain([reconcile::TARGET.to_string(), reconcile::RSYSLOG.to_string()])
        .collect();
    let active = systemd.active_states(&units)?;
    let actions = reconcile::plan(model, &changes, &active);

    let mut failed = report(
        &systemd.run_jobs(
            &actions
                .stop
                .iter()
                .map(|u| (u.clone(), JobKind::Stop))
                .collect::<Vec<_>>(),
        )?,
    );

    fsapply::apply(root, &artifacts, &changes, Ownership::Apply)?;
    Manifest::of(&artifacts).store(root, &model.paths.state_dir)?;
    let count = |c: Change| changes.iter().filter(|f| f.change == c && !f.dir).count();
    let (added, changed, removed) = (count(Change::Added), count(Change::Changed), count(Change::Removed));
    if added + changed + removed > 0 {
        println!("files: {added} added, {changed} changed, {removed} removed");
    }
    if actions.daemon_reload {
        systemd.daemon_reload()?;
        println!("systemd: daemon-reload");
    }
    let outcomes = systemd.run_jobs(&actions.jobs).context("running systemd jobs")?;
    failed += report(&outcomes);
    failed += wait_for_ports(model, &outcomes);

    if actions.stop.is_empty() && actions.jobs.is_empty() && added + changed + removed == 0 {
        println!("nothing to do: {} instances up to date", model.instances.len());
    }
    Ok(if failed > 0 { 1 } else { 0 })
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
        } else if access.users.get(owner).is_some_and(|u| u != owner) {
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
        } else if access.users.get(owner).is_some_and(|u| u != owner) {
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

/// systemd calls an instance started once its process runs; nginx and Redis listen a
/// moment later. Wait (bounded) until every started instance's port answers, so that
/// after apply, `status` finds them healthy. Returns how many never answered.
fn wait_for_ports(model: &Model, outcomes: &[JobOutcome]) -> usize {
    let started: Vec<&Instance> = outcomes
        .iter()
        .filter(|o| o.ok() && matches!(o.kind, JobKind::Start | JobKind::Restart))
        .filter_map(|o| model.instances.iter().find(|i| i.unit() == o.unit))
        .collect();
    let mut pending: Vec<&Instance> = started;
    let deadline = Instant::now() + PORT_WAIT;
    while !pending.is_empty() && Instant::now() < deadline {
        let ports: Vec<u16> = pending.iter().map(|i| i.port).collect();
        let answers = super::status::ports_answering(&ports);
        pending = pending
            .into_iter()
            .zip(answers)
            .filter(|(_, up)| !up)
            .map(|(i, _)| i)
            .collect();
        if !pending.is_empty() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    for i in &pending {
        eprintln!(
            "error: {} is running but port {} does not answer after {} s; `hhlctl logs {}` shows why",
            i.unit(),
            i.port,
            PORT_WAIT.as_secs(),
            i.name
        );
    }
    pending.len()
}

const PORT_WAIT: Duration = Duration::from_secs(10);
