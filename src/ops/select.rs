//! Choosing instances on the command line: names, `--dev`, `--server`, `--all`.

use anyhow::{bail, Result};

use crate::core::model::{Instance, Model};

#[derive(Debug, Clone, clap::Args)]
pub struct Selection {
    /// Instances by name (socketserver-dev1, 6381) or unit (redis@6381.service).
    #[arg(value_name = "INSTANCE")]
    pub names: Vec<String>,
    /// Every instance of this developer (or master).
    #[arg(long, short = 'd', value_name = "DEV")]
    pub dev: Option<String>,
    /// Every instance of this server (socketserver, …, or redis).
    #[arg(long, short = 's', value_name = "SERVER")]
    pub server: Option<String>,
    /// Every instance.
    #[arg(long, conflicts_with_all = ["names", "dev", "server"])]
    pub all: bool,
}

impl Selection {
    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && self.dev.is_none() && self.server.is_none() && !self.all
    }

    /// The chosen instances, in hhl.yaml order. With `default_all`, no choice means all.
    pub fn resolve<'m>(&self, model: &'m Model, default_all: bool) -> Result<Vec<&'m Instance>> {
        if self.is_empty() && !default_all {
            bail!(
                "say which instances: INSTANCE (e.g. socketserver-dev1 or 6381), --dev DEV, --server SERVER or --all"
            );
        }
        if let Some(d) = &self.dev {
            if !model.owners().any(|o| o == d) {
                bail!(
                    "no developer `{d}` in hhl.yaml; developers: master, {}",
                    model.developers.join(", ")
                );
            }
        }
        if let Some(s) = &self.server {
            if !model.instances.iter().any(|i| &i.server == s) {
                let mut servers: Vec<&str> = model.instances.iter().map(|i| i.server.as_str()).collect();
                servers.dedup();
                bail!("no server `{s}` in hhl.yaml; servers: {}", servers.join(", "));
            }
        }
        for n in &self.names {
            if !model.instances.iter().any(|i| matches_name(i, n)) {
                bail!("no instance `{n}` in hhl.yaml; instances look like socketserver-dev1 or 6381 (`status` lists them)");
            }
        }
        Ok(model
            .instances
            .iter()
            .filter(|i| self.names.is_empty() || self.names.iter().any(|n| matches_name(i, n)))
            .filter(|i| self.dev.as_ref().is_none_or(|d| &i.developer == d))
            .filter(|i| self.server.as_ref().is_none_or(|s| &i.server == s))
            .collect())
    }
}

fn matches_name(i: &Instance, n: &str) -> bool {
    i.name == n || i.unit() == n || i.unit().strip_suffix(".service") == Some(n)
}
