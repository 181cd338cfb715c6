//! Running git on the bare repositories: one place that builds the command and turns
//! a failure into a message with git's own words.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// `git --git-dir <git_dir>`, ready for more arguments.
pub fn at(git_dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.arg("--git-dir").arg(git_dir);
    cmd
}

/// Run `cmd` with `args`; its standard output, trimmed.
pub fn run(cmd: Command, args: &[&str]) -> Result<String> {
    Ok(String::from_utf8_lossy(&bytes(cmd, args)?).trim().to_string())
}

/// Run `cmd` with `args`; its standard output as it is (for `-z` listings and blobs).
pub fn bytes(cmd: Command, args: &[&str]) -> Result<Vec<u8>> {
    feed(cmd, args, None)
}

/// Run `cmd` with `args`, `input` (if any) on its standard input, written from a
/// thread so that neither side waits on a full pipe; its standard output.
pub fn feed(mut cmd: Command, args: &[&str], input: Option<Vec<u8>>) -> Result<Vec<u8>> {
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = cmd.spawn().context("running git")?;
    let writer = match (input, child.stdin.take()) {
        (Some(input), Some(mut stdin)) => Some(std::thread::spawn(move || stdin.write_all(&input))),
        _ => None,
    };
    let out = child.wait_with_output().context("running git")?;
    if let Some(w) = writer {
        let _ = w.join();
    }
    if !out.status.success() {
        bail!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}
