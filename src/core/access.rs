//! Who may do what: every request of an identity, through ssh, a git hook or the log
//! page, is asked here against the model (`model.access`: who is who, resolved from
//! hhl.yaml in `core::model::access`).

use crate::core::model::Model;
use crate::core::names::MASTER;
use crate::core::repos::{RefUpdate, Repo, RepoKind};

/// Everything an identity may ask for, through ssh, a git hook or the log page.
#[derive(Debug, Clone, Copy)]
pub enum Action<'a> {
    /// status, start, stop, restart, reload, rollback, releases of `owner`'s instances.
    Control { owner: &'a str },
    /// Read the logs of `owner`'s instances.
    ReadLogs { owner: &'a str },
    /// Run a command on `owner`'s Redis (`ssh … redis`), or learn its port and secret.
    Redis { owner: &'a str },
    /// See (fetch) `branch` of `repo`.
    Read { repo: &'a Repo, branch: &'a str },
    /// Connect to `repo` to push at all (before any ref is known).
    Write { repo: &'a Repo },
    /// Make one ref update in `repo`.
    Push { repo: &'a Repo, update: &'a RefUpdate },
    /// apply, plan and every instance: admin commands.
    Admin,
}

/// THE authorization question: may `identity` do `action`? `Err` says why not, in a
/// sentence the identity reads. Used by `hhlctl ssh`, the git hooks and the log page.
/// `root` (a local admin at the console) may do everything.
pub fn may(model: &Model, identity: &str, action: Action) -> Result<(), String> {
    let access = &model.access;
    if access.is_admin(identity) {
        return match action {
            Action::Push { repo, update } => push_refusal(model, repo, identity, None, true, update),
            _ => Ok(()),
        };
    }
    let Some(me) = access.identities.get(identity) else {
        return Err(format!("`{identity}` is not an identity in hhl.yaml (keys:)"));
    };
    let mine = |owner: &str| owner == me.name;
    match action {
        Action::Control { owner } | Action::ReadLogs { owner } | Action::Redis { owner } if mine(owner) => Ok(()),
        Action::Control { owner } => Err(format!(
            "not yours: the instances of `{owner}` belong to {owner}, and you are `{identity}`"
        )),
        Action::ReadLogs { owner } => Err(format!(
            "not yours: you are `{identity}` and may not read the logs of `{owner}`"
        )),
        Action::Redis { owner } => Err(format!(
            "not yours: you are `{identity}` and may use your own Redis only, not `{owner}`'s"
        )),
        Action::Read { repo, branch } => match &repo.kind {
            // Developers read master (to merge from) and their own branch; other
            // developers' branches are hidden.
            RepoKind::Server(_) if branch == MASTER || mine(branch) => Ok(()),
            RepoKind::Server(_) => Err(format!("{}: branch `{branch}` is not yours to read", repo.name)),
            RepoKind::Lualib => Ok(()),
            RepoKind::Serverctrl => Err(format!(
                "{}: only admins read or push here (you are `{identity}`)",
                repo.name
            )),
        },
        Action::Write { repo } => match repo.kind {
            RepoKind::Server(_) => Ok(()),
            _ => Err(format!(
                "{}: only admins push here (you are `{identity}`); ask one (users.admins in hhl.yaml)",
                repo.name
            )),
        },
        Action::Push { repo, update } => push_refusal(model, repo, identity, Some(me.name.as_str()), false, update),
        Action::Admin => Err(format!("that is an admin command, and `{identity}` is not an admin")),
    }
}

fn push_refusal(
    model: &Model,
    repo: &Repo,
    identity: &str,
    owner: Option<&str>,
    admin: bool,
    update: &RefUpdate,
) -> Result<(), String> {
    let pusher = crate::core::repos::Pusher {
        user: identity,
        owner,
        admin,
    };
    match crate::core::repos::refusal(model, repo, &pusher, update) {
        Some(r) => Err(r),
        None => Ok(()),
    }
}

#[cfg(test)]
mod may_tests {
    use std::path::PathBuf;

    use super::*;
    use crate::core::config::Source;
    use crate::core::repos::repos;

    const K1: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl dev1";
    const K2: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDE5+m+Gef4gsADICwtTmejOZAgQIw/87ICuoaZ/3he7 dev2";
    const KA: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJDTUkz/5Nx8r2QKT8SYP2EBfKfesbPg8WcSLUZGn8k7 lead";

    fn model(extra: &str) -> Result<Model, String> {
        let text = format!(
            "developers: [dev1, dev2]\nservers:\n  socketserver:\n    template: builtin:socketserver\n    values:\n      master: {{port: 9000}}\n      dev1: {{port: 9001}}\n      dev2: {{port: 9002}}\nusers: {{admins: [lead]}}\nkeys:\n  dev1: [\"{K1}\"]\n  dev2: [\"{K2}\"]\n  lead: [\"{KA}\"]\n{extra}"
        );
        let path = PathBuf::from("/etc/hhl/hhl.yaml");
        let raw = crate::core::config::parse(&path, &text).map_err(|d| d.to_string())?;
        let src = Source { path, text };
        crate::core::model::build(&raw, &src, crate::core::model::Flavor::Debian).map_err(|d| d.to_string())
    }

    fn update(branch: &str) -> RefUpdate {
        RefUpdate {
            old: "0".repeat(40),
            new: "1".repeat(40),
            refname: format!("refs/heads/{branch}"),
        }
    }

    #[test]
    fn developers_act_on_their_own_only() {
        let m = model("").unwrap();
        assert_eq!(may(&m, "dev1", Action::Control { owner: "dev1" }), Ok(()));
        assert_eq!(
            may(&m, "dev1", Action::Control { owner: "dev2" }).unwrap_err(),
            "not yours: the instances of `dev2` belong to dev2, and you are `dev1`"
        );
        assert_eq!(
            may(&m, "dev1", Action::ReadLogs { owner: "master" }).unwrap_err(),
            "not yours: you are `dev1` and may not read the logs of `master`"
        );
        assert_eq!(may(&m, "dev1", Action::Redis { owner: "dev1" }), Ok(()));
        assert_eq!(
            may(&m, "dev1", Action::Redis { owner: "dev2" }).unwrap_err(),
            "not yours: you are `dev1` and may use your own Redis only, not `dev2`'s"
        );
        assert!(may(&m, "dev1", Action::Redis { owner: "master" }).is_err());
        assert_eq!(may(&m, "lead", Action::Redis { owner: "dev2" }), Ok(()));
        assert_eq!(
            may(&m, "dev1", Action::Admin).unwrap_err(),
            "that is an admin command, and `dev1` is not an admin"
        );
        assert_eq!(may(&m, "lead", Action::Control { owner: "dev2" }), Ok(()));
        assert_eq!(may(&m, "root", Action::Admin), Ok(()));
        assert_eq!(
            may(&m, "mallory", Action::Control { owner: "mallory" }).unwrap_err(),
            "`mallory` is not an identity in hhl.yaml (keys:)"
        );
    }

    #[test]
    fn repositories() {
        let m = model("").unwrap();
        let all = repos(&m);
        let server = &all[0];
        let serverctrl = all.iter().find(|r| r.kind == RepoKind::Serverctrl).unwrap();
        assert_eq!(
            may(
                &m,
                "dev1",
                Action::Read {
                    repo: server,
                    branch: "master"
                }
            ),
            Ok(())
        );
        assert_eq!(
            may(
                &m,
                "dev1",
                Action::Read {
                    repo: server,
                    branch: "dev1"
                }
            ),
            Ok(())
        );
        assert_eq!(
            may(
                &m,
                "dev1",
                Action::Read {
                    repo: server,
                    branch: "dev2"
                }
            )
            .unwrap_err(),
            "socketserver: branch `dev2` is not yours to read"
        );
        assert!(may(
            &m,
            "dev1",
            Action::Read {
                repo: serverctrl,
                branch: "master"
            }
        )
        .is_err());
        assert_eq!(
            may(&m, "dev1", Action::Write { repo: serverctrl }).unwrap_err(),
            "serverctrl: only admins push here (you are `dev1`); ask one (users.admins in hhl.yaml)"
        );
        assert_eq!(
            may(
                &m,
                "dev1",
                Action::Push {
                    repo: server,
                    update: &update("dev1")
                }
            ),
            Ok(())
        );
        let theirs = may(
            &m,
            "dev1",
            Action::Push {
                repo: server,
                update: &update("dev2"),
            },
        )
        .unwrap_err();
        assert!(theirs.contains("branch `dev2` belongs to dev2"), "{theirs}");
        assert!(may(
            &m,
            "dev1",
            Action::Push {
                repo: server,
                update: &update("master")
            }
        )
        .is_err());
        assert_eq!(
            may(
                &m,
                "lead",
                Action::Push {
                    repo: server,
                    update: &update("master")
                }
            ),
            Ok(())
        );
    }

    #[test]
    fn keys_are_checked_where_written() {
        let e = model("  dev3: [\"ssh-ed25519 AAAA\"]\n").unwrap_err();
        assert!(e.contains("keys: `dev3` is neither a developer nor an admin"), "{e}");
        assert!(e.contains(":14:"), "{e}");
        let e = model(&format!("  master: [\"{K1}\"]\n")).unwrap_err();
        assert!(e.contains("keys: `master` is neither"), "{e}");
        let text = format!("developers: [dev1, dev2]\nservers: {{}}\nkeys:\n  dev1: [\"{K1}\"]\n  dev2: [\"{K1}\"]\n");
        let path = PathBuf::from("h.yaml");
        let raw = crate::core::config::parse(&path, &text).unwrap();
        let e = crate::core::model::build(&raw, &Source { path, text }, crate::core::model::Flavor::Debian)
            .unwrap_err()
            .to_string();
        assert!(e.contains("keys.dev2[0]: this key is also dev1's"), "{e}");
        assert!(e.contains("h.yaml:5:"), "{e}");
    }

    #[test]
    fn instance_users_and_entry() {
        let m = model("").unwrap();
        assert_eq!(m.access.user_of("dev1"), "hhl-dev1");
        assert_eq!(m.access.user_of("master"), "hhl-master");
        assert_eq!(m.access.entry, "hhl");
        let e = model("").map(|_| ()).and_then(|_| {
            let text = "developers: [dev1]\nservers: {}\nusers: {entry: hhl-dev1}\n".to_string();
            let path = PathBuf::from("h.yaml");
            let raw = crate::core::config::parse(&path, &text).unwrap();
            crate::core::model::build(&raw, &Source { path, text }, crate::core::model::Flavor::Debian)
                .map(|_| ())
                .map_err(|d| d.to_string())
        });
        let e = e.unwrap_err();
        assert!(e.contains("h.yaml:3:"), "{e}");
        assert!(
            e.contains("unix user `hhl-dev1` would run") || e.contains("users.entry `hhl-dev1` also runs instances"),
            "{e}"
        );
    }
}
