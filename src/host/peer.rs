//! The primary's side of talking to another host: one of hhlctl's own verbs run there
//! by its entry account's forced command (`hhlctl peer <primary>`), through ssh with
//! the peer key and the pinned host key (`core::peers`), always under a deadline.
//! Connections are kept (ssh's ControlMaster) so a status across hosts costs one
//! round trip per host, not one handshake.

use std::os::unix::fs::OpenOptionsExt;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::core::model::hosts::HostSpec;
use crate::core::model::Model;
use crate::core::peers;
use crate::host::child::{self, Deadline};

/// A quick question (ping, status): the connect bound (5 s) plus a few seconds of
/// work; a host that takes longer is shown as not answering, not waited for.
pub const ASK: Deadline = Deadline {
    limit: Duration::from_secs(8),
    hint: "the host did not answer in time: it may be down, cut off or overloaded; `hhlctl hosts` shows which",
};

/// A verb that waits for systemd there (restart, deploy): its job deadline and margin.
pub const ACT: Deadline = Deadline {
    limit: Duration::from_secs(660),
    hint: "the host did not finish in time; `hhlctl hosts` and `ssh <entry>@<host> status` there show where it is",
};

/// `logs -f` forwarded: it follows until the developer stops it; a dead link ends it
/// by the keep-alive (`core::peers`), so this bound only caps a forgotten terminal.
pub const FOLLOW: Deadline = Deadline {
    limit: Duration::from_secs(24 * 3600),
    hint: "a followed log ends after a day; run it again",
};

/// `hhlctl hosts sync` as the entry account: every owed host's apply, side by side.
pub const SYNC: Deadline = Deadline {
    limit: Duration::from_secs(15 * 60),
    hint: "the retry did not end: `journalctl -u hhl-hosts-sync.service` shows which host it waits on",
};

/// The host's own apply: below its hhl-apply.service's TimeoutStartSec (15 min, when
/// it ends itself), and the primary's own unit (30 min) leaves room for both.
pub const APPLY: Deadline = Deadline {
    limit: Duration::from_secs(14 * 60),
    hint: "the host's apply did not end: `journalctl -u hhl-apply.service` on it shows where it is",
};

/// An owner's Redis data on its way (`hhlctl move`): the host's root oneshot (its
/// unit ends itself at 20 min) and the bytes over the link, which keep-alive ends if
/// it dies.
pub const TRANSFER: Deadline = Deadline {
    limit: Duration::from_secs(30 * 60),
    hint: "the host did not finish the transfer in time: `journalctl -u 'hhl-redis-*'` on it shows where it was; run the move again to resume",
};

/// ssh to `host` as its entry account, ready for a command line.
pub fn ssh(model: &Model, host: &HostSpec) -> Command {
    let root = rustix::process::geteuid().is_root();
    let control = peers::control_dir(model, root);
    if root {
        let _ = std::fs::create_dir_all(&control);
    }
    let mut cmd = Command::new("ssh");
    cmd.args(peers::ssh_options(
        model,
        host,
        control.is_dir().then_some(control.as_path()),
    ));
    cmd.arg(peers::destination(model, host));
    // Nothing of the caller's environment is for the other host.
    cmd.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LANG", "C.UTF-8");
    cmd
}

/// What a verb run on a host said, and how long it took.
#[derive(Debug)]
pub struct Answer {
    pub output: Output,
    pub took: Duration,
}

