//! `hhlctl start|stop|restart|reload`: run systemd jobs and wait for them.

use std::path::Path;

use anyhow::{bail, Result};

use super::apply::report;
use crate::core::model::Kind;
use crate::host::load;
use crate::host::systemd::{JobKind, Systemd};
use crate::host::users;
use crate::ops::select::Selection;

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
    if let Some(why) = loaded.model.access.shell_refusal(&me, kind.command()) {
        bail!(why);
    }
    let jobs: Vec<(String, JobKind)> = chosen.iter().map(|i| (i.unit(), kind)).collect();
    let systemd = Systemd::connect()?;
    let outcomes = systemd.run_jobs(&jobs)?;
    // Done means answering on its port, as after apply: a `status` right after agrees.
    let failed = report(&outcomes) + crate::ops::ready::wait_for_ports(&loaded.model, &outcomes);
    Ok(if failed > 0 { 1 } else { 0 })
}
