//! Rules for developer and server names. A developer name is a unix user name, a git
//! branch, part of a systemd instance string (`socketserver-dev1`) and of a slice name
//! (`hhl-dev1.slice`), so it must be safe in all four.

/// The shared integration instance; always present, never listed as a developer.
pub const MASTER: &str = "master";

const MAX_LEN: usize = 32;

/// Why `name` cannot be a developer, or `None` when it can.
pub fn developer_problem(name: &str) -> Option<String> {
    if name == MASTER {
        return Some("`master` is always an instance; do not list it as a developer".into());
    }
    common_problem(name, "developer")
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
        return Some(format!("user name `{name}` is longer than {MAX_LEN} characters"));
    }
    let first_ok = name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_');
    let rest_ok = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !first_ok || !rest_ok || name == "root" {
        return Some(format!("`{name}` cannot be a unix user name here"));
    }
    None
}

fn common_problem(name: &str, what: &str) -> Option<String> {
    if name.is_empty() {
        return Some(format!("{what} name is empty"));
    }
    if name.len() > MAX_LEN {
        return Some(format!(
            "{what} name `{name}` is {} characters long; the limit is {MAX_LEN} (unix user names)",
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
        ];
        for (name, want) in cases {
            let got = developer_problem(name).unwrap();
            assert!(got.contains(want), "{name}: {got}");
        }
        assert!(developer_problem(&"x".repeat(33)).unwrap().contains("33 characters"));
        assert!(server_problem("web-socket").unwrap().contains("separator"));
    }
}
