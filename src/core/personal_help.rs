//! `ssh <entry>@server help`, for the one who asks: who they are, their instances with
//! ports and state, the clone and push commands for their branch, the push options,
//! then the command list. Pure: the states come from the caller.

use std::collections::{HashMap, HashSet};

use crate::core::kind::Kind;
use crate::core::model::Model;
use crate::core::voice::Voice;

/// What the text is made of besides hhl.yaml.
pub struct Facts<'a> {
    /// Unit → systemd's active state (missing: unknown).
    pub states: &'a HashMap<String, String>,
    /// Servers whose repository has the identity's branch already.
    pub branches: &'a HashSet<String>,
    /// The command list (`ssh::command::HELP`, and the admin one for admins).
    pub commands: &'a str,
}

/// The text for `identity`, addressed as `voice` (an ssh voice: commands as they type
/// them).
pub fn text(model: &Model, identity: &str, voice: &Voice, facts: &Facts) -> String {
    let states = facts.states;
    let admin = model.access.is_admin(identity);
    let developer = model.developers.iter().any(|d| d == identity);
    let role = match (developer, admin) {
        (true, true) => "a developer and an admin",
        (true, false) => "a developer",
        (false, true) => "an admin",
        (false, false) => "no developer and no admin",
    };
    let mut out = format!(
        "you are {identity}, {role}; you reach this server as `{}`\n",
        voice.cmd("…")
    );
    let mine: Vec<_> = model.instances.iter().filter(|i| i.developer == identity).collect();
    if !mine.is_empty() {
        out.push_str("\nyour instances:\n");
        let width = mine.iter().map(|i| i.name.len()).max().unwrap_or(0);
        for i in &mine {
            let what = match i.kind {
                Kind::Openresty => format!("{} (OpenResty)", i.server),
                Kind::Redis => "your Redis".to_string(),
            };
            let state = states.get(&i.unit()).map(String::as_str).unwrap_or("unknown");
            out.push_str(&format!(
                "  {:width$}  port {:<5}  {state:<10}  {what}\n",
                i.name, i.port
            ));
        }
        let servers: Vec<&str> = mine
            .iter()
            .filter(|i| i.kind == Kind::Openresty)
            .map(|i| i.server.as_str())
            .collect();
        if let Some(first) = servers.first() {
            out.push_str(&format!(
                "\nyour code (branch {identity} of each server's repository):\n"
            ));
            for s in &servers {
                let remote = voice.remote(s).unwrap_or_else(|| s.to_string());
                if facts.branches.contains(*s) {
                    out.push_str(&format!("  git clone -b {identity} {remote}\n"));
                } else {
                    out.push_str(&format!(
                        "  git clone {remote}        (master: you have no branch {identity} there yet; your first push makes it)\n"
                    ));
                }
            }
            out.push_str(&format!(
                "  git push origin HEAD:{identity}          deploys to {first}-{identity} (and reloads it)\n\
                 \x20 git push -o restart origin HEAD:{identity}        restart instead of reload\n\
                 \x20 git push -o restart=redis origin HEAD:{identity}  also restart your Redis\n\
                 \x20 git push -o restart=all origin HEAD:{identity}    restart all your instances\n\
                 \x20 git push -o no-deploy origin HEAD:{identity}      store only, deploy nothing\n\
"
            ));
        }
    }
    out.push('\n');
    out.push_str(facts.commands);
    out
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn help_speaks_to_the_one_who_asks() {
        let yaml = "developers: [dev1, dev2]\nservers:\n  socketserver:\n    template: builtin:socketserver\n    values:\n      master: {port: 9000}\n      dev1: {port: 9001}\n      dev2: {port: 9002}\n".to_string();
        let path = PathBuf::from("h.yaml");
        let raw = crate::core::config::parse(&path, &yaml).unwrap();
        let m = crate::core::model::build(
            &raw,
            &crate::core::config::Source { path, text: yaml },
            crate::core::model::Flavor::Debian,
        )
        .unwrap();
        let voice = Voice::ssh("hhl", Some("10.0.0.5"));
        let states: HashMap<String, String> =
            [("openresty@socketserver-dev1.service".to_string(), "active".to_string())].into();
        let mut branches = HashSet::new();
        let facts = |b: &HashSet<String>| -> String {
            super::text(
                &m,
                "dev1",
                &voice,
                &Facts {
                    states: &states,
                    branches: b,
                    commands: "commands: …",
                },
            )
        };
        let before = facts(&branches);
        assert!(
            before.starts_with("you are dev1, a developer; you reach this server as `ssh hhl@10.0.0.5 …`"),
            "{before}"
        );
        assert!(
            before.contains("  socketserver-dev1  port 9001   active      socketserver (OpenResty)"),
            "{before}"
        );
        assert!(
            before.contains("git clone hhl@10.0.0.5:socketserver        (master: you have no branch dev1"),
            "{before}"
        );
        assert!(before.contains("git push origin HEAD:dev1 "), "{before}");
        assert!(
            before.contains("git push -o restart=redis origin HEAD:dev1"),
            "{before}"
        );
        assert!(!before.contains("dev2") && before.ends_with("commands: …"), "{before}");
        branches.insert("socketserver".to_string());
        assert!(facts(&branches).contains("  git clone -b dev1 hhl@10.0.0.5:socketserver\n"));
    }
}
