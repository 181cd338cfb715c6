//! The entry account's `~/.ssh/authorized_keys`: one line per key in hhl.yaml,
//! `restrict,port-forwarding,permitopen="127.0.0.1:8080",permitlisten="127.0.0.1:1"[,permitopen="127.0.0.1:<redis>",permitopen="localhost:<redis>"…],command="<hhlctl> ssh <identity>" <type> <base64> [comment]`.
//! Pure.
//!
//! `restrict` takes away every forwarding, the pty and `~/.ssh/rc`; `port-forwarding`
//! gives back only what the limits allow: a local forward (`ssh -L`, `-W`) to the
//! console's loopback address, and to the key's owner's own Redis port (admins: every
//! owner's), so redis-cli and Redis GUIs work from the developer's PC (`permitopen`);
//! and no remote forward that can ever listen (`permitlisten` names port 1 on
//! loopback, which the entry account may not bind: OpenSSH has no `none` for it in
//! authorized_keys, and without any `permitlisten` a `ssh -R` could take any free port
//! on the server's loopback, one another owner's code connects to).

use std::path::Path;

use crate::core::artifact::{generated_header, Artifact};
use crate::core::escape::Unsafe;
use crate::core::identity::PublicKey;
use crate::core::kind::Kind;
use crate::core::model::hosts::HostSpec;
use crate::core::model::Model;

/// One authorized_keys line, or why it cannot be written. The identity lands inside
/// `command="…"`, so only name characters pass; the key is re-checked (type, base64)
/// and its comment may hold no control character: a newline would start a line of
/// the writer's choosing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizedKey(String);

