//! Unix users on this host: look them up (for file owners) and create the missing
//! ones with `useradd`, the distribution's own tool.

use std::ffi::{CStr, CString};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::access::Access;
use crate::names::MASTER;

/// Read one passwd entry: `get` is getpwnam_r or getpwuid_r with its key bound;
/// `read` takes what is wanted while the entry's buffer is alive.
fn passwd_entry<T>(
    get: impl FnOnce(*mut libc::passwd, *mut libc::c_char, usize, *mut *mut libc::passwd) -> libc::c_int,
    read: impl FnOnce(&libc::passwd) -> T,
) -> Option<T> {
    // SAFETY: a zeroed passwd is a valid out-parameter; `get` fills it and points
    // its strings into `buf`, which outlives `read`.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0u8; 4096];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let rc = get(&mut pwd, buf.as_mut_ptr().cast(), buf.len(), &mut result);
    (rc == 0 && !result.is_null()).then(|| read(&pwd))
}

/// (uid, primary gid) of `name`, or None when there is no such user.
pub fn lookup(name: &str) -> Option<(u32, u32)> {
    let cname = CString::new(name).ok()?;
    // SAFETY: every pointer refers to live, correctly sized storage for the call.
    passwd_entry(
        |pwd, buf, len, result| unsafe { libc::getpwnam_r(cname.as_ptr(), pwd, buf, len, result) },
        |pwd| (pwd.pw_uid, pwd.pw_gid),
    )
}

/// Accounts below this uid are the system's (Debian's UID_MIN); a developer's own
/// account is above it.
pub const UID_MIN: u32 = 1000;

/// Existing system accounts that `access` would run instances as: a developer's user
/// with a uid below `UID_MIN`, or master's when hhlctl did not create it (its comment
/// is not `hhl master`). As (owner, user, uid).
pub fn system_accounts(access: &Access) -> Vec<(&str, &str, u32)> {
    access
        .users
        .iter()
        .filter_map(|(owner, user)| {
            let cname = CString::new(user.as_str()).ok()?;
            let (uid, gecos) = passwd_entry(
                // SAFETY: as in `lookup`.
                |pwd, buf, len, result| unsafe { libc::getpwnam_r(cname.as_ptr(), pwd, buf, len, result) },
                // SAFETY: the call succeeded; pw_gecos is NULL or a string in buf.
                |pwd| {
                    let gecos = if pwd.pw_gecos.is_null() {
                        String::new()
                    } else {
                        unsafe { CStr::from_ptr(pwd.pw_gecos) }.to_string_lossy().into_owned()
                    };
                    (pwd.pw_uid, gecos)
                },
            )?;
            let ours = gecos.starts_with(&format!("hhl {owner}"));
            (uid < UID_MIN && !(owner == MASTER && ours)).then_some((owner.as_str(), user.as_str(), uid))
        })
        .collect()
}

/// The name of the user running hhlctl.
pub fn current() -> Result<String> {
    let uid = unsafe { libc::geteuid() };
    passwd_entry(
        // SAFETY: as in `lookup`.
        |pwd, buf, len, result| unsafe { libc::getpwuid_r(uid, pwd, buf, len, result) },
        // SAFETY: the call succeeded, so pw_name points at a NUL-terminated string in buf.
        |pwd| unsafe { CStr::from_ptr(pwd.pw_name) }.to_string_lossy().into_owned(),
    )
    .with_context(|| format!("uid {uid} has no entry in the user database"))
}

fn group_exists(name: &str) -> bool {
    Command::new("getent")
        .args(["group", name])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Create a system group unless it exists; returns whether it was created.
pub fn ensure_group(name: &str) -> Result<bool> {
    if group_exists(name) {
        return Ok(false);
    }
    let out = Command::new("groupadd")
        .args(["--system", name])
        .output()
        .context("running groupadd")?;
    if !out.status.success() {
        bail!(
            "groupadd {name} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(true)
}

/// Add `user` to those of `groups` they are not in; returns whether anything changed.
pub fn add_to_groups(user: &str, groups: &[String]) -> Result<bool> {
    let out = Command::new("id").args(["-nG", user]).output().context("running id")?;
    if !out.status.success() {
        bail!("unix user `{user}` does not exist");
    }
    let have = String::from_utf8_lossy(&out.stdout).to_string();
    let missing: Vec<&str> = groups
        .iter()
        .map(String::as_str)
        .filter(|g| !have.split_whitespace().any(|h| h == *g) && group_exists(g))
        .collect();
    if missing.is_empty() {
        return Ok(false);
    }
    let out = Command::new("usermod")
        .args(["-aG", &missing.join(","), user])
        .output()
        .context("running usermod")?;
    if !out.status.success() {
        bail!(
            "usermod -aG {} {user} failed: {}",
            missing.join(","),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(true)
}

/// Admins join every owner's group, so they can deploy into anyone's releases.
pub fn admit_admins(access: &Access) -> Result<Vec<String>> {
    let groups: Vec<String> = access.users.values().cloned().collect();
    let mut changed = Vec::new();
    for admin in &access.admins {
        if lookup(admin).is_some() && add_to_groups(admin, &groups)? {
            changed.push(admin.clone());
        }
    }
    Ok(changed)
}

/// Users in `access` that do not exist on this host, as (owner, user).
pub fn missing(access: &Access) -> Vec<(&str, &str)> {
    access
        .users
        .iter()
        .filter(|(_, user)| lookup(user).is_none())
        .map(|(owner, user)| (owner.as_str(), user.as_str()))
        .collect()
}

/// Create the missing users: master's as a system user with no login, developers' with
/// a home (for their ssh keys) and `access.shell`. Returns who was created.
pub fn create_missing(access: &Access) -> Result<Vec<String>> {
    let mut created = Vec::new();
    for (owner, user) in missing(access) {
        let mut cmd = Command::new("useradd");
        cmd.arg("--user-group");
        if owner == MASTER {
            cmd.args(["--system", "--no-create-home", "--home-dir", "/nonexistent"])
                .args(["--shell", "/usr/sbin/nologin"]);
        } else {
            cmd.arg("--create-home").arg("--shell").arg(&access.shell);
        }
        cmd.args(["--comment", &format!("hhl {owner}")]).arg(user);
        let out = cmd.output().context("running useradd (from the passwd package)")?;
        if !out.status.success() {
            bail!("useradd {user} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        created.push(user.to_string());
    }
    Ok(created)
}
