//! `hhlctl logs`: the instances' journal, for root and the entry account (which
//! serves `ssh <entry>@server logs` after `access::may`).

use std::path::Path;

use anyhow::{bail, Result};

use crate::host::load;
use crate::host::systemd::journal;
use crate::host::users;
use crate::ops::select::Selection;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub selection: Selection,
    /// Keep printing new lines as they arrive.
    #[arg(long, short)]
    pub follow: bool,
    /// How many recent lines to show.
    #[arg(long, short = 'n', default_value_t = 50)]
    pub lines: usize,
}

pub fn run(config: &Path, args: Args) -> Result<i32> {
    let loaded = load::load(config)?;
    let chosen = args.selection.resolve(&loaded.model, false)?;
    if journal::readable() {
        let units: Vec<String> = chosen.iter().map(|i| i.unit()).collect();
        return journal::show(&units, args.lines, args.follow);
    }
    // Root reads the journal above; so does the entry account, which apply puts in
    // systemd-journal. Anyone else is told where their logs are.
    let me = users::current()?;
    if let Some(why) = loaded.model.access.shell_refusal(&me, "logs") {
        bail!(why);
    }
    bail!("unix user `{me}` cannot read the system journal\n  hint: add it to group systemd-journal (`usermod -aG systemd-journal {me}`)")
}
