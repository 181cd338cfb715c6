//! `hhlctl rollback INSTANCE`: the previous release of an instance's code, then a reload.

use std::path::Path;

use anyhow::{bail, Result};

use super::apply::report;
use crate::load;
use crate::model::Kind;
use crate::release;
use crate::systemd::{JobKind, Systemd};
use crate::users;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// An OpenResty instance: socketserver-dev1.
    pub instance: String,
}

pub fn run(config: &Path, args: Args) -> Result<i32> {
    let loaded = load::load(config)?;
    let model = &loaded.model;
    let Some(inst) = model
        .instances
        .iter()
        .find(|i| i.kind == Kind::Openresty && (i.name == args.instance || i.unit() == args.instance))
    else {
        bail!(
            "no OpenResty instance `{}` in {}; they look like socketserver-dev1 (`hhlctl plan` lists them)",
            args.instance,
            config.display()
        );
    };
    let me = users::current()?;
    if let Some(why) = model.access.shell_refusal(&me, "rollback") {
        bail!(why);
    }
    let app = inst.app_dir();
    let (from, to, resumed) = release::rollback(&app)?;
    if resumed {
        println!(
            "{}: finishing the rollback {from} -> {to} that was interrupted before its reload",
            inst.name
        );
    } else {
        println!("{}: current release {from} -> {to}", inst.name);
    }
    let systemd = Systemd::connect()?;
    let failed = report(&systemd.run_jobs(&[(inst.unit(), JobKind::Reload)])?);
    if failed == 0 {
        release::reload_done(&app, &release::rollback_record(&from, &to))?;
    }
    Ok(if failed > 0 { 1 } else { 0 })
}
