//! `hhlctl plan`: the instance table and the file changes an apply would make
//! (`ops::plan`, as `ssh <entry> plan` prints it).

use std::path::{Path, PathBuf};

use anyhow::Result;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Compare with the files under this directory instead of /.
    #[arg(long, env = "HHL_ROOT", default_value = "/", value_name = "DIR")]
    pub root: PathBuf,
    /// Print JSON for scripts instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Also list files that would stay as they are.
    #[arg(long, short)]
    pub verbose: bool,
}

pub fn run(config: &Path, args: Args) -> Result<i32> {
    crate::ops::plan::print(config, &args.root, args.json, args.verbose)
}
