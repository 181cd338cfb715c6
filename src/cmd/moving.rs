//! `hhlctl move OWNER --to HOST`: an owner's instances, Redis data and secret from one
//! host to another (`ops::moving`), or `--abandon` a move before its placement changed.

use std::path::Path;

use anyhow::Result;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The owner to move: a developer of hhl.yaml, or master (with the shared servers).
    pub owner: String,
    /// The host to move it to (a name under `hosts:`).
    #[arg(long, value_name = "HOST", required_unless_present = "abandon")]
    pub to: Option<String>,
    /// Give up the move under way (only before its placement commit): start the
    /// owner's instances again on the host it was leaving, and forget the move.
    #[arg(long, conflicts_with = "to")]
    pub abandon: bool,
}

pub fn run(config: &Path, args: Args) -> Result<i32> {
    match (&args.to, args.abandon) {
        (_, true) => crate::ops::moving::abandon(config, &args.owner),
        (Some(to), false) => crate::ops::moving::run(config, &args.owner, to),
        (None, false) => unreachable!("clap requires --to without --abandon"),
    }
}
