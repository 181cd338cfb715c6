//! The one path from "identity X asks for restart, reload, start, stop or rollback of
//! these instances" to a systemd job: `access::may` on every instance, then the job,
//! then the outcome as data. `hhlctl ssh` prints the outcome, the console shows it;
//! neither authorizes on its own.

use anyhow::Result;
use serde::Serialize;

use crate::core::access::{self, Action};
use crate::core::kind::Kind;
use crate::core::model::{Instance, Model};
use crate::core::systemd_types::{ActiveState, JobKind};
use crate::host::release;
use crate::host::systemd::Systemd;
use crate::ops::report::{judge, Done};
use crate::ops::select::Selection;

/// Why an action did not run.
#[derive(Debug)]
pub enum Refused {
    /// Not this identity's to do (HTTP 403).
    NotAllowed(String),
    /// Not a sensible request: unknown instance (HTTP 400).
    Invalid(String),
    /// A reload asked of a Redis instance (HTTP 400); each front end says how to
    /// restart it in the form its user types.
    CannotReload { unit: String, name: String },
    /// It was allowed and tried, and the host failed (HTTP 500).
    Failed(anyhow::Error),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::NotAllowed(s) | Refused::Invalid(s) => f.write_str(s),
            Refused::CannotReload { unit, .. } => {
                write!(f, "{unit} cannot reload (Redis re-reads its config only on restart)")
            }
            Refused::Failed(e) => write!(f, "{e:#}"),
        }
    }
}

/// The instances `names` choose, every one authorized for `identity`. No names: the
/// identity's own instances (an admin who is no developer: all; `--all`: admins).
pub fn authorized<'m>(model: &'m Model, identity: &str, names: &[String]) -> Result<Vec<&'m Instance>, Refused> {
    selection(model, identity, names)?
        .resolve(model, false)
        .map_err(|e| Refused::Invalid(e.to_string()))
}

/// `authorized` as a `Selection` (what `status` and `logs` take).
pub fn selection(model: &Model, identity: &str, names: &[String]) -> Result<Selection, Refused> {
    let all = names.iter().any(|n| n == "--all");
    let named: Vec<String> = names.iter().filter(|n| *n != "--all").cloned().collect();
    let developer = model.developers.iter().any(|d| d == identity);
    let mut sel = Selection {
        names: named.clone(),
        dev: None,
        server: None,
        all: false,
    };
    if named.is_empty() {
        if all || !developer {
            access::may(model, identity, Action::Admin).map_err(|_| {
                Refused::NotAllowed("--all is for admins; without it you get your own instances".into())
            })?;
            sel.all = true;
        } else {
            sel.dev = Some(identity.to_string());
        }
    }
    let chosen = sel.resolve(model, false).map_err(|e| Refused::Invalid(e.to_string()))?;
    for i in &chosen {
        access::may(model, identity, Action::Control { owner: &i.developer }).map_err(Refused::NotAllowed)?;
    }
    Ok(sel)
}

/// Run `kind` on the instances `names` choose for `identity`, wait for the jobs and
/// for the ports of what (re)started, and say what happened to each.
pub fn jobs(model: &Model, identity: &str, names: &[String], kind: JobKind) -> Result<Vec<Done>, Refused> {
    if matches!(kind, JobKind::Start | JobKind::Stop) {
        access::may(model, identity, Action::Admin).map_err(Refused::NotAllowed)?;
    }
    let chosen = authorized(model, identity, names)?;
    run(model, &chosen, kind)
}

/// Run `kind` on `chosen` (already authorized): the one path every front end's start,
/// stop, restart and reload takes.
pub fn run(model: &Model, chosen: &[&Instance], kind: JobKind) -> Result<Vec<Done>, Refused> {
    if kind == JobKind::Reload {
        if let Some(r) = chosen.iter().find(|i| i.kind == Kind::Redis) {
            return Err(Refused::CannotReload {
                unit: r.unit(),
                name: r.name.clone(),
            });
        }
    }
    let jobs: Vec<(String, JobKind)> = chosen.iter().map(|i| (i.unit(), kind)).collect();
    let systemd = Systemd::connect().map_err(Refused::Failed)?;
    if matches!(kind, JobKind::Start | JobKind::Restart) {
        // A unit that crashed into its start limit starts again when asked to: the
        // developer has no shell to `systemctl reset-failed` it.
        systemd
            .reset_failed(jobs.iter().map(|(u, _)| u.as_str()))
            .map_err(|e| Refused::Failed(e.context("asking systemd to reset-failed the units before starting them")))?;
    }
    let outcomes = systemd.run_jobs(&jobs).map_err(Refused::Failed)?;
    Ok(judge(model, &outcomes))
}

