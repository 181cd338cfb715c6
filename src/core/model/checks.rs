//! The checks `build` runs across instances and sections: ports unique, `git:` sizes
//! parsed, paths that do not overlap, values that fit their templates. Each pushes a
//! located diagnostic; none stops the others.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use super::{Git, Instance};
use crate::core::config::{RawConfig, RawGit, RawWeb, Source};
use crate::core::error::Diagnostics;
use crate::core::kind::Kind;
use crate::core::names::MASTER;
use crate::core::{escape, paths};

/// `redis@6379.service (redis, master)`, `… (servers.socketserver, developer dev1)`.
fn whose(inst: &Instance) -> String {
    let owner = if inst.developer == MASTER {
        MASTER.to_string()
    } else {
        format!("developer {}", inst.developer)
    };
    format!("{} ({}, {owner})", inst.unit(), inst.origin.join("."))
}

pub(super) fn check_ports(instances: &[Instance], src: &Source, errs: &mut Diagnostics) {
    let mut seen: BTreeMap<u16, &Instance> = BTreeMap::new();
    for inst in instances {
        if let Some(first) = seen.get(&inst.port) {
            let mut path: Vec<&str> = inst.origin.iter().map(String::as_str).collect();
            path.extend(["values", inst.developer.as_str(), "port"]);
            errs.push(
                src.diag(
                    &path,
                    format!(
                        "port {} is used by both {} and {}",
                        inst.port,
                        whose(first),
                        whose(inst),
                    ),
                )
                .hint("give every instance its own port"),
            );
        } else {
            seen.insert(inst.port, inst);
        }
    }
}

/// `web.trusted_proxies`, each an IP address.
pub(super) fn check_web(web: &RawWeb, src: &Source, errs: &mut Diagnostics) -> Vec<std::net::IpAddr> {
    let mut out = Vec::new();
    for (i, a) in web.trusted_proxies.iter().enumerate() {
        match a.parse() {
            Ok(ip) => out.push(ip),
            Err(_) => errs.push(
                src.diag(
                    &["web", "trusted_proxies", &i.to_string()],
                    format!("web.trusted_proxies: `{a}` is not an IP address"),
                )
                .hint(
                    "the proxy's address as the console sees it connect, e.g. 127.0.0.1 or ::1 (no names, no ranges)",
                ),
            ),
        }
    }
    out
}

/// `git:` checked, with its sizes parsed (a wrong part is in `errs`, and the model
/// that carries this is not built).
pub(super) fn check_git(git: &RawGit, src: &Source, errs: &mut Diagnostics) -> Git {
    if let Some(p) = paths::path_problem(&git.root) {
        errs.push(
            src.diag(&["git", "root"], format!("git.root: {p}"))
                .hint("an absolute, normalised path, e.g. /srv/git"),
        );
    }
    let mut size = |key: &str, v: &str| match crate::core::push_limits::parse_size(v) {
        Ok(bytes) => bytes,
        Err(p) => {
            errs.push(
                src.diag(&["git", key], format!("git.{key}: {p}"))
                    .hint("bytes, or a number with K, M or G (`10M`), at least 1K"),
            );
            0
        }
    };
    let max_object_size = size("max_object_size", &git.max_object_size);
    let max_push_size = size("max_push_size", &git.max_push_size);
    let max_unpacked_size = size("max_unpacked_size", &git.max_unpacked_size);
    let max_branch_size = size("max_branch_size", &git.max_branch_size);
    let max_releases_size = size("max_releases_size", &git.max_releases_size);
    if git.max_files == 0 {
        errs.push(
            src.diag(
                &["git", "max_files"],
                "git.max_files is 0: no push would fit".to_string(),
            )
            .hint("a number of files, 1 or more (default 10000)"),
        );
    }
    if git.keep < 2 {
        errs.push(
            src.diag(
                &["git", "keep"],
                format!("git.keep is {}; rollback needs at least 2 releases", git.keep),
            )
            .hint("keep 2 or more (default 5)"),
        );
    }
    Git {
        root: git.root.clone(),
        keep: git.keep,
        max_object_size,
        max_push_size,
        max_files: git.max_files,
        max_unpacked_size,
        max_branch_size,
        max_releases_size,
    }
}

