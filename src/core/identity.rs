//! Identities: developers and admins as names known by their ssh public keys (`keys:`
//! in hhl.yaml), not unix accounts. Pure: validates each key line and resolves who is
//! who; `ssh::authorized_keys` writes them out.

use indexmap::IndexMap;
use serde::Serialize;

use crate::core::config::{RawConfig, Source};
use crate::core::error::Diagnostics;
use crate::core::names;

/// The key types OpenSSH (and Git for Windows' OpenSSH) offers today.
pub const KEY_TYPES: [&str; 7] = [
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// One public key, checked: its type, its base64 blob (whose own type field agrees)
/// and an optional comment with no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublicKey {
    pub kind: String,
    pub blob: String,
    pub comment: Option<String>,
}

impl PublicKey {
    pub fn parse(line: &str) -> Result<PublicKey, String> {
        if let Some(c) = line.chars().find(|c| c.is_control() && *c != '\t') {
            return Err(format!("the key contains {}", describe(c)));
        }
        let mut parts = line.trim().splitn(3, [' ', '\t']);
        let kind = parts.next().unwrap_or_default();
        if kind.is_empty() {
            return Err("the key is empty".into());
        }
        if !KEY_TYPES.contains(&kind) {
            return Err(format!(
                "`{}` is not an OpenSSH key type (options such as `command=` are hhlctl's to write)",
                crate::core::error::excerpt(kind)
            ));
        }
        let blob = parts.next().unwrap_or_default().trim();
        if blob.is_empty() {
            return Err(format!("the {kind} key has no base64 part"));
        }
        let bytes = <base64ct::Base64 as base64ct::Encoding>::decode_vec(blob)
            .map_err(|_| format!("the {kind} key's second field is not valid base64"))?;
        // The blob starts with its own type as an ssh string: a pasted mix of two keys
        // or a truncated one shows up here.
        let inner = bytes
            .get(..4)
            .map(|l| u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize)
            .and_then(|n| bytes.get(4..4 + n));
        if inner != Some(kind.as_bytes()) {
            return Err(format!(
                "the base64 part is not a {kind} key (truncated, or of another type)"
            ));
        }
        if kind == "ssh-rsa" {
            match rsa_bits(&bytes[4 + kind.len()..]) {
                Some(bits) if bits < MIN_RSA_BITS => {
                    return Err(format!(
                        "the ssh-rsa key has {bits} bits; RSA keys of fewer than {MIN_RSA_BITS} bits are refused \
                         (make another with `ssh-keygen -t ed25519`, or `-t rsa -b 4096`)"
                    ))
                }
                Some(_) => {}
                None => return Err("the ssh-rsa key is truncated (no exponent and modulus)".into()),
            }
        }
        let comment = parts.next().map(str::trim).filter(|c| !c.is_empty()).map(String::from);
        Ok(PublicKey {
            kind: kind.into(),
            blob: blob.into(),
            comment,
        })
    }

    /// What sshd matches on: type and blob.
    pub fn fingerprint_key(&self) -> String {
        format!("{} {}", self.kind, self.blob)
    }
}

/// RSA moduli shorter than this are refused (factorable, and OpenSSH refuses them too).
pub const MIN_RSA_BITS: usize = 2048;

/// The modulus size, in bits, of an ssh-rsa key blob after its type: `mpint e`, `mpint n`.
fn rsa_bits(rest: &[u8]) -> Option<usize> {
    let field = |b: &[u8]| -> Option<(usize, usize)> {
        let n = u32::from_be_bytes(b.get(..4)?.try_into().ok()?) as usize;
        b.get(4..4 + n)?;
        Some((4, n))
    };
    let (h, e) = field(rest)?;
    let rest = &rest[h + e..];
    let (h, n) = field(rest)?;
    let modulus = &rest[h..h + n];
    let first = modulus.iter().position(|b| *b != 0)?;
    Some((modulus.len() - first) * 8 - modulus[first].leading_zeros() as usize)
}

