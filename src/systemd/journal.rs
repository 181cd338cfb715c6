//! The journal, through journalctl (journald has no D-Bus API for reading logs).

use std::process::Command;

use anyhow::{Context, Result};

/// The last `n` lines `unit` logged, for failure reports.
pub fn last_lines(unit: &str, n: usize) -> String {
    if !readable() {
        return "(you may not read the system journal; `hhlctl logs <instance>` shows your instance's log file)\n"
            .into();
    }
    Command::new("journalctl")
        .args(["--no-pager", "-q", "-o", "short-iso", "-n", &n.to_string(), "-u", unit])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_else(|e| format!("(journalctl failed: {e})\n"))
}

/// Whether this user may read the system journal (root, or groups systemd-journal/adm).
pub fn readable() -> bool {
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    Command::new("id")
        .arg("-nG")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .any(|g| g == "systemd-journal" || g == "adm")
        })
        .unwrap_or(false)
}

/// Replace this process with journalctl showing `units`.
pub fn show(units: &[String], lines: usize, follow: bool) -> Result<i32> {
    let mut cmd = Command::new("journalctl");
    cmd.args(["--no-pager", "-o", "short-iso", "-n", &lines.to_string()]);
    if follow {
        cmd.arg("-f");
    }
    for u in units {
        cmd.args(["-u", u]);
    }
    let status = cmd.status().context("running journalctl")?;
    Ok(status.code().unwrap_or(1))
}