/// Every instance logs under its own identifier (SyslogIdentifier=, the rsyslog rule
/// that routes its lines, the console's log view): one shared by two instances, of any
/// kinds, would mix their logs. A server named `redis` is the way there: its
/// instances' identifiers are the Redis instances' (`redis-<owner>`).
pub(super) fn check_log_identifiers(instances: &[Instance], src: &Source, errs: &mut Diagnostics) {
    let mut seen: BTreeMap<String, &Instance> = BTreeMap::new();
    let mut reported = std::collections::BTreeSet::new();
    for inst in instances {
        let id = inst.syslog_identifier();
        let Some(first) = seen.get(&id).copied() else {
            seen.insert(id, inst);
            continue;
        };
        // Point at the server (its name makes the clash), once per server.
        let at = if inst.kind == Kind::Openresty { inst } else { first };
        if !reported.insert(at.origin.clone()) {
            continue;
        }
        let origin: Vec<&str> = at.origin.iter().map(String::as_str).collect();
        errs.push(
            src.diag(
                &origin,
                format!(
                    "log identifier `{id}` is used by both {} and {}: their logs would mix",
                    whose(first),
                    whose(inst)
                ),
            )
            .hint(format!(
                "rename server `{}`: every instance logs as <server>-<owner>, and Redis as redis-<owner>",
                at.server
            )),
        );
    }
}

/// Each path on its own, then the layout: the trees and files hhlctl manages must not
/// be one another or sit inside one another (a server's instance directories would
/// vanish under `lua_lib_dir`, Redis data inside an instance would be deployed over).
pub(super) fn check_paths(raw: &RawConfig, src: &Source, errs: &mut Diagnostics) {
    let mut paths = raw.paths.clone();
    let mut bad = false;
    for (key, p) in paths.named_mut() {
        if let Some(problem) = paths::path_problem(p) {
            bad = true;
            errs.push(
                src.diag(&["paths", key], format!("paths.{key}: {problem}"))
                    .hint("an absolute, normalised path: start it with `/`; no `.`, `..`, `//`, white space or quotes"),
            );
        }
    }
    if bad || paths::path_problem(&raw.git.root).is_some() {
        return;
    }
    let p = &raw.paths;
    let lib_app = p.lua_lib_dir.with_file_name(format!(
        "{}.app",
        p.lua_lib_dir.file_name().unwrap_or_default().to_string_lossy()
    ));
    // (what, key path, path): every tree or file that must stand apart.
    let mut trees: Vec<(String, Vec<String>, PathBuf)> = vec![
        (
            "paths.redis_conf_dir".into(),
            vec!["paths".into(), "redis_conf_dir".into()],
            p.redis_conf_dir.clone(),
        ),
        (
            "paths.redis_data_dir".into(),
            vec!["paths".into(), "redis_data_dir".into()],
            p.redis_data_dir.clone(),
        ),
        (
            "paths.lua_lib_dir".into(),
            vec!["paths".into(), "lua_lib_dir".into()],
            p.lua_lib_dir.clone(),
        ),
        (
            "the releases of paths.lua_lib_dir".into(),
            vec!["paths".into(), "lua_lib_dir".into()],
            lib_app,
        ),
        (
            "paths.unit_dir".into(),
            vec!["paths".into(), "unit_dir".into()],
            p.unit_dir.clone(),
        ),
        (
            "paths.state_dir".into(),
            vec!["paths".into(), "state_dir".into()],
            p.state_dir.clone(),
        ),
        (
            "paths.polkit_rules".into(),
            vec!["paths".into(), "polkit_rules".into()],
            p.polkit_rules.clone(),
        ),
        (
            "paths.log_dir".into(),
            vec!["paths".into(), "log_dir".into()],
            p.log_dir.clone(),
        ),
        (
            "paths.rsyslog_conf".into(),
            vec!["paths".into(), "rsyslog_conf".into()],
            p.rsyslog_conf.clone(),
        ),
        (
            "paths.entry_home".into(),
            vec!["paths".into(), "entry_home".into()],
            p.entry_home.clone(),
        ),
        (
            "git.root".into(),
            vec!["git".into(), "root".into()],
            raw.git.root.clone(),
        ),
    ];
    for server in raw.servers.keys().take(crate::core::bounds::MAX_SERVERS) {
        trees.push((
            format!("the instances of server `{server}`"),
            vec!["servers".into(), server.clone()],
            p.hhl_root.join(server),
        ));
    }
    for (i, (what_a, _, a)) in trees.iter().enumerate() {
        for (what_b, at_b, b) in &trees[i + 1..] {
            if paths::overlap(a, b) {
                let at: Vec<&str> = at_b.iter().map(String::as_str).collect();
                let how = if a == b { "is the same path as" } else { "overlaps" };
                errs.push(
                    src.diag(
                        &at,
                        format!("{what_b} ({}) {how} {what_a} ({})", b.display(), a.display()),
                    )
                    .hint("give each its own place: none may be inside another"),
                );
            }
        }
    }
}

