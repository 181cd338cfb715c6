//! `hhlctl logs`: the instances' journal (`ops::logs`, as `ssh <entry> logs` prints it).

use std::path::Path;

use anyhow::Result;

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
    crate::ops::logs::print(config, &args.selection, args.lines, args.follow)
}
