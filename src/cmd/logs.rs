//! `hhlctl logs`: an instance's journal.

use std::path::Path;

use anyhow::Result;

use super::select::Selection;
use crate::load;
use crate::systemd::journal;

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
    let units: Vec<String> = args
        .selection
        .resolve(&loaded.model, false)?
        .iter()
        .map(|i| i.unit())
        .collect();
    journal::show(&units, args.lines, args.follow)
}
