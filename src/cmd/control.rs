//! `hhlctl start|stop|restart|reload`: run systemd jobs and wait for them.

use std::path::Path;

use anyhow::{bail, Result};

use super::apply::report;
use super::select::Selection;
use crate::load;
use crate::model::Kind;
use crate::systemd::{JobKind, Systemd};

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
    let jobs: Vec<(String, JobKind)> = chosen.iter().map(|i| (i.unit(), kind)).collect();
    let systemd = Systemd::connect()?;
    let failed = report(&systemd.run_jobs(&jobs)?);
    Ok(if failed > 0 { 1 } else { 0 })
}
