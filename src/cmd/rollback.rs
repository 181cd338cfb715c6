//! `hhlctl rollback INSTANCE`: the previous release of an instance's code, then a reload.

use std::path::Path;

use anyhow::{bail, Result};

use crate::core::kind::Kind;
use crate::host::load;
use crate::host::users;

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
    // The unix user may (root, or the entry account): the rest is the shared path.
    match crate::ops::act::rollback(model, "root", &inst.name, None) {
        Ok(r) => {
            println!("{}", r.summary(&inst.name));
            Ok(if crate::ops::report::print(std::slice::from_ref(&r.reload)) > 0 {
                1
            } else {
                0
            })
        }
        Err(crate::ops::act::Refused::Failed(e)) => Err(e),
        Err(e) => bail!("{e}"),
    }
}
