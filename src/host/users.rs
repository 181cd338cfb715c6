//! Unix users on this host: look them up (for file owners) and create the missing
//! ones with `useradd`, the distribution's own tool.

use std::ffi::{CStr, CString};
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::core::model::access::Access;
use crate::host::child;

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
            (uid < UID_MIN && !ours).then_some((owner.as_str(), user.as_str(), uid))
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
    child::output(Command::new("getent").args(["group", name]), child::USER_TOOLS).is_ok_and(|o| o.status.success())
}

/// Create a system group unless it exists; returns whether it was created.
pub fn ensure_group(name: &str) -> Result<bool> {
    if group_exists(name) {
        return Ok(false);
    }
    let out = child::output(Command::new("groupadd").args(["--system", name]), child::USER_TOOLS)?;
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
    let out = child::output(Command::new("id").args(["-nG", user]), child::USER_TOOLS)?;
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
    let out = child::output(
        Command::new("usermod").args(["-aG", &missing.join(","), user]),
        child::USER_TOOLS,
    )?;
    if !out.status.success() {
        bail!(
            "usermod -aG {} {user} failed: {}",
            missing.join(","),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(true)
}

/// `program` run as `user`: through `runuser` when we are root, so that root does
/// the work in a tree `user` can write as `user` (nothing planted there can redirect
/// a root write), else directly.
pub fn as_user(user: &str, program: &str) -> Command {
    if rustix::process::geteuid().is_root() && user != "root" {
        let mut c = Command::new("runuser");
        c.args(["-u", user, "--", program]);
        c
    } else {
        Command::new(program)
    }
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

/// Create the missing users: every owner's as a system user with no login, no shell
/// and no home; the entry account as a system user whose shell (`/bin/sh`, which sshd
/// runs the forced command with) is reachable only through its authorized_keys, with
/// a locked password, a root-owned home, and read access to the journal (for `logs`).
/// Returns who was created.
pub fn create_missing(access: &Access, entry_home: &Path) -> Result<Vec<String>> {
    let mut created = Vec::new();
    let entry = (access.entry.as_str(), access.entry.as_str());
    let wanted = missing(access)
        .into_iter()
        .chain((lookup(&access.entry).is_none()).then_some(entry));
    for (owner, user) in wanted {
        let mut cmd = Command::new("useradd");
        cmd.args(["--user-group", "--system", "--no-create-home"]);
        if user == access.entry {
            cmd.arg("--home-dir").arg(entry_home).args(["--shell", "/bin/sh"]);
            if group_exists("systemd-journal") {
                cmd.args(["--groups", "systemd-journal"]);
            }
            cmd.args(["--comment", "hhl entry"]);
        } else {
            cmd.args(["--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin"]);
            cmd.args(["--comment", &format!("hhl {owner}")]);
        }
        cmd.arg(user);
        let out = child::output(&mut cmd, child::USER_TOOLS).context("running useradd (from the passwd package)")?;
        if !out.status.success() {
            bail!("useradd {user} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        created.push(user.to_string());
    }
    Ok(created)
}

/// The entry account as this host has it.
#[derive(Debug, PartialEq, Eq)]
pub enum Entry {
    /// Not there: `create_missing` makes it.
    Missing,
    /// There, as `create_missing` makes it.
    Ready,
    /// An account hhlctl made for another role (0.1.0's master account `hhl`: home
    /// `/nonexistent`, shell `nologin`): `convert_entry` runs this usermod.
    Convert(Vec<String>),
    /// Someone else's account by that name: apply refuses; the message says what to
    /// run.
    Foreign(String),
}

/// Whether the entry account is ready for ssh: its home is `entry_home` (where apply
/// writes the authorized_keys sshd reads), its shell `/bin/sh` (sshd runs the forced
/// command with it), and it reads the journal (`ssh … logs`).
pub fn entry_state(access: &Access, entry_home: &Path) -> Entry {
    let name = access.entry.as_str();
    let Ok(cname) = CString::new(name) else {
        return Entry::Missing;
    };
    let got = passwd_entry(
        // SAFETY: as in `lookup`.
        |pwd, buf, len, result| unsafe { libc::getpwnam_r(cname.as_ptr(), pwd, buf, len, result) },
        // SAFETY: the call succeeded: the strings are NULL or NUL-terminated in buf.
        |pwd| {
            let s = |p: *const libc::c_char| {
                if p.is_null() {
                    String::new()
                } else {
                    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
                }
            };
            (s(pwd.pw_dir), s(pwd.pw_shell), s(pwd.pw_gecos))
        },
    );
    let Some((home, shell, gecos)) = got else {
        return Entry::Missing;
    };
    let in_journal = !group_exists("systemd-journal")
        || child::output(Command::new("id").args(["-nG", name]), child::USER_TOOLS).is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .any(|g| g == "systemd-journal")
        });
    decide(name, entry_home, &home, &shell, &gecos, in_journal)
}

/// `entry_state` once the account is read: pure.
fn decide(name: &str, entry_home: &Path, home: &str, shell: &str, gecos: &str, in_journal: bool) -> Entry {
    if Path::new(home) == entry_home && shell == "/bin/sh" && in_journal {
        return Entry::Ready;
    }
    let mut args: Vec<String> = vec![
        "--home".into(),
        entry_home.display().to_string(),
        "--shell".into(),
        "/bin/sh".into(),
    ];
    if !in_journal {
        args.extend(["--append".into(), "--groups".into(), "systemd-journal".into()]);
    }
    if gecos.starts_with("hhl ") {
        args.extend(["--comment".into(), "hhl entry".into()]);
        args.push(name.into());
        Entry::Convert(args)
    } else {
        args.push(name.into());
        Entry::Foreign(format!(
            "unix user `{name}` (users.entry) exists, but hhlctl did not make it (home {home}, shell {shell}); \
             make it the entry account with `usermod {}`, or name another account in users.entry",
            args.join(" ")
        ))
    }
}

/// Run the usermod `Entry::Convert` holds. The account must have no process running
/// (usermod refuses to move a busy account's home).
pub fn convert_entry(args: &[String]) -> Result<()> {
    let out = child::output(Command::new("usermod").args(args), child::USER_TOOLS)?;
    if !out.status.success() {
        bail!(
            "usermod {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_old_master_account_is_converted_a_foreign_one_refused_with_the_command() {
        let home = Path::new("/var/lib/hhl-entry");
        assert_eq!(
            decide("hhl", home, "/var/lib/hhl-entry", "/bin/sh", "hhl entry", true),
            Entry::Ready
        );
        assert_eq!(
            decide("hhl", home, "/nonexistent", "/usr/sbin/nologin", "hhl master", false),
            Entry::Convert(
                [
                    "--home",
                    "/var/lib/hhl-entry",
                    "--shell",
                    "/bin/sh",
                    "--append",
                    "--groups",
                    "systemd-journal",
                    "--comment",
                    "hhl entry",
                    "hhl"
                ]
                .map(String::from)
                .to_vec()
            )
        );
        assert_eq!(
            decide("hhl", home, "/home/hhl", "/bin/bash", "Hal", true),
            Entry::Foreign(
                "unix user `hhl` (users.entry) exists, but hhlctl did not make it (home /home/hhl, shell /bin/bash); \
                 make it the entry account with `usermod --home /var/lib/hhl-entry --shell /bin/sh hhl`, \
                 or name another account in users.entry"
                    .into()
            )
        );
    }
}