/// An OpenResty instance the identity may control: the named one, or their only one.
pub fn openresty<'m>(model: &'m Model, identity: &str, name: Option<&str>) -> Result<&'m Instance, Refused> {
    let found: Vec<&Instance> = model
        .instances
        .iter()
        .filter(|i| i.kind == Kind::Openresty)
        .filter(|i| match name {
            Some(n) => i.name == n || i.unit() == n,
            None => i.developer == identity,
        })
        .collect();
    let inst = match (found.as_slice(), name) {
        ([one], _) => *one,
        ([], Some(n)) => {
            return Err(Refused::Invalid(format!(
                "no OpenResty instance `{}`; yours look like socketserver-{identity}",
                crate::core::error::excerpt(n)
            )))
        }
        _ => return Err(Refused::Invalid("say which instance: e.g. socketserver-<you>".into())),
    };
    access::may(model, identity, Action::Control { owner: &inst.developer }).map_err(Refused::NotAllowed)?;
    Ok(inst)
}

/// What a rollback did: the switch, then the reload.
#[derive(Debug, Clone, Serialize)]
pub struct RolledBack {
    pub from: String,
    pub to: String,
    /// A rollback killed before its reload, finished now rather than going further.
    pub resumed: bool,
    pub reload: Done,
}

/// Point `instance`'s code at kept release `to` (default: the one before the live
/// one) and reload it (start it, if it is not running).
pub fn rollback(model: &Model, identity: &str, instance: &str, to: Option<&str>) -> Result<RolledBack, Refused> {
    let inst = openresty(model, identity, Some(instance))?;
    let app = inst.app_dir();
    let (from, to, resumed) = match to {
        Some(to) => release::rollback_to(&app, to)
            .map(|from| (from, to.to_string(), false))
            .map_err(|e| Refused::Invalid(format!("{e:#}")))?,
        None => release::rollback(&app).map_err(|e| Refused::Invalid(format!("{e:#}")))?,
    };
    // The branch head stays off the live release until the next push or `deploy`:
    // apply and an up-to-date push do not undo a rollback.
    if let Some((repo, branch)) = crate::core::repos::source_of(model, inst) {
        if let Some(head) = crate::host::release_info::heads(&repo.path).remove(&branch) {
            // After the switch: a hold that cannot be written fails nothing, it only
            // leaves the head to the next apply.
            if let Err(e) = release::hold(&app, &head, "rollback") {
                eprintln!("warning: {}: the branch head is not held back: {e:#}", inst.name);
            }
        }
    }
    let systemd = Systemd::connect().map_err(Refused::Failed)?;
    let unit = inst.unit();
    let running = systemd
        .active_states(std::slice::from_ref(&unit))
        .map_err(Refused::Failed)?
        .get(&unit)
        .is_some_and(ActiveState::is_active);
    let kind = if running { JobKind::Reload } else { JobKind::Start };
    let outcomes = systemd.run_jobs(&[(unit, kind)]).map_err(Refused::Failed)?;
    let reload = judge(model, &outcomes).remove(0);
    if reload.ok {
        release::reload_done(&app, &release::rollback_record(&from, &to)).map_err(Refused::Failed)?;
    }
    Ok(RolledBack {
        from,
        to,
        resumed,
        reload,
    })
}

impl RolledBack {
    /// What a rollback of `instance` did, in one line (the reload's outcome follows).
    pub fn summary(&self, instance: &str) -> String {
        if self.resumed {
            format!(
                "{instance}: finishing the rollback {} -> {} that was interrupted before its reload",
                self.from, self.to
            )
        } else {
            format!("{instance}: current release {} -> {}", self.from, self.to)
        }
    }
}
