//! Running git on the bare repositories: one place that builds the command and turns
//! a failure into a message with git's own words.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// `git --git-dir <git_dir>`, ready for more arguments.
pub fn at(git_dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.arg("--git-dir").arg(git_dir);
    cmd
}

/// Run `cmd` with `args`; its standard output, trimmed.
pub fn run(mut cmd: Command, args: &[&str]) -> Result<String> {
    let out = cmd.args(args).output().context("running git")?;
    if !out.status.success() {
        bail!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}
