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
    // A developer cannot read the system journal; their own log files they can.
    let me = users::current()?;
    let files: Vec<String> = chosen
        .iter()
        .filter(|i| loaded.model.access.may_control(&me, &i.developer))
        .map(|i| rsyslog::log_file(&loaded.model, i).display().to_string())
        .collect();
    if files.len() < chosen.len() {
        let theirs: Vec<&str> = chosen
            .iter()
            .filter(|i| !loaded.model.access.may_control(&me, &i.developer))
            .map(|i| i.name.as_str())
            .collect();
        bail!(
            "not yours: you are unix user `{me}` and may not read the logs of {}\n  hint: `hhlctl logs --dev <you>` shows yours",
            theirs.join(", ")
        );
    }
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
