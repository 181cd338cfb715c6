//! `hhlctl render --out DIR`

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::host::fsapply;
use crate::host::load;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory to write into; it must not exist yet, or be empty (see --force).
    #[arg(long, short, value_name = "DIR")]
    pub out: PathBuf,
    /// Replace DIR if it already has files (e.g. an earlier render).
    #[arg(long)]
    pub force: bool,
}

pub fn run(config: &Path, args: Args) -> Result<i32> {
    let loaded = load::load(config)?;
    let artifacts = loaded.render()?;
    let out = &args.out;
    let occupied = fs::read_dir(out).map(|mut d| d.next().is_some()).unwrap_or(false);
    if occupied && !args.force {
        bail!(
            "{} is not empty; choose a new directory, or pass --force to replace it",
            out.display()
        );
    }
    // Build the whole tree beside DIR, then swap it in: DIR is never half-written.
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let staging = tempfile_dir(parent)?;
    // A write that fails (a path the OS refuses) leaves nothing behind.
    let written = artifacts
        .iter()
        .try_for_each(|a| fsapply::write_artifact(&staging, a, fsapply::Ownership::Ignore));
    if let Err(e) = written {
        let _ = fs::remove_dir_all(&staging);
        return Err(e);
    }
    if out.exists() {
        fs::remove_dir_all(out).with_context(|| format!("removing the old {}", out.display()))?;
    }
    fs::rename(&staging, out).with_context(|| format!("moving the rendered tree to {}", out.display()))?;
    let files = artifacts.iter().filter(|a| !a.is_dir()).count();
    println!(
        "rendered {} instances, {files} files, into {}",
        loaded.model.instances.len(),
        out.display()
    );
    Ok(0)
}

fn tempfile_dir(parent: &Path) -> Result<PathBuf> {
    // Staging trees of renders that were killed before their swap.
    for e in fs::read_dir(parent).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let dead = name
            .strip_prefix(".hhl-render.")
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| !fsapply::alive(pid));
        if dead {
            let _ = fs::remove_dir_all(e.path());
        }
    }
    let p = parent.join(format!(".hhl-render.{}", std::process::id()));
    let _ = fs::remove_dir_all(&p);
    fs::create_dir(&p).with_context(|| format!("creating {}", p.display()))?;
    Ok(p)
}
