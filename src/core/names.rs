//! Rules for developer and server names. A developer name is a unix user name, a git
//! branch, part of a systemd instance string (`socketserver-dev1`) and of a slice name
//! (`hhl-dev1.slice`), so it must be safe in all four.

/// The shared integration instance; always present, never listed as a developer.
pub const MASTER: &str = "master";

const MAX_LEN: usize = 32;

/// Accounts a developer or hhl user must never be: Debian's system users (base-passwd
/// and the packages hhlctl depends on or recommends), hhl's own, and words YAML reads
/// as something other than a name. `apply` also refuses any other pre-existing system
/// account (uid below 1000) on the host.
pub const RESERVED: &[&str] = &[
    "root",
    "daemon",
    "bin",
    "sys",
    "sync",
    "games",
    "man",
    "lp",
    "mail",
    "news",
    "uucp",
    "proxy",
    "www-data",
    "www_data",
    "backup",
    "list",
    "irc",
    "gnats",
    "nobody",
    "nogroup",
    "_apt",
    "systemd-network",
    "systemd-resolve",
    "systemd-timesync",
    "systemd-journal",
    "messagebus",
    "polkitd",
    "sshd",
    "redis",
    "nginx",
    "openresty",
    "syslog",
    "git",
    "hhl",
    "hhl-git",
    "hhl_git",
    "hhl-web",
    "hhl_web",
    "admin",
    "adm",
    "staff",
    "sudo",
    "wheel",
    "shadow",
    "utmp",
    "tty",
    "disk",
    "kmem",
    "null",
    "true",
    "false",
    "yes",
    "no",
    "on",
    "off",
];

/// Why `name` is reserved, or `None`.
pub fn reserved_problem(name: &str, what: &str) -> Option<String> {
    RESERVED
        .contains(&name)
        .then(|| format!("{what} `{name}` is a system account or reserved name; hhl must not run instances as it"))
}

/// Why `name` cannot be a developer, or `None` when it can.
pub fn developer_problem(name: &str) -> Option<String> {
    if name == MASTER {
        return Some("`master` is always an instance; do not list it as a developer".into());
    }
    common_problem(name, "developer").or_else(|| reserved_problem(name, "developer name"))
}

/// Why `name` cannot be a server name, or `None` when it can.
pub fn server_problem(name: &str) -> Option<String> {
    common_problem(name, "server")
}

/// Why `name` cannot be a unix user name (for `useradd`, `User=` and polkit rules).
pub fn user_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("user name is empty".into());
    }
    if name.len() > MAX_LEN {
        return Some(format!(
            "user name `{}` is longer than {MAX_LEN} characters",
            crate::core::error::excerpt(name)
        ));
    }
    let first_ok = name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_');
    let rest_ok = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !first_ok || !rest_ok || name == "root" {
        return Some(format!(
            "`{}` cannot be a unix user name here",
            crate::core::error::excerpt(name)
        ));
    }
    None
}

/// Why instances must not run as `name` (a developer's unix user): a bad user name, a
/// system account or a reserved one. `allowed` is the one reserved name that fits
/// (`hhl` for master).
pub fn run_as_problem(name: &str, allowed: &str) -> Option<String> {
    user_problem(name).or_else(|| {
        if name == allowed {
            None
        } else {
            reserved_problem(name, "user")
        }
    })
}

fn common_problem(name: &str, what: &str) -> Option<String> {
    if name.is_empty() {
        return Some(format!("{what} name is empty"));
    }
    if name.len() > MAX_LEN {
        return Some(format!(
            "{what} name `{}` is {} characters long; the limit is {MAX_LEN} (unix user names)",
            crate::core::error::excerpt(name),
            name.len()
        ));
    }
    if name.contains('-') {
        return Some(format!(
            "{what} name `{name}` contains `-`, which systemd reads as a separator (instance `<server>-<developer>`, slice `hhl-<developer>.slice`)"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        let name = crate::core::error::excerpt(name);
        let shown = if c.is_whitespace() {
            "white space".to_string()
        } else {
            format!("`{c}`")
        };
        return Some(format!(
            "{what} name `{name}` contains {shown}; use lowercase letters, digits and `_`"
        ));
    }
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        return Some(format!(
            "{what} name `{name}` starts with a digit; unix user names must start with a letter or `_`"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for n in ["dev1", "alice", "_svc", "a_b_c", &"x".repeat(32)] {
            assert_eq!(developer_problem(n), None, "{n}");
        }
    }

    #[test]
    fn rejects_bad_names_with_reasons() {
        let cases = [
            ("", "is empty"),
            ("../x", "contains `.`"),
            ("dev 1", "contains white space"),
            ("-x", "contains `-`"),
            ("Dev1", "contains `D`"),
            ("1dev", "starts with a digit"),
            ("master", "always an instance"),
            ("root", "system account"),
            ("nobody", "system account"),
            ("null", "reserved"),
            ("hhl", "reserved"),
        ];
        for (name, want) in cases {
            let got = developer_problem(name).unwrap();
            assert!(got.contains(want), "{name}: {got}");
        }
        assert!(developer_problem(&"x".repeat(33)).unwrap().contains("33 characters"));
        assert!(server_problem("web-socket").unwrap().contains("separator"));
    }
}
