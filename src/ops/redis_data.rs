//! An owner's Redis data on the move (`hhlctl move`), on each side:
//! - the peer verbs the primary's key runs as a host's entry account, `redis-export
//!   OWNER` (start the root oneshot that bundles the data, then hand the bundle over
//!   on standard output) and `redis-import OWNER` (take a bundle on standard input,
//!   checked as it comes, then start the root oneshot that puts it in place, then
//!   hand back its receipt);
//! - those oneshots' own work as root (`hhlctl redis-data export|import OWNER`), and
//!   the primary's when the owner leaves or comes to the primary itself.
//!
//! Root acts only on what this host's own hhl.yaml says: it exports only an owner
//! placed here, imports only one placed elsewhere, and neither while that owner's
//! Redis runs here.

use std::io::Write;
use std::time::SystemTime;

use anyhow::{bail, Context, Result};

use crate::core::model::Model;
use crate::core::names::MASTER;
use crate::core::redis_bundle::{self as bundle, Receipt};
use crate::core::systemd_types::ActiveState;
use crate::host::redis_data::{self, Exported};
use crate::host::systemd::{journal, Systemd};
use crate::host::users;

/// `owner` is master or a developer of `model`.
pub fn known_owner(model: &Model, owner: &str) -> Result<(), String> {
    if owner == MASTER || model.developers.iter().any(|d| d == owner) {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not an owner in this host's hhl.yaml",
            crate::core::error::excerpt(owner)
        ))
    }
}

/// Where this host's hhl.yaml places `owner` (`None`: one host, here).
fn placed_on<'m>(model: &'m Model, owner: &str) -> Option<&'m str> {
    Some(model.hosts.as_ref()?.host_of(owner))
}

/// The owner's Redis must not run here while its data is read or replaced.
fn refuse_running(model: &Model, owner: &str) -> Result<()> {
    let Some(inst) = crate::core::redis_acl::of(model, owner) else {
        return Ok(());
    };
    let unit = inst.unit();
    let state = Systemd::connect()?
        .active_states(std::slice::from_ref(&unit))?
        .remove(&unit)
        .unwrap_or_default();
    if !matches!(state, ActiveState::Inactive | ActiveState::Failed) {
        bail!("{unit} is {state} on this host: its data is read or replaced only while it is stopped (`hhlctl move` stops it first)");
    }
    Ok(())
}

/// Root, where `owner` is placed: its Redis data and secret as a bundle at `out`.
pub fn export_here(
    model: &Model,
    owner: &str,
    out: &std::path::Path,
    mode: u32,
    ids: Option<(u32, u32)>,
) -> Result<Exported> {
    known_owner(model, owner).map_err(anyhow::Error::msg)?;
    if let (Some(on), Some(here)) = (placed_on(model, owner), model.here.as_deref()) {
        if on != here {
            bail!("this host's hhl.yaml places {owner} on {on}, not here ({here}): there is no data of theirs to export here");
        }
    }
    refuse_running(model, owner)?;
    redis_data::export(model, owner, out, mode, ids)
}

/// Root, where `owner` is not placed (yet): the bundle at `path` (a file of
/// `from_uid`) put in place.
pub fn import_here(model: &Model, owner: &str, path: &std::path::Path, from_uid: u32) -> Result<Receipt> {
    known_owner(model, owner).map_err(anyhow::Error::msg)?;
    if let (Some(on), Some(here)) = (placed_on(model, owner), model.here.as_deref()) {
        if on == here {
            bail!("this host's hhl.yaml already places {owner} here ({here}), so its Redis data here is live and is not replaced; nothing was changed");
        }
    }
    refuse_running(model, owner)?;
    redis_data::import(model, owner, path, from_uid)
}

fn must_be_root() -> Result<()> {
    if !rustix::process::geteuid().is_root() {
        bail!("`hhlctl redis-data` is what hhl-redis-export@ and hhl-redis-import@ run as root; run `hhlctl move` on the primary instead");
    }
    Ok(())
}

fn entry_ids(model: &Model) -> Result<(u32, u32)> {
    users::lookup(&model.access.entry).with_context(|| {
        format!(
            "the entry account `{}` does not exist on this host: run `hhlctl apply` here first",
            model.access.entry
        )
    })
}

