//! The shell side of `redis_acl`: each owner's Redis secret, made once (random, 256
//! bits) and kept across applies, in a file only root writes and only the owner's
//! instance user (and root) reads; and each Redis's ACL file from it.

use std::os::unix::fs::{chown, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result};

use crate::core::model::Model;
use crate::core::redis_acl;
use crate::host::fsapply;
use crate::host::users;

/// `N` random bytes from the kernel.
pub fn random<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("getrandom: {e}"))?;
    Ok(bytes)
}

pub fn random_hex<const N: usize>() -> Result<String> {
    Ok(random::<N>()?.iter().map(|b| format!("{b:02x}")).collect())
}

/// The owner's secret as stored, if it is one hhlctl made.
pub fn read(model: &Model, owner: &str) -> Option<String> {
    read_at(&redis_acl::secret_path(model, owner))
}

/// A secret file's secret, if it is one hhlctl made.
pub fn read_at(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let s = text.trim_end().to_string();
    redis_acl::secret_ok(&s).then_some(s)
}

/// Make the missing secrets and (re)write the ACL files, owned root:<instance user>
/// 0640. Returns how many secrets were made.
pub fn ensure(root: &Path, model: &Model) -> Result<usize> {
    let dir = fsapply::under(root, &redis_acl::dir(model));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
    chown(&dir, Some(0), Some(0)).with_context(|| format!("chown {}", dir.display()))?;
    // The entry account's copies, for `ssh … redis-secret`.
    let entry_gid = users::lookup(&model.access.entry).map(|(_, g)| g);
    let entry_dir = fsapply::under(root, &redis_acl::dir(model).join("entry"));
    std::fs::create_dir_all(&entry_dir).with_context(|| format!("creating {}", entry_dir.display()))?;
    std::fs::set_permissions(&entry_dir, std::fs::Permissions::from_mode(0o750))?;
    chown(&entry_dir, Some(0), entry_gid.or(Some(0))).with_context(|| format!("chown {}", entry_dir.display()))?;
    let mut made = 0;
    for owner in model.owners() {
        let user = model.access.user_of(owner);
        let gid = users::lookup(user).map(|(_, g)| g);
        let secret = match read(model, owner) {
            Some(s) => s,
            None => {
                made += 1;
                random_hex::<32>()?
            }
        };
        let path = fsapply::under(root, &redis_acl::secret_path(model, owner));
        fsapply::write_secret(&path, format!("{secret}\n").as_bytes(), 0o640, gid.map(|g| (0, g)))?;
        let copy = fsapply::under(root, &redis_acl::entry_secret_path(model, owner));
        fsapply::write_secret(
            &copy,
            format!("{secret}\n").as_bytes(),
            0o640,
            entry_gid.map(|g| (0, g)),
        )?;
        if let Some(inst) = redis_acl::of(model, owner) {
            let acl = redis_acl::acl_file(&secret).map_err(|e| anyhow::anyhow!("the Redis secret {e}"))?;
            let path = fsapply::under(root, &redis_acl::acl_path(model, inst));
            fsapply::write_secret(&path, acl.as_bytes(), 0o640, gid.map(|g| (0, g)))?;
        }
    }
    Ok(made)
}

/// The log page's link key (`package::WEB_KEY`): made once by `ensure_link_key`,
/// then owned root:<entry> 0640 so `ssh <entry>@server web` can sign a link too
/// (hhl-web reads it as a credential). Returns whether it was made.
pub fn ensure_web_key(root: &Path, model: &Model) -> Result<bool> {
    let path = fsapply::under(root, Path::new(crate::core::package::WEB_KEY));
    let made = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| parse_link_key(&t))
        .is_none();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    ensure_link_key(&path)?;
    let gid = users::lookup(&model.access.entry).map(|(_, g)| g);
    if let Some(gid) = gid {
        chown(&path, Some(0), Some(gid)).with_context(|| format!("chown {}", path.display()))?;
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640))
        .with_context(|| format!("chmod {}", path.display()))?;
    Ok(made)
}

/// The page's key, made (root, 0600) when missing.
pub fn ensure_link_key(path: &Path) -> Result<Vec<u8>> {
    if let Ok(text) = std::fs::read_to_string(path) {
        if let Some(k) = parse_link_key(&text) {
            return Ok(k);
        }
    }
    let hex = random_hex::<32>()?;
    fsapply::write_file(path, format!("{hex}\n").as_bytes(), 0o600)?;
    parse_link_key(&hex).context("the new key")
}

pub fn parse_link_key(text: &str) -> Option<Vec<u8>> {
    let t = text.trim();
    (t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit())).then(|| {
        (0..32)
            .map(|i| u8::from_str_radix(&t[2 * i..2 * i + 2], 16).unwrap_or(0))
            .collect()
    })
}
