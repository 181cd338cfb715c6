//! The plan `hhlctl plan` and `ssh <entry> plan` print: the instance table and the file
//! changes an apply would make, compared with the files under `root`.

use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use crate::core::artifact::{Change, FileChange};
use crate::core::model::{Instance, Model};
use crate::host::fsapply::{self, Manifest, Ownership};
use crate::host::load;

#[derive(Serialize)]
struct Plan<'a> {
    instances: Vec<PlanInstance<'a>>,
    files: Vec<FileChange>,
}

#[derive(Serialize)]
struct PlanInstance<'a> {
    unit: String,
    #[serde(flatten)]
    instance: &'a Instance,
}

/// The instance table, aligned.
pub fn instance_table(model: &Model) -> String {
    let rows: Vec<[String; 5]> = model
        .instances
        .iter()
        .map(|i| {
            [
                i.unit(),
                i.server.clone(),
                i.developer.clone(),
                i.port.to_string(),
                i.config_path.display().to_string(),
            ]
        })
        .collect();
    crate::core::table::render(&["UNIT", "SERVER", "DEVELOPER", "PORT", "CONFIG"], &rows)
}

pub fn print(config: &Path, root: &Path, json: bool, verbose: bool) -> Result<i32> {
    let loaded = load::load(config)?;
    refuse_file_paths(root, &loaded)?;
    let artifacts = loaded.render()?;
    let model = &loaded.model;
    let (previous, warnings) = Manifest::load(root, &model.paths)?;
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    // Owners count only on the live system; under --root they may not exist.
    let own = if root == Path::new("/") {
        Ownership::Apply
    } else {
        Ownership::Ignore
    };
    let files = fsapply::diff(root, &artifacts, &previous, own)?;
    if json {
        let instances = model
            .instances
            .iter()
            .map(|i| PlanInstance {
                unit: i.unit(),
                instance: i,
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&Plan { instances, files })?);
        return Ok(0);
    }
    print!("{}", instance_table(model));
    println!();
    let count = |c: Change| files.iter().filter(|f| f.change == c).count();
    for f in &files {
        let mark = match f.change {
            Change::Added => "+",
            Change::Changed => "~",
            Change::Removed => "-",
            Change::Unchanged if verbose => "=",
            Change::Unchanged => continue,
        };
        println!("{mark} {}{}", f.path.display(), if f.dir { "/" } else { "" });
    }
    println!(
        "{} instances; files: {} to add, {} to change, {} to remove, {} unchanged",
        model.instances.len(),
        count(Change::Added),
        count(Change::Changed),
        count(Change::Removed),
        count(Change::Unchanged)
    );
    hosts_line(model);
    Ok(0)
}

/// Several hosts, on the primary: this plan is this host's; say which others an apply
/// would reach (each plans and applies for itself) and which could not be asked.
fn hosts_line(model: &Model) {
    let (Some(h), Some(here)) = (&model.hosts, model.here.as_deref()) else {
        return;
    };
    if h.primary().name != here || h.list.len() < 2 {
        return;
    }
    for s in crate::ops::hosts::ping_all(model).iter().filter(|s| s.host != here) {
        match &s.error {
            None => println!("host {}: answers; it plans and applies its own share", s.host),
            Some(e) => println!(
                "host {}: could not be asked ({e}); an apply now would leave it owed",
                s.host
            ),
        }
    }
}

/// A file where hhl.yaml's `paths:` need a directory (a `unit_dir` that is a file):
/// refused at plan and apply, before anything is written, at its line in hhl.yaml.
pub fn refuse_file_paths(root: &Path, loaded: &load::Loaded) -> Result<()> {
    let mut errs = crate::core::error::Diagnostics::default();
    for (key, why) in fsapply::file_where_a_directory_belongs(root, &loaded.model.paths) {
        errs.push(
            loaded
                .source
                .diag(&["paths", key], why)
                .hint(format!("point paths.{key} at a directory, or move the file away")),
        );
    }
    errs.into_result(()).map_err(Into::into)
}
