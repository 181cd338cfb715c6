//! The people part of the model: each owner's unix user, the entry account, the
//! admins, every identity's keys, and the resource limits of each owner's slice,
//! resolved from hhl.yaml. Who may do what with it is `core::access`; creating users
//! is the shell's job (`host::users`).

use indexmap::IndexMap;
use serde::Serialize;

use crate::core::config::{RawConfig, RawLimits, Source};
use crate::core::error::Diagnostics;
use crate::core::identity::{self, Identity};
use crate::core::names::{self, MASTER};

#[derive(Debug, Clone, Serialize)]
pub struct Access {
    /// `hhlctl apply` creates missing unix users.
    pub create: bool,
    /// Owner (`master` or a developer) → the system user their instances run as.
    pub users: IndexMap<String, String>,
    /// The ssh entry account: owns repositories and releases, runs `hhlctl ssh`.
    pub entry: String,
    /// Identities who may do everything through ssh.
    pub admins: Vec<String>,
    /// Identity → their role and ssh keys.
    pub identities: IndexMap<String, Identity>,
    /// Owner → limits of `hhl-<owner>.slice`.
    pub limits: IndexMap<String, Limits>,
}

impl Access {
    /// The unix user `owner`'s instances run as.
    pub fn user_of<'a>(&'a self, owner: &'a str) -> &'a str {
        self.users.get(owner).map(String::as_str).unwrap_or(owner)
    }

    /// Whether unix user `who` may control instances of `owner` from a shell: root and
    /// the entry account (which authorizes each identity with `may` first).
    pub fn may_control(&self, who: &str, _owner: &str) -> bool {
        who == "root" || who == self.entry
    }

    /// Why unix user `me` may not run `verb` on instances from a shell: only root and
    /// the entry account (serving identities through `hhlctl ssh`) do.
    pub fn shell_refusal(&self, me: &str, verb: &str) -> Option<String> {
        let what = if verb == "logs" {
            "read instances' logs".to_string()
        } else {
            format!("{verb} instances")
        };
        (!self.may_control(me, "")).then(|| {
            format!(
                "only root and the entry account `{entry}` may {what} here, and you are unix user `{me}`\n  \
                 hint: developers and admins use their ssh key: `ssh {entry}@<server> {verb} …` (`ssh {entry}@<server> help`)",
                entry = self.entry
            )
        })
    }

    pub fn is_admin(&self, identity: &str) -> bool {
        identity == "root" || self.admins.iter().any(|a| a == identity)
    }
}

/// One slice's limits, as systemd spells them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Limits {
    pub memory_max: Option<String>,
    pub cpu_quota: Option<String>,
    pub tasks_max: Option<String>,
    /// Size of each private tmpfs of an instance (limits.<owner>.disk), if set.
    pub disk: Option<String>,
    /// The owner's Redis maxmemory (limits.<owner>.redis), if set.
    pub redis: Option<String>,
}

/// limits.<owner>.disk when hhl.yaml sets none.
pub const DEFAULT_DISK: &str = "64M";
/// limits.<owner>.redis when hhl.yaml sets none: room for a developer's test data, and
/// a bound on what their code can make Redis write to disk (an RDB is about the size
/// of the data; an AOF at most about twice it before Redis rewrites it).
pub const DEFAULT_REDIS: &str = "512M";

impl Limits {
    pub fn is_empty(&self) -> bool {
        self.memory_max.is_none() && self.cpu_quota.is_none() && self.tasks_max.is_none()
    }
}