fn describe(c: char) -> String {
    match c {
        '\n' => "a newline".into(),
        '\r' => "a carriage return".into(),
        c => format!("the control character U+{:04X}", c as u32),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Role {
    Developer,
    Admin,
}

#[derive(Debug, Clone, Serialize)]
pub struct Identity {
    pub name: String,
    pub role: Role,
    pub keys: Vec<PublicKey>,
}

/// Every identity in `keys:`, validated: a known developer or admin, each key valid
/// and unique across identities. Admins are listed in users.admins; a name may be both
/// (the admin role wins).
pub fn resolve(
    raw: &RawConfig,
    developers: &[String],
    src: &Source,
    errs: &mut Diagnostics,
) -> IndexMap<String, Identity> {
    let admins = &raw.users.admins;
    for (i, a) in admins.iter().enumerate() {
        if let Some(p) = names::developer_problem(a) {
            errs.push(
                src.diag(&["users", "admins", &i.to_string()], format!("users.admins: {p}"))
                    .hint("admins are identities (names in `keys:`): lowercase letters, digits and `_`"),
            );
        }
    }
    let mut out = IndexMap::new();
    let mut seen: IndexMap<String, String> = IndexMap::new();
    for (name, lines) in &raw.keys {
        let role = if admins.contains(name) {
            Role::Admin
        } else if developers.contains(name) {
            Role::Developer
        } else {
            errs.push(
                src.diag(
                    &["keys", name],
                    format!(
                        "keys: `{}` is neither a developer nor an admin",
                        crate::core::error::excerpt(name)
                    ),
                )
                .hint(format!(
                    "add `{name}` to `developers` or to users.admins, or remove these keys"
                )),
            );
            continue;
        };
        let mut keys = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            let at = ["keys", name.as_str(), &i.to_string()];
            match PublicKey::parse(line) {
                Err(p) => errs.push(
                    src.diag(&at, format!("keys.{name}[{i}]: {p}"))
                        .hint("paste one line of the developer's ~/.ssh/id_ed25519.pub: `ssh-ed25519 AAAA… comment`"),
                ),
                Ok(k) => match seen.get(&k.fingerprint_key()) {
                    Some(other) => errs.push(
                        src.diag(&at, format!("keys.{name}[{i}]: this key is also {other}'s"))
                            .hint("a key identifies one person: every identity needs their own key"),
                    ),
                    None => {
                        seen.insert(k.fingerprint_key(), name.clone());
                        keys.push(k);
                    }
                },
            }
        }
        out.insert(
            name.clone(),
            Identity {
                name: name.clone(),
                role,
                keys,
            },
        );
    }
    // Every developer and admin is an identity; keys are only how one comes in over
    // ssh. Without any, the log page (password) is their only door.
    for name in developers.iter().chain(admins) {
        let role = if admins.contains(name) {
            Role::Admin
        } else {
            Role::Developer
        };
        out.entry(name.clone()).or_insert_with(|| Identity {
            name: name.clone(),
            role,
            keys: Vec::new(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const ED: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl dev1@laptop";

    #[test]
    fn valid_key() {
        let k = PublicKey::parse(ED).unwrap();
        assert_eq!(k.kind, "ssh-ed25519");
        assert_eq!(k.comment.as_deref(), Some("dev1@laptop"));
        assert!(PublicKey::parse(ED.rsplit_once(' ').unwrap().0)
            .unwrap()
            .comment
            .is_none());
    }

    #[test]
    fn refusals() {
        let cases = [
            ("", "the key is empty"),
            ("ssh-dss AAAA", "`ssh-dss` is not an OpenSSH key type"),
            (
                "command=\"sh\" ssh-ed25519 AAAA",
                "`command=\"sh\"` is not an OpenSSH key type",
            ),
            ("ssh-ed25519", "the ssh-ed25519 key has no base64 part"),
            (
                "ssh-ed25519 !!!!",
                "the ssh-ed25519 key's second field is not valid base64",
            ),
            (
                "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
                "the base64 part is not a ssh-rsa key",
            ),
        ];
        for (line, want) in cases {
            let got = PublicKey::parse(line).unwrap_err();
            assert!(got.starts_with(want), "{line}: {got}");
        }
        let nl = format!("{ED}\nssh-ed25519 AAAA evil");
        assert_eq!(PublicKey::parse(&nl).unwrap_err(), "the key contains a newline");
    }
}
