//! `hhlctl peer <primary>`: what sshd runs, on every host but the primary, for the
//! primary's peer key (`restrict,from="<its address>"`: see `authorized_keys::peer_line`).
//! Its verbs are the only ones that key can run:
//! - `ping`: this host's name, the serverctrl commit it last applied, hhlctl's version;
//! - `as IDENTITY REQUEST`: an identity's request, forwarded after the primary's own
//!   authorization and asked again here (`dispatch::serve`) against this host's hhl.yaml;
//! - `git-receive-pack 'serverctrl'`: the primary's serverctrl commit, which this host
//!   validates in its own pre-receive hook and applies itself (its post-receive);
//! - `apply`: this host's own apply of what it holds (a retry after a lost link);
//! - `redis-export OWNER`, `redis-import OWNER`: an owner's Redis data and secret out
//!   of this host or into it, for `hhlctl move` (`ops::redis_data`): the package's
//!   root oneshots do root's part, and the bytes pass on standard output or input.
//!
//! A developer's key never reaches this command, and the peer key never reaches any
//! other.

use std::path::Path;

use anyhow::Result;

use super::dispatch::{self, refuse, Via};
use crate::core::peers::Pong;
use crate::core::repos::RepoKind;
use crate::host::load;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The primary whose peer key sshd matched (from authorized_keys).
    pub from: String,
}

pub fn run(config: &Path, args: Args) -> Result<i32> {
    // Which host this is comes from its own host key here, never from the caller.
    std::env::remove_var(crate::host::here::HOST_ENV);
    let loaded = load::load(config)?;
    let model = &loaded.model;
    let (Some(hosts), Some(here)) = (&model.hosts, model.here.as_deref()) else {
        return refuse("this host's hhl.yaml has no `hosts:`, so no primary may ask anything here");
    };
    let primary = hosts.primary();
    if args.from != primary.name || here == primary.name {
        return refuse(&format!(
            "peer requests come from the primary ({}) only, not from `{}`",
            primary.name, args.from
        ));
    }
    let Ok(line) = std::env::var("SSH_ORIGINAL_COMMAND") else {
        return refuse("the peer key runs one verb at a time");
    };
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["ping"] => {
            let applied = crate::ops::remote_apply::applied_commit(model);
            let pong = Pong {
                host: here.to_string(),
                applied,
                version: env!("CARGO_PKG_VERSION").to_string(),
            };
            println!("{}", serde_json::to_string(&pong)?);
            Ok(0)
        }
        ["apply"] => {
            let ran = crate::ops::remote_apply::apply(&crate::host::systemd::Systemd::connect()?)?;
            crate::ops::remote_apply::print(&ran);
            Ok(if ran.ok { 0 } else { 1 })
        }
        // An owner's Redis data, for `hhlctl move` on the primary: root's part is done
        // by the package's oneshots, which polkit lets this account start.
        [verb @ ("redis-export" | "redis-import"), owner] => {
            let whole = load::load_whole(config)?;
            if let Err(e) = crate::ops::redis_data::known_owner(&whole.model, owner) {
                return refuse(&e);
            }
            if *verb == "redis-export" {
                crate::ops::redis_data::serve_export(&whole.model, owner)
            } else {
                crate::ops::redis_data::serve_import(&whole.model, owner)
            }
        }
        ["git-receive-pack", _] => match super::command::parse(model, &line) {
            // The primary's root pushes serverctrl; this host's hooks check and apply it.
            Ok(super::command::Request::Receive(repo)) if repo.kind == RepoKind::Serverctrl => {
                dispatch::receive_as(model, "root", &repo)
            }
            _ => refuse("the peer key pushes serverctrl only; code comes as `as IDENTITY git-receive-pack …`"),
        },
        ["as", identity, ..] => {
            let plain = identity
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
            if !plain || identity.is_empty() {
                return refuse("`as` takes an identity name");
            }
            let rest = line.trim_start().strip_prefix("as").unwrap_or("").trim_start();
            let rest = rest.strip_prefix(identity).unwrap_or("").trim_start();
            dispatch::serve(config, identity, Some(rest.to_string()), Via::Peer)
        }
        _ => refuse(&format!(
            "unknown peer request `{}`; the verbs are ping, apply, as IDENTITY REQUEST, git-receive-pack 'serverctrl', redis-export OWNER, redis-import OWNER",
            crate::core::error::excerpt(&line)
        )),
    }
}
