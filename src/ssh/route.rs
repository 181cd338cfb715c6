//! Several hosts: where a request runs. On the primary, a request about instances
//! placed on another host is sent there as `as <identity> <request>` through the peer
//! key (`ops::forward::request`, which the console's actions take too) and its output
//! streamed back; that host asks `access::may`
//! again against its own hhl.yaml. On the other hosts, what only the primary does
//! (pushes, fetches, plan, apply) is refused with where to go instead; a developer's
//! own requests are served there directly, so they still work while the primary is
//! down.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Result;

use super::command::Request;
use super::dispatch::{refuse, Via};
use crate::core::model::Model;

/// `Some(exit code)` when the request was answered here (refused) or elsewhere;
/// `None` when it runs here as on one host.
pub fn elsewhere(
    config: &Path,
    model: &Model,
    identity: &str,
    line: &str,
    request: &Request,
    via: Via,
) -> Result<Option<i32>> {
    let (Some(hosts), Some(here)) = (&model.hosts, model.here.as_deref()) else {
        return Ok(None);
    };
    let primary = hosts.primary();
    if primary.name != here {
        let what = match request {
            Request::Receive(_) if via == Via::Key => Some("pushes go"),
            Request::Upload(_) => Some("fetches go"),
            Request::Plan | Request::Apply => Some("plan and apply run"),
            _ => None,
        };
        if let Some(what) = what {
            return refuse(&format!(
                "this is host {here}; {what} to the primary, {} ({}): `ssh {}@{} …`",
                primary.name, primary.address, model.access.entry, primary.address
            ))
            .map(Some);
        }
        return Ok(None);
    }
    if via == Via::Peer {
        return Ok(None);
    }
    let Some(owners) = owners(model, identity, request) else {
        return Ok(None);
    };
    // An owner on the move: its instances are stopped on purpose and its Redis data is
    // being copied; what would start them or change that data waits.
    if acts(request) {
        if let Some(why) = owners.iter().find_map(|o| crate::ops::moving::under_way(model, o)) {
            return refuse(&why).map(Some);
        }
    }
    let targets: BTreeSet<&str> = owners.iter().map(|o| hosts.host_of(o)).collect();
    if targets.iter().all(|t| *t == here) {
        return Ok(None);
    }
    if let Request::Status(names, json) = request {
        return crate::ops::status::across(config, model, identity, names, *json).map(Some);
    }
    // In file order: this host's share first (run as on one host), then each other's.
    let mut worst = 0;
    for h in hosts.list.iter().filter(|h| targets.contains(h.name.as_str())) {
        if targets.len() > 1 {
            eprintln!("== host {} ==", h.name);
        }
        let code = if h.name == here {
            let mut m = model.clone();
            m.hosts = None;
            super::dispatch::serve_model(config, &m, identity, line)?
        } else {
            crate::ops::forward::request(model, h, identity, line, crate::ops::forward::Answer::Streamed)?.code
        };
        worst = worst.max(code);
    }
    Ok(Some(worst))
}

/// Whether a request may start, stop or change an owner's instances or Redis data.
fn acts(request: &Request) -> bool {
    matches!(
        request,
        Request::Restart(_)
            | Request::Reload(_)
            | Request::Start(_)
            | Request::Stop(_)
            | Request::Deploy(_)
            | Request::Rollback(..)
            | Request::Redis { .. }
    )
}

/// The owners a request is about; `None`: not about instances (help, web, git, apply).
fn owners(model: &Model, identity: &str, request: &Request) -> Option<Vec<String>> {
    let admin = model.access.is_admin(identity);
    let all = || model.owners().map(String::from).collect::<Vec<_>>();
    let by_names = |names: &[String]| -> Vec<String> {
        if names.is_empty() {
            return if admin { all() } else { vec![identity.to_string()] };
        }
        if names.iter().any(|n| n == "--all") {
            return all();
        }
        // An unknown name is told here, as on one host.
        names
            .iter()
            .map(|n| model.owner_of(n).unwrap_or(identity).to_string())
            .collect()
    };
    let one = |name: Option<&String>| -> Vec<String> {
        vec![name.and_then(|n| model.owner_of(n)).unwrap_or(identity).to_string()]
    };
    Some(match request {
        Request::Status(names, _)
        | Request::Restart(names)
        | Request::Reload(names)
        | Request::Deploy(names)
        | Request::Start(names)
        | Request::Stop(names) => by_names(names),
        Request::Logs { names, .. } => by_names(names),
        Request::Releases(name, _) => one(name.as_ref()),
        Request::Rollback(name, _) => one(Some(name)),
        Request::RedisSecret(owner) | Request::Redis { owner, .. } => {
            vec![owner.clone().unwrap_or_else(|| identity.to_string())]
        }
        Request::Receive(_) | Request::Upload(_) | Request::Help | Request::Web | Request::Plan | Request::Apply => {
            return None
        }
    })
}
