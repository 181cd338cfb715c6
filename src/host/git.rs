//! Running git on the bare repositories: one place that builds the command and turns
//! a failure into a message with git's own words.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::host::child::{self, Bounded};

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
/// thread so that neither side waits on a full pipe; its standard output. Killed at
/// `child::GIT`.
pub fn feed(mut cmd: Command, args: &[&str], input: Option<Vec<u8>>) -> Result<Vec<u8>> {
    cmd.args(args);
    let out = match input {
        Some(input) => child::output_with_input(&mut cmd, child::GIT, input),
        None => child::output(&mut cmd, child::GIT),
    }?;
    if !out.status.success() {
        bail!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

/// Run `cmd` with `args`, handing each NUL-terminated record of its output to `each`
/// as it arrives; once `each` returns false, git is killed, so a listing that would be
/// huge is never produced, let alone read, whole. Returns whether it ran to its end.
/// The whole listing is bounded by `child::GIT` (its watchdog ends git, which ends the
/// reading).
pub fn records(mut cmd: Command, args: &[&str], mut each: impl FnMut(&[u8]) -> bool) -> Result<bool> {
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut running = Bounded::spawn(&mut cmd, child::GIT)?;
    let child = running.child();
    let mut out = BufReader::with_capacity(64 << 10, child.stdout.take().expect("piped"));
    let mut record = Vec::new();
    let mut whole = true;
    loop {
        record.clear();
        if out.read_until(0, &mut record).context("reading git's output")? == 0 {
            break;
        }
        if record.last() == Some(&0) {
            record.pop();
        }
        if !each(&record) {
            whole = false;
            let _ = child.kill();
            break;
        }
    }
    drop(out);
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let status = running.wait()?;
    if whole && !status.success() {
        bail!("git {} failed: {}", args.join(" "), err.trim());
    }
    Ok(whole)
}