impl AuthorizedKey {
    /// `forwards`: the loopback ports the key may open (`ssh -L`); none: no forwarding.
    pub fn new(hhlctl: &Path, identity: &str, key: &PublicKey, forwards: &[u16]) -> Result<Self, Unsafe> {
        let ok_name = !identity.is_empty()
            && identity
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !ok_name {
            return Err(Unsafe(format!(
                "identity `{}` is not a plain name",
                identity.escape_debug()
            )));
        }
        let exe = plain_exe(hhlctl)?;
        let line = match &key.comment {
            Some(c) => format!("{} {} {c}", key.kind, key.blob),
            None => format!("{} {}", key.kind, key.blob),
        };
        let again = PublicKey::parse(&line).map_err(Unsafe)?;
        if again != *key {
            return Err(Unsafe("the key does not read back as itself".into()));
        }
        let mut options = format!("restrict,port-forwarding,permitopen=\"{CONSOLE}\",permitlisten=\"{NO_LISTEN}\"");
        // ssh sends the host as typed: both loopback spellings of a Redis port (no name
        // lookup); the console's is the one address its links name.
        for port in forwards {
            options.push_str(&format!(
                ",permitopen=\"127.0.0.1:{port}\",permitopen=\"localhost:{port}\""
            ));
        }
        Ok(AuthorizedKey(format!(
            "{options},command=\"{exe} ssh {identity}\" {line}"
        )))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The primary's peer key on another host: from the primary's address only, no pty
/// and no forwarding, and the one command that takes its verbs (`hhlctl peer
/// <primary>`); no developer key can run it, and this key can run nothing else.
pub fn peer_line(hhlctl: &Path, primary: &HostSpec) -> Result<AuthorizedKey, Unsafe> {
    let Some(key) = &primary.peer_key else {
        return Err(Unsafe(format!("the primary `{}` has no peer_key", primary.name)));
    };
    // The name went through `host_name_problem` and the address is an `IpAddr`: both
    // stand inside quotes as they are.
    if crate::core::model::hosts::host_name_problem(&primary.name).is_some() {
        return Err(Unsafe(format!(
            "host name `{}` cannot stand in command=\"…\"",
            primary.name.escape_debug()
        )));
    }
    let exe = plain_exe(hhlctl)?;
    let again = PublicKey::parse(&format!("{} {}", key.kind, key.blob)).map_err(Unsafe)?;
    Ok(AuthorizedKey(format!(
        "restrict,from=\"{}\",command=\"{exe} peer {}\" {} {}",
        primary.address, primary.name, again.kind, again.blob
    )))
}

/// hhlctl's path as it can stand in `command="…"`.
fn plain_exe(hhlctl: &Path) -> Result<&str, Unsafe> {
    hhlctl
        .to_str()
        .filter(|p| p.starts_with('/') && p.bytes().all(|b| b.is_ascii_alphanumeric() || b"/_-.".contains(&b)))
        .ok_or_else(|| {
            Unsafe(format!(
                "hhlctl's path {} cannot stand in command=\"…\"",
                hhlctl.display()
            ))
        })
}

/// Where the file goes.
pub fn path(model: &Model) -> std::path::PathBuf {
    path_under(&model.paths.entry_home)
}

/// The file under the entry account's home `entry_home`.
pub fn path_under(entry_home: &std::path::Path) -> std::path::PathBuf {
    entry_home.join(".ssh/authorized_keys")
}

/// The Redis ports `identity`'s keys may forward to: their own Redis's; an admin's,
/// every owner's.
pub fn redis_forwards(model: &Model, identity: &str) -> Vec<u16> {
    model
        .instances
        .iter()
        .filter(|i| i.kind == Kind::Redis)
        .filter(|i| model.access.is_admin(identity) || i.developer == identity)
        .map(|i| i.port)
        .collect()
}

/// The file's text: a header, then every identity's keys in hhl.yaml order.
pub fn text(model: &Model, hhlctl: &Path, source: &Path) -> Result<String, Unsafe> {
    let mut out = generated_header(source, None);
    for id in model.access.identities.values() {
        let forwards = redis_forwards(model, &id.name);
        for key in &id.keys {
            out.push_str(AuthorizedKey::new(hhlctl, &id.name, key, &forwards)?.as_str());
            out.push('\n');
        }
    }
    // Several hosts: on each but the primary, the primary's peer key.
    if let (Some(hosts), Some(here)) = (&model.hosts, &model.here) {
        let primary = hosts.primary();
        if primary.name != *here && primary.peer_key.is_some() {
            out.push_str(peer_line(hhlctl, primary)?.as_str());
            out.push('\n');
        }
    }
    Ok(out)
}

/// Root owns the file and its directories: the entry account reads its keys and
/// cannot add one.
pub fn artifacts(model: &Model, hhlctl: &Path, source: &Path) -> Result<Vec<Artifact>, Unsafe> {
    Ok(vec![
        Artifact::dir(&model.paths.entry_home, 0o755),
        Artifact::dir(model.paths.entry_home.join(".ssh"), 0o755),
        Artifact::file(path(model), text(model, hhlctl, source)?, 0o644),
    ])
}

/// The console's address (hhl-web.service's `--listen`): the one place a developer's
/// key may forward to, so that `ssh -L 8080:127.0.0.1:8080` makes the link `ssh hhl
/// web` prints open on the developer's own machine.
pub const CONSOLE: &str = "127.0.0.1:8080";

/// The only remote forward a key may ask for: a privileged port, which sshd (running
/// the session as the entry account) cannot bind, so no `ssh -R` ever listens.
pub const NO_LISTEN: &str = "127.0.0.1:1";

/// Where the installed hhlctl is: the forced command names it.
pub const HHLCTL: &str = "/usr/bin/hhlctl";

#[cfg(test)]
mod tests {
    use super::*;

    const ED: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";

    fn key(comment: Option<&str>) -> PublicKey {
        PublicKey {
            kind: "ssh-ed25519".into(),
            blob: ED.into(),
            comment: comment.map(String::from),
        }
    }

    #[test]
    fn line() {
        let l = AuthorizedKey::new(Path::new(HHLCTL), "dev1", &key(Some("dev1@pc")), &[]).unwrap();
        assert_eq!(
            l.as_str(),
            format!("restrict,port-forwarding,permitopen=\"127.0.0.1:8080\",permitlisten=\"127.0.0.1:1\",command=\"/usr/bin/hhlctl ssh dev1\" ssh-ed25519 {ED} dev1@pc")
        );
        let l = AuthorizedKey::new(Path::new(HHLCTL), "dev1", &key(None), &[6381]).unwrap();
        assert_eq!(
            l.as_str(),
            format!(
                "restrict,port-forwarding,permitopen=\"127.0.0.1:8080\",permitlisten=\"127.0.0.1:1\",\
                 permitopen=\"127.0.0.1:6381\",permitopen=\"localhost:6381\",command=\"/usr/bin/hhlctl ssh dev1\" ssh-ed25519 {ED}"
            )
        );
    }

    #[test]
    fn peer_line_binds_the_key_to_the_primary_and_one_command() {
        let primary = HostSpec {
            name: "hhl1".into(),
            address: "10.0.0.1".parse().unwrap(),
            host_key: key(None),
            primary: true,
            peer_key: Some(key(Some("root@hhl1"))),
        };
        assert_eq!(
            peer_line(Path::new(HHLCTL), &primary).unwrap().as_str(),
            format!("restrict,from=\"10.0.0.1\",command=\"/usr/bin/hhlctl peer hhl1\" ssh-ed25519 {ED}")
        );
        let mut odd = primary.clone();
        odd.name = "a\" b".into();
        assert!(peer_line(Path::new(HHLCTL), &odd)
            .unwrap_err()
            .0
            .contains("cannot stand in command"));
    }

    #[test]
    fn refusals() {
        let h = Path::new(HHLCTL);
        assert_eq!(
            AuthorizedKey::new(h, "dev1\" x", &key(None), &[]).unwrap_err().0,
            "identity `dev1\\\" x` is not a plain name"
        );
        assert_eq!(
            AuthorizedKey::new(h, "dev1", &key(Some("a\nssh-ed25519 AAAA")), &[])
                .unwrap_err()
                .0,
            "the key contains a newline"
        );
        assert!(AuthorizedKey::new(Path::new("/opt/my hhl"), "dev1", &key(None), &[])
            .unwrap_err()
            .0
            .contains("cannot stand in command"));
    }
}