impl Answer {
    pub fn ok(&self) -> bool {
        self.output.status.success()
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    /// ssh's own error (exit 255): the host was not reached, or the link died.
    pub fn unreachable(&self) -> Option<String> {
        (self.output.status.code() == Some(255)).then(|| {
            let e = String::from_utf8_lossy(&self.output.stderr).trim().to_string();
            if e.is_empty() {
                "ssh ended without a word".into()
            } else {
                e
            }
        })
    }
}

/// Run `line` (a peer verb) on `host`, output captured, within `deadline`.
pub fn ask(model: &Model, host: &HostSpec, line: &str, deadline: Deadline) -> Result<Answer> {
    let t0 = Instant::now();
    let mut cmd = ssh(model, host);
    cmd.arg(line).stdin(Stdio::null());
    let output =
        child::output(&mut cmd, deadline).with_context(|| format!("asking host {} ({})", host.name, host.address))?;
    Ok(Answer {
        output,
        took: t0.elapsed(),
    })
}

/// Run `line` on `host` with this process's stdout and stderr (streamed), within
/// `deadline`; its exit code (255: ssh's own failure).
pub fn run(model: &Model, host: &HostSpec, line: &str, deadline: Deadline) -> Result<i32> {
    let mut cmd = ssh(model, host);
    cmd.arg(line).stdin(Stdio::null());
    let status =
        child::status(&mut cmd, deadline).with_context(|| format!("on host {} ({})", host.name, host.address))?;
    Ok(status.code().unwrap_or(1))
}

/// Run `line` on `host` with its standard output written to `into` (a new file,
/// 0600) and its standard error captured, within `deadline`.
pub fn fetch(model: &Model, host: &HostSpec, line: &str, into: &std::path::Path, deadline: Deadline) -> Result<Answer> {
    let t0 = Instant::now();
    let _ = std::fs::remove_file(into);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(into)
        .with_context(|| format!("creating {}", into.display()))?;
    let mut cmd = ssh(model, host);
    cmd.arg(line)
        .stdin(Stdio::null())
        .stdout(Stdio::from(file))
        .stderr(Stdio::piped());
    let output = child::Bounded::spawn(&mut cmd, deadline)
        .and_then(|b| b.wait_with_output(None))
        .with_context(|| format!("asking host {} ({})", host.name, host.address))?;
    Ok(Answer {
        output,
        took: t0.elapsed(),
    })
}

/// Run `line` on `host` with `from` (a file) on its standard input, its output
/// captured, within `deadline`.
pub fn send(model: &Model, host: &HostSpec, line: &str, from: &std::path::Path, deadline: Deadline) -> Result<Answer> {
    let t0 = Instant::now();
    let file = std::fs::File::open(from).with_context(|| format!("opening {}", from.display()))?;
    let mut cmd = ssh(model, host);
    cmd.arg(line)
        .stdin(Stdio::from(file))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let output = child::Bounded::spawn(&mut cmd, deadline)
        .and_then(|b| b.wait_with_output(None))
        .with_context(|| format!("sending to host {} ({})", host.name, host.address))?;
    Ok(Answer {
        output,
        took: t0.elapsed(),
    })
}

/// `ssh` for git run as the entry account (GIT_SSH_COMMAND), whoever asks: its kept
/// connections.
pub fn git_ssh_command_as_entry(model: &Model, host: &HostSpec) -> String {
    ssh_command_with(model, host, &peers::control_dir(model, false))
}

/// `ssh` for git (`core.sshCommand` / GIT_SSH_COMMAND): the same options.
pub fn git_ssh_command(model: &Model, host: &HostSpec) -> String {
    let root = rustix::process::geteuid().is_root();
    ssh_command_with(model, host, &peers::control_dir(model, root))
}

fn ssh_command_with(model: &Model, host: &HostSpec, control: &std::path::Path) -> String {
    let opts = peers::ssh_options(model, host, control.is_dir().then_some(control));
    let mut s = String::from("ssh");
    for o in opts {
        s.push(' ');
        s.push_str(&crate::core::peers::shell_word(&o));
    }
    s
}

/// The peer key belongs to the entry account (its hooks and sessions run the
/// forwards): `hhlctl hosts key` may make it before that account exists, so each
/// apply on the primary hands it over. Whether it changed hands.
pub fn hand_key_to_entry(root: &std::path::Path, model: &Model) -> Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let path = crate::host::fsapply::under(root, &peers::key_path(model));
    let Ok(meta) = std::fs::symlink_metadata(&path) else {
        return Ok(false);
    };
    let Some((uid, gid)) = crate::host::users::lookup(&model.access.entry) else {
        return Ok(false);
    };
    if !meta.is_file() || meta.uid() == uid {
        return Ok(false);
    }
    std::os::unix::fs::chown(&path, Some(uid), Some(gid)).with_context(|| format!("chown {}", path.display()))?;
    Ok(true)
}
