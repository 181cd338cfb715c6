//! hhl.yaml as hhlctl 0.1.0 wrote it, read by this release: each key whose meaning
//! changed is mapped to what this release needs, with a warning that points at the
//! line and says what to write instead. Pure: the shell prints the warnings.

use crate::core::config::{RawConfig, RawUsers, Source};
use crate::core::error::Diagnostic;

/// Map 0.1.0's keys in `raw`; one warning per key mapped.
pub fn migrate(raw: &mut RawConfig, source: &Source) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    if let Some(shell) = raw.users.shell.take() {
        out.push(
            source
                .diag(
                    &["users", "shell"],
                    format!(
                        "users.shell ({shell}) is hhlctl 0.1.0's and is ignored: developers have no unix login any more; \
                         they push and run commands through the entry account (users.entry: `{}`) with their keys in `keys:`",
                        raw.users.entry
                    ),
                )
                .hint("delete the `shell:` line under `users:`, and list each developer's ssh public key under `keys:`"),
        );
    }
    let master = RawUsers::default().master;
    if raw.users.master == raw.users.entry && master != raw.users.entry {
        out.push(
            source
                .diag(
                    &["users", "master"],
                    format!(
                        "users.master `{}` is the ssh entry account (users.entry) since hhlctl 0.2.0; \
                         read as `{master}`: master's instances run as `{master}`, and apply hands their files over to it",
                        raw.users.master
                    ),
                )
                .hint(format!("write `master: {master}` under `users:`")),
        );
        raw.users.master = master;
    }
    out
}

/// A warning as the command line prints it: a diagnostic, said as a warning.
pub fn warning_text(d: &Diagnostic) -> String {
    let text = d.to_string();
    match text.strip_prefix("error: ") {
        Some(rest) => format!("warning: {rest}"),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config;

    fn read(text: &str) -> (RawConfig, Vec<String>) {
        let source = Source {
            path: "/etc/hhl/hhl.yaml".into(),
            text: format!(
                "{text}servers:\n  s:\n    template: builtin:socketserver\n    values:\n      master: {{port: 1080}}\n"
            ),
        };
        let mut raw = config::parse(&source.path, &source.text).unwrap();
        let warnings = migrate(&mut raw, &source).iter().map(warning_text).collect();
        (raw, warnings)
    }

    #[test]
    fn maps_the_old_master_account_and_drops_the_shell_saying_where() {
        let (raw, w) = read("developers: [dev1]\nusers:\n  create: true\n  master: hhl\n  shell: /usr/bin/git-shell\n");
        assert_eq!(raw.users.master, "hhl-master");
        assert_eq!(raw.users.shell, None);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].starts_with("warning: users.shell (/usr/bin/git-shell) is hhlctl 0.1.0's and is ignored"),
            "{}",
            w[0]
        );
        assert!(w[0].contains("--> /etc/hhl/hhl.yaml:5:3"), "{}", w[0]);
        assert!(
            w[0].contains("= hint: delete the `shell:` line under `users:`"),
            "{}",
            w[0]
        );
        assert!(
            w[1].starts_with("warning: users.master `hhl` is the ssh entry account (users.entry) since hhlctl 0.2.0; read as `hhl-master`"),
            "{}",
            w[1]
        );
        assert!(w[1].contains("--> /etc/hhl/hhl.yaml:4:3"), "{}", w[1]);
        assert!(
            w[1].contains("= hint: write `master: hhl-master` under `users:`"),
            "{}",
            w[1]
        );
    }

    #[test]
    fn a_config_of_this_release_is_left_alone() {
        let (raw, w) = read("developers: [dev1]\nusers:\n  master: hhl-master\n");
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(raw.users.master, "hhl-master");
    }
}
