//! `hhlctl status`: one row per instance, read from systemd over D-Bus, plus whether
//! its port answers (`ops::status`, as `ssh <entry> status` prints it). Exits 1 when
//! any chosen instance is unhealthy.

use std::path::Path;

use anyhow::Result;

use crate::ops::select::Selection;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub selection: Selection,
    /// Print JSON for scripts.
    #[arg(long)]
    pub json: bool,
}

pub fn run(config: &Path, args: Args) -> Result<i32> {
    crate::ops::status::print(config, &args.selection, args.json)
}
