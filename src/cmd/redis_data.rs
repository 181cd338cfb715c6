//! `hhlctl redis-data export|import OWNER`: what hhl-redis-export@ and hhl-redis-import@
//! run as root on a host of several, for `hhlctl move` on the primary
//! (`ops::redis_data`). Not for direct use.

use std::path::Path;

use anyhow::Result;

use crate::host::load;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Way {
    /// The owner's Redis data and secret into <state_dir>/move/OWNER.bundle.
    Export,
    /// The bundle the entry account received put in place.
    Import,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(value_enum)]
    pub way: Way,
    pub owner: String,
}

pub fn run(config: &Path, args: Args) -> Result<i32> {
    let loaded = load::load_whole(config)?;
    crate::ops::redis_data::known_owner(&loaded.model, &args.owner).map_err(anyhow::Error::msg)?;
    match args.way {
        Way::Export => crate::ops::redis_data::export_unit_body(&loaded.model, &args.owner),
        Way::Import => crate::ops::redis_data::import_unit_body(&loaded.model, &args.owner),
    }
}