/// Every value an instance's template may insert must be expressible in its file's
/// syntax; refused where it is written. `*_snippet` keys are raw text by design.
pub(super) fn check_values(raw: &RawConfig, instances: &[Instance], src: &Source, errs: &mut Diagnostics) {
    let mut seen = std::collections::HashSet::new();
    for inst in instances {
        let group = match inst.kind {
            Kind::Openresty => raw.servers.get(&inst.server).map(|s| &s.values),
            Kind::Redis => raw.redis.as_ref().map(|r| &r.values),
        };
        let Some(group) = group else { continue };
        for owner in [MASTER, inst.developer.as_str()] {
            let Some(values) = group.get(owner) else { continue };
            for (key, v) in values {
                if !seen.insert((inst.kind, inst.server.as_str(), owner, key.as_str())) {
                    continue;
                }
                let mut at: Vec<String> = inst.origin.clone();
                at.extend(["values".to_string(), owner.to_string(), key.clone()]);
                if key.ends_with("_snippet") {
                    if !v.is_string() {
                        errs.push(
                            src.diag(
                                &at.iter().map(String::as_str).collect::<Vec<_>>(),
                                format!(
                                    "{}: `{key}` of `{owner}` is a raw snippet, so it must be a string",
                                    inst.origin.join(".")
                                ),
                            )
                            .hint("write the nginx text as a string (a YAML block `|` keeps lines)"),
                        );
                    }
                    continue;
                }
                check_value(inst.kind, v, &mut at, &mut |at, problem| {
                    if errs.is_full() {
                        return;
                    }
                    let file = match inst.kind {
                        Kind::Openresty => "nginx",
                        Kind::Redis => "Redis",
                    };
                    let key_path = at[inst.origin.len() + 2..].join(".");
                    errs.push(
                        src.diag(
                            &at.iter().map(String::as_str).collect::<Vec<_>>(),
                            format!("{}: value `{key_path}` of `{owner}` {problem}", inst.origin.join(".")),
                        )
                        .hint(format!(
                            "a {file} value cannot hold this safely; remove it, or use a `*_snippet` key for raw nginx text"
                        )),
                    );
                });
            }
        }
    }
}

pub(super) fn check_value(kind: Kind, v: &Value, at: &mut Vec<String>, report: &mut dyn FnMut(&[String], String)) {
    match v {
        Value::String(s) => {
            let r = match kind {
                Kind::Openresty => escape::NginxToken::new(s).map(|_| ()),
                Kind::Redis => escape::RedisToken::new(s).map(|_| ()),
            };
            if let Err(e) = r {
                report(at, format!("`{}` {e}", crate::core::error::excerpt(s)));
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                at.push(i.to_string());
                check_value(kind, item, at, report);
                at.pop();
            }
        }
        Value::Object(m) => {
            for (k, item) in m {
                if let Err(e) = match kind {
                    Kind::Openresty => escape::NginxToken::new(k).map(|_| ()),
                    Kind::Redis => escape::RedisToken::new(k).map(|_| ()),
                } {
                    report(at, format!("has a key `{}` that {e}", crate::core::error::excerpt(k)));
                }
                at.push(k.clone());
                check_value(kind, item, at, report);
                at.pop();
            }
        }
        _ => {}
    }
}
