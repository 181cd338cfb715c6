//! `hhlctl logs`: an instance's journal, or for a developer (who may not read the
//! system journal) their own instances' log files.

use std::path::Path;

use std::process::Command;

use anyhow::{bail, Context, Result};

use super::select::Selection;
use crate::load;
use crate::rsyslog;
use crate::systemd::journal;
use crate::users;

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
    // Anyone else who may not read the system journal: their log files, if the
    // account is one that may (root and the entry account read the journal above).
    let me = users::current()?;
    if let Some(why) = loaded.model.access.shell_refusal(&me, "logs") {
        bail!(why);
    }
    let files: Vec<String> = chosen
        .iter()
        .map(|i| rsyslog::log_file(&loaded.model, i).display().to_string())
        .collect();
    // rsyslog writes these files; without it there are none to read.
    if let Some(f) = files.iter().find(|f| !Path::new(f).exists()) {
        if !crate::optional::rsyslog_installed() {
            bail!(
                "no log file {f}: {}\n  hint: ask an admin to `apt-get install rsyslog`, or read your logs on the log page",
                crate::optional::NO_RSYSLOG
            );
        }
    }
    let mut cmd = Command::new("tail");
    cmd.args(["-n", &args.lines.to_string()]);
    if args.follow {
        cmd.arg("-F");
    }
    let status = cmd.args(&files).status().context("running tail")?;
    Ok(status.code().unwrap_or(1))
}
