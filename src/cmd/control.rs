//! `hhlctl start|stop|restart|reload`: run systemd jobs and wait for them, through the
//! same path as `ssh <entry> restart` and the console (`ops::act::run`).

use std::path::Path;

use anyhow::{bail, Result};

use crate::core::systemd_types::JobKind;
use crate::host::load;
use crate::host::users;
use crate::ops::act::{self, Refused};
use crate::ops::report;
use crate::ops::select::Selection;

pub fn run(config: &Path, kind: JobKind, selection: Selection) -> Result<i32> {
    let loaded = load::load(config)?;
    let chosen = selection.resolve(&loaded.model, false)?;
    // polkit has the last word; asking first turns its bare refusal into a clear one.
    let me = users::current()?;
    if let Some(why) = loaded.model.access.shell_refusal(&me, kind.command()) {
        bail!(why);
    }
    // Done means answering on its port, as after apply: a `status` right after agrees.
    match act::run(&loaded.model, &chosen, kind) {
        Ok(done) => Ok(if report::print(&done) > 0 { 1 } else { 0 }),
        Err(Refused::Failed(e)) => Err(e),
        Err(e) => {
            let hint = match &e {
                Refused::CannotReload { name, .. } => format!("; use `hhlctl restart {name}`"),
                _ => String::new(),
            };
            bail!("{e}{hint}")
        }
    }
}
