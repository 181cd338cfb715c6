//! `hhlctl start|stop|restart|reload`: run systemd jobs and wait for them.

use std::path::Path;

use anyhow::{bail, Result};

use super::apply::report;
use super::select::Selection;
use crate::load;
use crate::model::Kind;
use crate::systemd::{JobKind, Systemd};
use crate::users;

pub fn run(config: &Path, kind: JobKind, selection: Selection) -> Result<i32> {
    let loaded = load::load(config)?;
    let chosen = selection.resolve(&loaded.model, false)?;
    if kind == JobKind::Reload {
        if let Some(r) = chosen.iter().find(|i| i.kind == Kind::Redis) {
            bail!(
                "{} cannot reload (Redis re-reads its config only on restart); use `hhlctl restart {}`",
                r.unit(),
                r.name
            );
        }
    }
    // polkit has the last word; asking first turns its bare refusal into a clear one.
    let me = users::current()?;
    let theirs: Vec<String> = chosen
        .iter()
        .filter(|i| !loaded.model.access.may_control(&me, &i.developer))
        .map(|i| format!("{} (belongs to {})", i.name, i.user))
        .collect();
    if !theirs.is_empty() {
        let access = &loaded.model.access;
        let yours = match access.users.iter().find(|(_, u)| **u == me) {
            Some((owner, _)) => format!("`hhlctl {} --dev {owner}` does yours", kind.command()),
            None => "you own no instances".into(),
        };
        bail!(
            "not yours: you are unix user `{me}` and may not {} {}\n  hint: {yours}; an admin (users.admins in {}) can do the rest",
            kind.command(),
            theirs.join(", "),
            config.display()
        );
    }
    let jobs: Vec<(String, JobKind)> = chosen.iter().map(|i| (i.unit(), kind)).collect();
    let systemd = Systemd::connect()?;
    let outcomes = systemd.run_jobs(&jobs)?;
    // Done means answering on its port, as after apply: a `status` right after agrees.
    let failed = report(&outcomes) + super::ready::wait_for_ports(&loaded.model, &outcomes);
    Ok(if failed > 0 { 1 } else { 0 })
}
