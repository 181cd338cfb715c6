//! `apply --from-repo`: take hhl.yaml and the templates from serverctrl's master branch.
//! The pushed tree is checked to load before any file is replaced, and each file is
//! replaced atomically.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use walkdir::WalkDir;

use crate::core::config::{self, RawConfig};
use crate::core::package::APPLIED_COMMIT;
use crate::core::repos::{MAIN_BRANCH, SERVERCTRL};
use crate::host::fsapply;
use crate::host::git;
use crate::host::load;
use crate::host::release::{self, Scratch};

fn live(config: &Path) -> Result<RawConfig> {
    let text = std::fs::read_to_string(config).with_context(|| format!("reading {}", config.display()))?;
    Ok(config::parse(config, &text).map_err(crate::core::error::Diagnostics::from)?)
}

fn repo_path(raw: &RawConfig) -> PathBuf {
    raw.git.root.join(format!("{SERVERCTRL}.git"))
}

/// Copy serverctrl's master into `config`'s directory; returns the commit taken.
pub fn take(config: &Path) -> Result<String> {
    let raw = live(config)?;
    let git_dir = repo_path(&raw);
    let branch = format!("refs/heads/{MAIN_BRANCH}");
    let commit = git::run(git::at(&git_dir), &["rev-parse", "--verify", &branch])
        .with_context(|| format!("{} has no {MAIN_BRANCH} branch", git_dir.display()))?;
    let scratch = Scratch::new("take")?;
    release::extract(&git_dir, &commit, &scratch.0)?;
    load::load(&scratch.0.join("hhl.yaml")).with_context(|| format!("serverctrl {commit} does not load"))?;
    let dir = config.parent().context("hhl.yaml has no directory")?;
    let mut n = 0;
    for e in WalkDir::new(&scratch.0).into_iter().filter_map(|e| e.ok()) {
        if !e.file_type().is_file() {
            continue;
        }
        let rel = e.path().strip_prefix(&scratch.0)?;
        let dest = if rel == Path::new("hhl.yaml") {
            config.to_path_buf()
        } else {
            dir.join(rel)
        };
        fsapply::write_file(&dest, &std::fs::read(e.path())?, 0o644)?;
        n += 1;
    }
    println!(
        "took {n} file(s) from serverctrl {} into {}",
        &commit[..10],
        dir.display()
    );
    Ok(commit)
}

/// Remember which commit was applied, so the push that asked for it can tell.
pub fn record(config: &Path, commit: &str) -> Result<()> {
    let raw = live(config)?;
    fsapply::write_file(
        &raw.paths.state_dir.join(APPLIED_COMMIT),
        format!("{commit}\n").as_bytes(),
        0o644,
    )
}
