//! Several hosts (`hosts:` and `placement:` in hhl.yaml): who runs where. Pure. Each
//! host's name, address and pinned ssh host key are checked, exactly one is the
//! primary, and every owner is placed on one host (the primary unless said): an owner's
//! instances and Redis move together, since its code reaches its Redis on 127.0.0.1,
//! and the shared servers follow master.

use std::net::IpAddr;

use indexmap::IndexMap;
use serde::Serialize;

use crate::core::config::{RawConfig, Source};
use crate::core::error::Diagnostics;
use crate::core::identity::PublicKey;
use crate::core::names::MASTER;

/// One host, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostSpec {
    pub name: String,
    pub address: IpAddr,
    /// Its sshd's host key: the one the primary accepts, and how a host finds itself.
    pub host_key: PublicKey,
    pub primary: bool,
    /// The primary's peer key (what the other hosts let in, from its address only).
    pub peer_key: Option<PublicKey>,
}

/// The hosts and where every owner runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hosts {
    /// In file order.
    pub list: Vec<HostSpec>,
    /// Every owner (master, then the developers) → its host's name.
    pub placement: IndexMap<String, String>,
}

impl Hosts {
    pub fn primary(&self) -> &HostSpec {
        self.list.iter().find(|h| h.primary).expect("resolve keeps one primary")
    }

    pub fn get(&self, name: &str) -> Option<&HostSpec> {
        self.list.iter().find(|h| h.name == name)
    }

    /// The host `owner`'s instances run on (an unknown owner: the primary's).
    pub fn host_of(&self, owner: &str) -> &str {
        self.placement
            .get(owner)
            .map(String::as_str)
            .unwrap_or_else(|| &self.primary().name)
    }

    /// The host whose pinned key is one of `keys` (this machine's own host keys).
    pub fn by_host_key(&self, keys: &[PublicKey]) -> Option<&HostSpec> {
        self.list.iter().find(|h| {
            keys.iter()
                .any(|k| k.kind == h.host_key.kind && k.blob == h.host_key.blob)
        })
    }

    /// The hosts other than `here`, in file order.
    pub fn others<'a>(&'a self, here: &'a str) -> impl Iterator<Item = &'a HostSpec> + 'a {
        self.list.iter().filter(move |h| h.name != here)
    }
}

/// A host name: it stands in status, messages, file names and ssh's `%h`-free paths.
pub fn host_name_problem(name: &str) -> Option<String> {
    let ok = (1..=32).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    (!ok).then(|| format!("host name `{}` is not a short name", crate::core::error::excerpt(name)))
}