pub fn resolve(raw: &RawConfig, developers: &[String], src: &Source, errs: &mut Diagnostics) -> Access {
    let (users, limits) = (&raw.users, &raw.limits);
    let user_hint =
        "unix user names: lowercase letters, digits, `_` and `-`, starting with a letter, at most 32, not root";
    let mut resolved = IndexMap::new();
    if let Some(p) = names::run_as_problem(&users.entry, "hhl") {
        errs.push(
            src.diag(&["users", "entry"], format!("users.entry: {p}"))
                .hint(user_hint),
        );
    }
    if let Some(p) = names::run_as_problem(&users.master, "hhl-master") {
        errs.push(
            src.diag(&["users", "master"], format!("users.master: {p}"))
                .hint(user_hint),
        );
    }
    resolved.insert(MASTER.to_string(), users.master.clone());
    for (dev, user) in &users.map {
        if !developers.contains(dev) {
            errs.push(
                src.diag(
                    &["users", "map", dev],
                    format!("users.map names `{dev}`, who is not in `developers`"),
                )
                .hint(format!("add `{dev}` to `developers`, or remove this entry")),
            );
        } else if let Some(p) = names::run_as_problem(user, "") {
            errs.push(
                src.diag(&["users", "map", dev], format!("users.map.{dev}: {p}"))
                    .hint(user_hint),
            );
        }
    }
    let identities = identity::resolve(raw, developers, src, errs);
    let runs_instances = |u: &String| *u == users.entry;
    if users.entry == users.master
        || users.map.values().any(runs_instances)
        || developers
            .iter()
            .any(|d| format!("hhl-{d}") == users.entry && !users.map.contains_key(d))
    {
        errs.push(
            src.diag(
                &["users", "entry"],
                format!("users.entry `{}` also runs instances", users.entry),
            )
            .hint("the entry account owns everybody's code; instances need their own users (default `hhl-<owner>`)"),
        );
    }
    for dev in developers {
        let default = format!("hhl-{dev}");
        let user = users.map.get(dev).unwrap_or(&default);
        if let Some((other, _)) = resolved.iter().find(|(_, u)| *u == user) {
            let at: Vec<&str> = if users.map.contains_key(dev) {
                vec!["users", "map", dev]
            } else {
                vec!["users", "master"]
            };
            errs.push(
                src.diag(
                    &at,
                    format!("unix user `{user}` would run the instances of both `{other}` and `{dev}`"),
                )
                .hint("every developer and master need their own unix user: that is what keeps them apart"),
            );
        }
        resolved.insert(dev.clone(), user.clone());
    }
    let base = limits.get(MASTER).cloned().unwrap_or_default();
    for owner in limits.keys() {
        if owner != MASTER && !developers.contains(owner) {
            errs.push(
                src.diag(
                    &["limits", owner],
                    format!("limits for `{owner}`, who is not in `developers`"),
                )
                .hint(format!("add `{owner}` to `developers`, or remove these limits")),
            );
        }
    }
    let mut out = IndexMap::new();
    for owner in std::iter::once(MASTER).chain(developers.iter().map(String::as_str)) {
        let own = limits.get(owner).filter(|_| owner != MASTER);
        // Point messages at the value that set it: the override, else master's.
        let pick = |field: &str, get: &dyn Fn(&RawLimits) -> Option<String>| -> (Option<String>, Vec<String>) {
            match own.and_then(get) {
                Some(v) => (Some(v), vec!["limits".into(), owner.into(), field.into()]),
                None => (get(&base), vec!["limits".into(), MASTER.into(), field.into()]),
            }
        };
        let mut check = |field: &str, value: Option<String>, at: Vec<String>, ok: fn(&str) -> bool, hint: &str| {
            match value {
                Some(v) if !ok(&v) => {
                    // An inherited value is reported once, where it is written.
                    if at[1] == owner {
                        let at: Vec<&str> = at.iter().map(String::as_str).collect();
                        errs.push(
                            src.diag(&at, format!("limits.{owner}.{field}: `{v}` is not a valid limit"))
                                .hint(hint),
                        );
                    }
                    None
                }
                v => v,
            }
        };
        let (m, at) = pick("memory", &|l| l.memory.clone());
        let memory_max = check(
            "memory",
            m,
            at,
            valid_bytes,
            "bytes with K, M, G or T (`512M`), a percentage (`20%`) or `infinity`",
        );
        let (c, at) = pick("cpu", &|l| l.cpu.clone());
        let cpu_quota = check(
            "cpu",
            c,
            at,
            valid_cpu,
            "a percentage of one CPU: `50%`, `200%` (two CPUs)",
        );
        let (t, at) = pick("tasks", &|l| l.tasks.as_ref().map(scalar));
        let tasks_max = check(
            "tasks",
            t,
            at,
            valid_tasks,
            "a number of processes and threads (`512`) or `infinity`",
        );
        let (d, at) = pick("disk", &|l| l.disk.clone());
        let disk = check(
            "disk",
            d,
            at,
            |v| crate::core::push_limits::parse_size(v).is_ok(),
            "bytes with K, M or G (`64M`), at least 1K: the size of each of the instance's logs/, temp/, /tmp, /var/tmp and /dev/shm",
        );
        let (r, at) = pick("redis", &|l| l.redis.clone());
        let redis = check(
            "redis",
            r,
            at,
            |v| crate::core::push_limits::parse_size(v).is_ok_and(|n| n >= 1 << 20),
            "bytes with K, M or G (`512M`), at least 1M: the most data the owner's Redis holds",
        );
        out.insert(
            owner.to_string(),
            Limits {
                memory_max,
                cpu_quota,
                tasks_max,
                disk,
                redis,
            },
        );
    }

    Access {
        create: users.create,
        users: resolved,
        entry: users.entry.clone(),
        admins: users.admins.clone(),
        identities,
        limits: out,
    }
}

fn scalar(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn percentage(s: &str) -> bool {
    s.strip_suffix('%').is_some_and(digits)
}

fn valid_bytes(s: &str) -> bool {
    // Zero, like `cpu: 0%`, would stop every instance of the owner: refused.
    let n = s.strip_suffix(['K', 'M', 'G', 'T', '%']).unwrap_or(s);
    s == "infinity" || (digits(n) && n.bytes().any(|b| b != b'0'))
}

fn valid_cpu(s: &str) -> bool {
    percentage(s) && s != "0%"
}

fn valid_tasks(s: &str) -> bool {
    s == "infinity" || (digits(s) && s != "0") || percentage(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_syntax() {
        for ok in ["512M", "2G", "100", "20%", "infinity"] {
            assert!(valid_bytes(ok), "{ok}");
        }
        for bad in ["512MB", "lots", "", "-1G", "1.5G", "0", "0M", "0%"] {
            assert!(!valid_bytes(bad), "{bad}");
        }
        assert!(valid_cpu("150%") && !valid_cpu("1.5") && !valid_cpu("0%"));
        assert!(valid_tasks("512") && valid_tasks("infinity") && !valid_tasks("0") && !valid_tasks("many"));
    }
}
