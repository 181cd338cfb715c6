//! Which of hhl.yaml's `hosts:` this machine is: the one whose pinned `host_key` is
//! one of this machine's own ssh host keys (`/etc/ssh/ssh_host_*_key.pub`), so no
//! second name has to be kept in step; `HHL_HOST` names one instead (rendering a
//! host's files elsewhere, tests).

use std::path::Path;

use anyhow::{bail, Result};

use crate::core::identity::PublicKey;
use crate::core::model::hosts::Hosts;

/// The environment variable that names the host to act as.
pub const HOST_ENV: &str = "HHL_HOST";

/// Where sshd keeps its host keys.
const SSH_DIR: &str = "/etc/ssh";

/// This machine's host public keys.
pub fn host_keys(dir: &Path) -> Vec<PublicKey> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            let n = e.file_name().to_string_lossy().to_string();
            n.starts_with("ssh_host_") && n.ends_with("_key.pub")
        })
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter_map(|t| PublicKey::parse(t.trim()).ok())
        .collect()
}

/// The name of the host this machine is.
pub fn name(hosts: &Hosts) -> Result<String> {
    if let Ok(n) = std::env::var(HOST_ENV) {
        if hosts.get(&n).is_none() {
            let names: Vec<&str> = hosts.list.iter().map(|h| h.name.as_str()).collect();
            bail!(
                "{HOST_ENV}={n}: no such host in hhl.yaml (the hosts are {})",
                names.join(", ")
            );
        }
        return Ok(n);
    }
    match hosts.by_host_key(&host_keys(Path::new(SSH_DIR))) {
        Some(h) => Ok(h.name.clone()),
        None => bail!(
            "this machine is none of hhl.yaml's hosts: none of its ssh host keys ({SSH_DIR}/ssh_host_*_key.pub) is a `host_key:` under `hosts:`\n  \
             hint: add this host (its /etc/ssh/ssh_host_ed25519_key.pub as `host_key:`), or set {HOST_ENV}=<name> to act as one of them"
        ),
    }
}