/// Check `hosts:` and `placement:`; `None` when there is no `hosts:` (one host, as
/// before) or when something is wrong (then said in `errs`).
pub fn resolve(raw: &RawConfig, developers: &[String], src: &Source, errs: &mut Diagnostics) -> Option<Hosts> {
    if raw.hosts.is_empty() {
        if let Some(owner) = raw.placement.keys().next() {
            errs.push(src.diag(&["placement", owner], "`placement:` needs `hosts:`").hint(
                "list the hosts under `hosts:` (name, address, host_key; one `primary: true`), or remove `placement:`",
            ));
        }
        return None;
    }
    let before = errs.0.len() + errs.1;
    let mut list: Vec<HostSpec> = Vec::new();
    for (i, h) in raw.hosts.iter().enumerate() {
        let idx = i.to_string();
        let at = |key: &'static str| [String::from("hosts"), idx.clone(), key.to_string()];
        let diag = |key: &'static str, msg: String| {
            let path = at(key);
            let keys: Vec<&str> = path.iter().map(String::as_str).collect();
            src.diag(&keys, format!("hosts[{i}].{key}: {msg}"))
        };
        if let Some(p) = host_name_problem(&h.name) {
            errs.push(diag("name", p).hint("lowercase letters, digits and `-`, starting with a letter, at most 32"));
        } else if list.iter().any(|o| o.name == h.name) {
            errs.push(diag("name", format!("host `{}` is listed twice", h.name)).hint("remove the second entry"));
        }
        let address = match h.address.parse::<IpAddr>() {
            Ok(a) if a.is_unspecified() || a.is_multicast() => {
                errs.push(
                    diag("address", format!("`{a}` is not one host's address"))
                        .hint("write the address the primary reaches this host at"),
                );
                None
            }
            Ok(a) if list.iter().any(|o| o.address == a) => {
                errs.push(
                    diag("address", format!("`{a}` is another host's address too"))
                        .hint("each host has its own address"),
                );
                None
            }
            Ok(a) => Some(a),
            Err(_) => {
                errs.push(
                    diag("address", format!("`{}` is not an IP address", crate::core::error::excerpt(&h.address)))
                        .hint("write an IPv4 or IPv6 address, e.g. 10.0.0.2 (no names: the address is also what the peer key is bound to)"),
                );
                None
            }
        };
        let host_key = match PublicKey::parse(&h.host_key) {
            Ok(k) if list.iter().any(|o| o.host_key.blob == k.blob) => {
                errs.push(diag("host_key", "another host has the same host key".into()).hint(
                    "each host has its own; a cloned machine keeps its original's: run `ssh-keygen -A` on a clone after removing /etc/ssh/ssh_host_*",
                ));
                None
            }
            Ok(k) => Some(k),
            Err(e) => {
                errs.push(diag("host_key", e).hint("paste the line of /etc/ssh/ssh_host_ed25519_key.pub from that host (read it there, not over the network)"));
                None
            }
        };
        let peer_key = match (&h.peer_key, h.primary) {
            (None, _) => None,
            (Some(_), false) => {
                errs.push(
                    diag("peer_key", "only the primary has a peer key".into())
                        .hint("move `peer_key:` to the host with `primary: true`"),
                );
                None
            }
            (Some(k), true) => match PublicKey::parse(k) {
                Ok(k) => Some(k),
                Err(e) => {
                    errs.push(diag("peer_key", e).hint("paste what `hhlctl hosts key` prints on the primary"));
                    None
                }
            },
        };
        if let (Some(address), Some(host_key)) = (address, host_key) {
            list.push(HostSpec {
                name: h.name.clone(),
                address,
                host_key,
                primary: h.primary,
                peer_key,
            });
        }
    }
    let primaries: Vec<usize> = raw
        .hosts
        .iter()
        .enumerate()
        .filter(|(_, h)| h.primary)
        .map(|(i, _)| i)
        .collect();
    match primaries.as_slice() {
        [] => {
            errs.push(src.diag(&["hosts"], "hosts: no host is `primary: true`").hint(
                "mark the host that takes pushes and applies (the one this file is pushed to) with `primary: true`",
            ))
        }
        [p] if raw.hosts.len() > 1 && raw.hosts[*p].peer_key.is_none() => errs.push(
            src.diag(
                &["hosts", &p.to_string(), "primary"],
                format!("hosts[{p}]: the primary has no `peer_key:`"),
            )
            .hint("run `hhlctl hosts key` on the primary and paste the line it prints as its `peer_key:`"),
        ),
        [_] => {}
        [_, second, ..] => errs.push(
            src.diag(
                &["hosts", &second.to_string(), "primary"],
                format!("hosts[{second}]: a second primary"),
            )
            .hint("exactly one host is the primary"),
        ),
    }
    let mut placement = IndexMap::new();
    for (owner, host) in &raw.placement {
        if owner != MASTER && !developers.iter().any(|d| d == owner) {
            errs.push(
                src.diag(
                    &["placement", owner],
                    format!("placement.{owner}: `{owner}` is not master nor a developer"),
                )
                .hint("place owners: `master` or a name under `developers:`"),
            );
        } else if !raw.hosts.iter().any(|h| h.name == *host) {
            let names: Vec<&str> = raw.hosts.iter().map(|h| h.name.as_str()).collect();
            errs.push(
                src.diag(
                    &["placement", owner],
                    format!("placement.{owner}: no host `{}`", crate::core::error::excerpt(host)),
                )
                .hint(format!("the hosts are {}", names.join(", "))),
            );
        }
    }
    if errs.0.len() + errs.1 > before {
        return None;
    }
    let primary = list.iter().find(|h| h.primary)?.name.clone();
    for owner in std::iter::once(MASTER).chain(developers.iter().map(String::as_str)) {
        let host = raw.placement.get(owner).cloned().unwrap_or_else(|| primary.clone());
        placement.insert(owner.to_string(), host);
    }
    Some(Hosts { list, placement })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config;
    use std::path::Path;

    pub const KEY1: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
    pub const KEY2: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE3tAiQRWbVwJs7Ch/kZ3tC9NP1RZDG0R4flYXaHk9Nb";

    fn run(hosts_yaml: &str) -> (Option<Hosts>, Vec<String>) {
        let text = format!("developers: [dev1, dev2]\nservers: {{}}\n{hosts_yaml}");
        let raw = config::parse(Path::new("h.yaml"), &text).unwrap();
        let src = Source {
            path: "h.yaml".into(),
            text,
        };
        let mut errs = Diagnostics::default();
        let h = resolve(&raw, &["dev1".into(), "dev2".into()], &src, &mut errs);
        (h, errs.0.iter().map(|d| d.to_string()).collect())
    }

    fn two(extra: &str) -> String {
        format!(
            "hosts:\n  - name: hhl1\n    address: 10.0.0.1\n    host_key: {KEY1}\n    primary: true\n    peer_key: {KEY2}\n  - name: hhl2\n    address: 10.0.0.2\n    host_key: {KEY2}\n{extra}"
        )
    }

    #[test]
    fn places_owners_master_and_unplaced_on_the_primary() {
        let (h, errs) = run(&two("placement:\n  dev2: hhl2\n"));
        assert!(errs.is_empty(), "{errs:?}");
        let h = h.unwrap();
        assert_eq!(h.primary().name, "hhl1");
        assert_eq!(h.host_of("master"), "hhl1");
        assert_eq!(h.host_of("dev1"), "hhl1");
        assert_eq!(h.host_of("dev2"), "hhl2");
        let k2 = PublicKey::parse(&format!("{KEY2} root@hhl2")).unwrap();
        assert_eq!(h.by_host_key(&[k2]).unwrap().name, "hhl2");
    }

    #[test]
    fn no_hosts_is_one_host() {
        let (h, errs) = run("");
        assert!(h.is_none() && errs.is_empty());
        let (_, errs) = run("placement:\n  dev1: hhl2\n");
        assert!(errs[0].contains("`placement:` needs `hosts:`"), "{errs:?}");
        assert!(errs[0].contains("h.yaml:4:"), "{errs:?}");
    }

    #[test]
    fn refusals_say_what_and_where() {
        let (_, errs) = run(&two("placement:\n  dev9: hhl2\n  dev1: hhl7\n"));
        assert!(
            errs[0].contains("h.yaml:13:") && errs[0].contains("`dev9` is not master nor a developer"),
            "{errs:?}"
        );
        assert!(
            errs[1].contains("h.yaml:14:")
                && errs[1].contains("no host `hhl7`")
                && errs[1].contains("the hosts are hhl1, hhl2"),
            "{errs:?}"
        );

        let bad = two("")
            .replace("10.0.0.2", "hhl2.lan")
            .replace("name: hhl2", "name: Big_Host");
        let (_, errs) = run(&bad);
        assert!(
            errs.iter()
                .any(|e| e.contains("hosts[1].name: host name `Big_Host` is not a short name")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("hosts[1].address: `hhl2.lan` is not an IP address")),
            "{errs:?}"
        );

        let (_, errs) = run(&two("").replace(&format!("host_key: {KEY2}"), &format!("host_key: {KEY1}")));
        assert!(
            errs.iter()
                .any(|e| e.contains("hosts[1].host_key: another host has the same host key")),
            "{errs:?}"
        );

        let (_, errs) = run(&two("").replace("    primary: true\n", ""));
        assert!(
            errs.iter().any(|e| e.contains("hosts: no host is `primary: true`")),
            "{errs:?}"
        );
        assert!(
            errs.iter().any(|e| e.contains("only the primary has a peer key")),
            "{errs:?}"
        );

        let (_, errs) = run(&two("").replace(&format!("    peer_key: {KEY2}\n"), ""));
        assert!(
            errs.iter()
                .any(|e| e.contains("the primary has no `peer_key:`") && e.contains("hhlctl hosts key")),
            "{errs:?}"
        );

        let (_, errs) = run(&two("").replace("address: 10.0.0.2", "address: 10.0.0.1"));
        assert!(
            errs.iter()
                .any(|e| e.contains("`10.0.0.1` is another host's address too")),
            "{errs:?}"
        );
    }
}
