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
    let s = &args.selection;
    // Several hosts, on the primary: every host's rows (by name, or all of them).
    if s.dev.is_none() && s.server.is_none() {
        let loaded = crate::host::load::load(config)?;
        let m = &loaded.model;
        if m.hosts
            .as_ref()
            .is_some_and(|h| Some(&h.primary().name) == m.here.as_ref())
        {
            return crate::ops::status::across(config, m, "root", &s.names, args.json);
        }
    }
    crate::ops::status::print(config, s, args.json)
}
