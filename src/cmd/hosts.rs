//! `hhlctl hosts`: the hosts of hhl.yaml as the primary sees them now (each asked in
//! parallel, within a deadline), the primary's peer key, and the retry of hosts still
//! owed an apply (`ops::hosts`; hhl-hosts-sync.timer runs it).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::host::load;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub what: Option<What>,
    /// Print JSON for scripts.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum What {
    /// Each host: reachable or not (and why), the serverctrl commit it applied, how
    /// long it took to answer. Exits 1 when any host does not answer.
    List,
    /// Make the primary's peer key if it has none, and print its public half: paste it
    /// as the primary's `peer_key:` in hhl.yaml.
    Key,
    /// Push serverctrl's applied commit again to the hosts still owed it (whose
    /// back-off is over; `--now`: all of them). hhl-hosts-sync.timer runs this.
    Sync {
        #[arg(long)]
        now: bool,
    },
}

pub fn run(config: &Path, args: Args) -> Result<i32> {
    match args.what.unwrap_or(What::List) {
        What::Key => key(config),
        What::List => list(config, args.json),
        What::Sync { now } => {
            let loaded = load::load(config)?;
            // One host (the timer runs everywhere): nothing to say, every 30 s.
            if loaded.model.hosts.is_none() {
                return Ok(0);
            }
            // The timer starts it as root; the retry is the entry account's work (its
            // key, its repositories, its queue): root never acts on what it can write.
            if rustix::process::geteuid().is_root() {
                let exe = std::env::current_exe().context("finding hhlctl")?;
                let mut cmd = crate::host::users::as_user(&loaded.model.access.entry, &exe.to_string_lossy());
                cmd.arg("--config").arg(config).args(["hosts", "sync"]);
                if now {
                    cmd.arg("--now");
                }
                let status = crate::host::child::status(&mut cmd, crate::host::peer::SYNC)?;
                return Ok(status.code().unwrap_or(1));
            }
            Ok(if crate::ops::hosts::sync(&loaded.model, now)? > 0 {
                1
            } else {
                0
            })
        }
    }
}

fn list(config: &Path, json: bool) -> Result<i32> {
    let loaded = load::load(config)?;
    if loaded.model.hosts.is_none() {
        bail!("hhl.yaml has no `hosts:`: this host runs everything (see docs/ops/hosts.md to add one)");
    }
    let seen = crate::ops::hosts::ping_all(&loaded.model);
    let owed = crate::ops::remote_apply::applied_commit(&loaded.model);
    let down = seen.iter().filter(|s| s.error.is_some()).count();
    if json {
        println!("{}", serde_json::to_string_pretty(&seen)?);
    } else {
        let rows: Vec<[String; 6]> = seen
            .iter()
            .map(|s| {
                let applied = s
                    .pong
                    .as_ref()
                    .and_then(|p| p.applied.as_deref())
                    .map(|c| c[..c.len().min(10)].to_string())
                    .unwrap_or_else(|| "-".into());
                [
                    s.host.clone(),
                    s.address.clone(),
                    if s.primary { "primary".into() } else { "host".into() },
                    match &s.error {
                        None => "answers".into(),
                        Some(e) => format!("DOWN: {e}"),
                    },
                    match owed.as_deref() {
                        Some(o) if !s.primary && s.pong.as_ref().and_then(|p| p.applied.as_deref()) != Some(o) => {
                            format!("{applied} (owed {})", &o[..o.len().min(10)])
                        }
                        _ => applied,
                    },
                    format!("{} ms", s.took_ms),
                ]
            })
            .collect();
        print!(
            "{}",
            crate::core::table::render(&["HOST", "ADDRESS", "ROLE", "STATE", "APPLIED", "ANSWERED IN"], &rows)
        );
    }
    Ok(if down > 0 { 1 } else { 0 })
}

/// The peer key: made once (ed25519, no passphrase), owned by the entry account, which
/// runs the forwards; printed as the line hhl.yaml takes.
fn key(config: &Path) -> Result<i32> {
    let text = std::fs::read_to_string(config).with_context(|| format!("reading {}", config.display()))?;
    let raw = crate::core::config::parse(config, &text).map_err(crate::core::error::Diagnostics::from)?;
    let path = raw.paths.state_dir.join("peer/id_ed25519");
    if !path.exists() {
        let dir = path.parent().expect("a file in a directory");
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
        let mut cmd = std::process::Command::new("ssh-keygen");
        cmd.args(["-q", "-t", "ed25519", "-N", "", "-C", "hhl-peer", "-f"])
            .arg(&path);
        let out = crate::host::child::output(&mut cmd, crate::host::child::USER_TOOLS)?;
        if !out.status.success() {
            bail!("ssh-keygen failed: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        // The entry account runs the forwards (its hooks and ssh sessions).
        if let Some((uid, gid)) = crate::host::users::lookup(&raw.users.entry) {
            std::os::unix::fs::chown(&path, Some(uid), Some(gid))?;
        }
        eprintln!("made the peer key {}", path.display());
    }
    let public = std::fs::read_to_string(path.with_extension("pub"))
        .with_context(|| format!("reading {}.pub", path.display()))?;
    let key = crate::core::identity::PublicKey::parse(public.trim()).map_err(anyhow::Error::msg)?;
    println!("{} {}", key.kind, key.blob);
    Ok(0)
}
