//! The instances' journal, as `hhlctl logs` and `ssh <entry> logs` (after
//! `access::may`) print it: for root and the entry account.

use std::path::Path;

use anyhow::{bail, Result};

use crate::host::load;
use crate::host::systemd::journal;
use crate::host::users;
use crate::ops::select::Selection;

pub fn print(config: &Path, selection: &Selection, lines: usize, follow: bool) -> Result<i32> {
    let loaded = load::load(config)?;
    let chosen = selection.resolve(&loaded.model, false)?;
    if journal::readable() {
        let units: Vec<String> = chosen.iter().map(|i| i.unit()).collect();
        return journal::show(&units, lines, follow);
    }
    // Root reads the journal above; so does the entry account, which apply puts in
    // systemd-journal. Anyone else is told where their logs are.
    let me = users::current()?;
    if let Some(why) = loaded.model.access.shell_refusal(&me, "logs") {
        bail!(why);
    }
    bail!("unix user `{me}` cannot read the system journal\n  hint: add it to group systemd-journal (`usermod -aG systemd-journal {me}`)")
}