/// `hhl-redis-export@<owner>`: the bundle at `<state_dir>/move/<owner>.bundle`.
pub fn export_unit_body(model: &Model, owner: &str) -> Result<i32> {
    must_be_root()?;
    let (_, entry_gid) = entry_ids(model)?;
    let dir = bundle::dir(model);
    ensure_dir(&dir, (0, entry_gid), 0o750)?;
    let e = export_here(
        model,
        owner,
        &bundle::outgoing(model, owner),
        0o640,
        Some((0, entry_gid)),
    )?;
    println!(
        "exported {} file(s), {} bytes, of {} and {owner}'s secret; checksum {}",
        e.files,
        e.bytes,
        e.dir.display(),
        e.checksum
    );
    for s in &e.skipped {
        println!("left out {s}");
    }
    Ok(0)
}

/// `hhl-redis-import@<owner>`: the bundle the entry account received, in place; the
/// receipt at `<state_dir>/move/<owner>.receipt`.
pub fn import_unit_body(model: &Model, owner: &str) -> Result<i32> {
    must_be_root()?;
    let (entry_uid, entry_gid) = entry_ids(model)?;
    let incoming = bundle::incoming(model, owner);
    let r = import_here(model, owner, &incoming, entry_uid)?;
    // Placed, so the received copy has done its work.
    let _ = std::fs::remove_file(&incoming);
    let path = bundle::receipt(model, owner);
    crate::host::fsapply::write_file_owned(
        &path,
        serde_json::to_string(&r)?.as_bytes(),
        0o640,
        Some((0, entry_gid)),
    )?;
    println!(
        "{} {} file(s), {} bytes, of {owner}'s Redis; checksum {}{}",
        if r.already { "already in place:" } else { "placed" },
        r.files,
        r.bytes,
        r.checksum,
        r.kept
            .as_deref()
            .map(|k| format!("; the data directory that was there is kept as {k}"))
            .unwrap_or_default()
    );
    Ok(0)
}

/// `dir`, made if missing, owned by `ids` and moded `mode` (never through a link).
fn ensure_dir(dir: &std::path::Path, ids: (u32, u32), mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if !dir.exists() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    std::os::unix::fs::lchown(dir, Some(ids.0), Some(ids.1)).with_context(|| format!("chown {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// Start a root oneshot and wait for it; on failure, say why on standard error.
fn oneshot(unit: &str) -> Result<bool> {
    let since = SystemTime::now();
    let (ok, timed_out) = crate::ops::remote_apply::run_oneshot(&Systemd::connect()?, unit)?;
    if !ok {
        eprintln!("error: {unit} failed; its journal (journalctl -u {unit}):");
        for line in journal::lines_since(unit, crate::ops::report::JOURNAL_LINES, Some(since)).lines() {
            eprintln!("  | {line}");
        }
        if let Some(t) = timed_out {
            eprintln!("{t}");
        }
    }
    Ok(ok)
}

/// Peer verb `redis-export OWNER`, as the entry account: the owner's bundle on
/// standard output.
pub fn serve_export(model: &Model, owner: &str) -> Result<i32> {
    let unit = bundle::export_unit(owner);
    if !oneshot(&unit)? {
        return Ok(1);
    }
    let mut f = redis_data::open_bundle(&bundle::outgoing(model, owner), 0)?;
    let mut out = std::io::stdout().lock();
    std::io::copy(&mut f, &mut out).context("sending the bundle")?;
    out.flush()?;
    Ok(0)
}

/// Peer verb `redis-import OWNER`, as the entry account: the bundle from standard
/// input, checked as it comes, then put in place by root; the receipt (JSON) on
/// standard output.
pub fn serve_import(model: &Model, owner: &str) -> Result<i32> {
    let Some(inst) = crate::core::redis_acl::of(model, owner) else {
        bail!("`{owner}` has no Redis in this host's hhl.yaml");
    };
    let into = bundle::incoming(model, owner);
    if !into.parent().is_some_and(|d| d.is_dir()) {
        bail!(
            "{} is missing: run `hhlctl apply` on this host, which makes it",
            into.parent().unwrap_or(&into).display()
        );
    }
    let got = redis_data::receive(std::io::stdin().lock(), &into, owner, inst.port)
        .with_context(|| format!("receiving {owner}'s Redis data into {}", into.display()))?;
    if !oneshot(&bundle::import_unit(owner))? {
        return Ok(1);
    }
    let path = bundle::receipt(model, owner);
    let f = redis_data::open_bundle(&path, 0)?;
    let r: Receipt = serde_json::from_reader(std::io::Read::take(f, 64 * 1024))
        .with_context(|| format!("reading {}", path.display()))?;
    if r.checksum != got.checksum {
        bail!(
            "{} says checksum {}, and what came was {}: an older receipt? Run the move again",
            path.display(),
            r.checksum,
            got.checksum
        );
    }
    println!("{}", serde_json::to_string(&r)?);
    Ok(0)
}
