//! How the primary reaches the other hosts: ssh as their entry account with the
//! primary's peer key, the host key pinned from hhl.yaml (never learnt on first use).
//! Pure: the known_hosts file and the ssh command line. `host::peer` runs them.

use std::path::{Path, PathBuf};

use crate::core::artifact::{generated_header, Artifact};
use crate::core::model::hosts::HostSpec;
use crate::core::model::Model;

/// The primary's peer key pair, under the state directory (the entry account's: its
/// ssh runs the forwards; root reads it too).
pub fn key_path(model: &Model) -> PathBuf {
    model.paths.state_dir.join("peer/id_ed25519")
}

/// The pinned host keys, one line per other host, by host name (`HostKeyAlias`).
pub fn known_hosts_path(model: &Model) -> PathBuf {
    known_hosts_under(&model.paths.state_dir)
}

/// The same, under the state directory `state_dir`.
pub fn known_hosts_under(state_dir: &Path) -> PathBuf {
    state_dir.join("peer/known_hosts")
}

/// Where ssh keeps its kept connections (ControlMaster): the entry account's own
/// directory, or root's under /run.
pub fn control_dir(model: &Model, root: bool) -> PathBuf {
    if root {
        PathBuf::from("/run/hhl-peer")
    } else {
        model.paths.entry_home.join(".peer")
    }
}

/// known_hosts: `<name> <type> <base64>` per host other than `here`.
pub fn known_hosts_text(model: &Model, source: &Path) -> String {
    let mut out = generated_header(source, None);
    if let (Some(hosts), Some(here)) = (&model.hosts, &model.here) {
        for h in hosts.others(here) {
            out.push_str(&format!("{} {} {}\n", h.name, h.host_key.kind, h.host_key.blob));
        }
    }
    out
}

/// On the primary of several hosts: the pinned keys, and the directories for the
/// peer key and the entry account's kept connections.
pub fn artifacts(model: &Model, source: &Path) -> Vec<Artifact> {
    let (Some(hosts), Some(here)) = (&model.hosts, &model.here) else {
        return Vec::new();
    };
    let entry = crate::core::artifact::Owner::User(model.access.entry.clone());
    if hosts.primary().name != *here {
        // Where an owner's Redis data waits while it moves (`hhlctl move`): root's
        // export and import, readable by the entry account; what it receives, its own.
        let reads = crate::core::artifact::Owner::ReadBy(model.access.entry.clone());
        return vec![
            Artifact::dir(crate::core::redis_bundle::dir(model), 0o750).owned(reads),
            Artifact::dir(crate::core::redis_bundle::incoming_dir(model), 0o700).owned(entry),
        ];
    }
    vec![
        Artifact::dir(model.paths.state_dir.join("peer"), 0o755),
        Artifact::file(known_hosts_path(model), known_hosts_text(model, source), 0o644),
        Artifact::dir(control_dir(model, false), 0o700).owned(entry),
    ]
}

/// How long ssh waits for a host's TCP connection and key exchange.
pub const CONNECT_SECS: u32 = 5;
/// Keep-alive: a host silent for INTERVAL × COUNT seconds is gone (a kept connection
/// to a host cut off is noticed in about that long).
pub const ALIVE_INTERVAL_SECS: u32 = 1;
pub const ALIVE_COUNT: u32 = 3;

/// ssh's options (everything but the destination and command): nothing read from any
/// ssh_config, batch mode, the key, the pinned host key for `host`, bounded connect
/// and keep-alive, a kept connection in `control`.
pub fn ssh_options(model: &Model, host: &HostSpec, control: Option<&Path>) -> Vec<String> {
    let mut o: Vec<String> = vec![
        "-F".into(),
        "/dev/null".into(),
        "-i".into(),
        key_path(model).display().to_string(),
    ];
    let opts = [
        "IdentitiesOnly=yes".to_string(),
        "BatchMode=yes".into(),
        "StrictHostKeyChecking=yes".into(),
        format!("UserKnownHostsFile={}", known_hosts_path(model).display()),
        "GlobalKnownHostsFile=/dev/null".into(),
        format!("HostKeyAlias={}", host.name),
        "CheckHostIP=no".into(),
        format!("ConnectTimeout={CONNECT_SECS}"),
        format!("ServerAliveInterval={ALIVE_INTERVAL_SECS}"),
        format!("ServerAliveCountMax={ALIVE_COUNT}"),
        "LogLevel=ERROR".into(),
    ];
    for x in opts {
        o.push("-o".into());
        o.push(x);
    }
    if let Some(dir) = control {
        for x in [
            "ControlMaster=auto".to_string(),
            format!("ControlPath={}/{}", dir.display(), host.name),
            "ControlPersist=60".into(),
        ] {
            o.push("-o".into());
            o.push(x);
        }
    }
    o
}

/// `<entry>@<address>`, IPv6 in brackets not needed by ssh's own argument.
pub fn destination(model: &Model, host: &HostSpec) -> String {
    format!("{}@{}", model.access.entry, host.address)
}

/// `word` quoted for a POSIX shell (git runs core.sshCommand through one).
pub fn shell_word(word: &str) -> String {
    if !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_-.=,:@%".contains(&b))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// What a host answers to `ping`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Pong {
    pub host: String,
    /// The serverctrl commit it last applied.
    pub applied: Option<String>,
    pub version: String,
}

/// Why a host's rows are what it said last: it did not answer since `since`
/// (seconds since the epoch), with `error`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Unreachable {
    pub since: u64,
    pub error: String,
}
