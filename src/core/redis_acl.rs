//! Each owner's Redis is theirs only: one ACL user, `default`, with a secret hhlctl
//! generates per owner, and without the commands that would let the application
//! stop, re-point or reconfigure the server, watch every client, or erase all data.
//! Pure: paths and the ACL file's text; the secret itself is made by `secrets`.

use std::path::PathBuf;

use crate::core::escape::{RedisToken, Unsafe};
use crate::core::kind::Kind;
use crate::core::model::{Instance, Model};

/// Command rules of the application user: everything but `@dangerous` (SHUTDOWN,
/// REPLICAOF/SLAVEOF, ACL SETUSER/…, CONFIG, MONITOR, DEBUG, MODULE, FLUSHALL,
/// SAVE/BGSAVE, CLIENT KILL, MIGRATE, RESTORE, FAILOVER, SWAPDB, SYNC …), then back
/// the few `@dangerous` ones that only read or touch the owner's own keys.
pub const COMMANDS: &str = "+@all -@dangerous +info +keys +flushdb +sort +sort_ro +role +lastsave";

/// `<state_dir>/redis/`: root's directory of per-owner secrets and ACL files.
pub fn dir(model: &Model) -> PathBuf {
    model.paths.state_dir.join("redis")
}

/// The owner's secret, one line: root writes it, the owner's instance user reads it
/// (root:<user> 0640); the `hhl.redis` Lua helper and the developer read it here.
pub fn secret_path(model: &Model, owner: &str) -> PathBuf {
    dir(model).join(format!("{owner}.secret"))
}

/// The entry account's copy of the owner's secret (root:<entry> 0640, in a root:<entry>
/// 0750 directory), for `ssh <entry>@server redis-secret`, which hands each developer
/// their own after `access::may`.
pub fn entry_secret_path(model: &Model, owner: &str) -> PathBuf {
    dir(model).join("entry").join(format!("{owner}.secret"))
}

/// The ACL file Redis loads (`--aclfile`, set in the drop-in, so a template cannot drop it).
pub fn acl_path(model: &Model, inst: &Instance) -> PathBuf {
    dir(model).join(format!("{}.acl", inst.name))
}

/// The owner's Redis, if they have one.
pub fn of<'a>(model: &'a Model, owner: &str) -> Option<&'a Instance> {
    model
        .instances
        .iter()
        .find(|i| i.kind == Kind::Redis && i.developer == owner)
}

/// The ACL file: the default user has the secret and the command rules; no other user.
pub fn acl_file(secret: &str) -> Result<String, Unsafe> {
    let secret = RedisToken::new(&format!(">{secret}"))?;
    Ok(format!(
        "user default on resetpass {} ~* &* resetchannels &* {COMMANDS}\n",
        secret.as_str()
    ))
}

/// A secret as `secrets` makes them: 64 hex digits (anything else in the file is refused).
pub fn secret_ok(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acl_file_has_the_secret_and_no_dangerous_commands() {
        let a = acl_file("00ff").unwrap();
        assert!(a.starts_with("user default on resetpass >00ff ~* "), "{a}");
        assert!(a.contains("-@dangerous"));
        assert_eq!(acl_file("a b").unwrap().split_whitespace().nth(4), Some("\">a"));
        assert!(secret_ok(&"a".repeat(64)) && !secret_ok("a b") && !secret_ok(&"a".repeat(63)));
    }
}
