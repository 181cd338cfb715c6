//! The git side, as data: which bare repositories exist, who may move which branch,
//! what a push option means and what a pushed branch deploys to. Pure; the hooks
//! (`cmd::hook`) and `release` do the I/O.

use std::path::{Path, PathBuf};

use crate::core::kind::Kind;
use crate::core::model::{Instance, Model};
use crate::core::names::MASTER;

pub const SERVERCTRL: &str = "serverctrl";
pub const LUALIB: &str = "lualib";
/// The branch that serverctrl and the Lua library deploy from.
pub const MAIN_BRANCH: &str = MASTER;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepoKind {
    /// A logic server's Lua code: branch `<developer>` deploys to `<server>-<developer>`.
    Server(String),
    /// hhl.yaml and templates: `master` is validated, then applied.
    Serverctrl,
    /// The shared Lua library: `master` deploys to `paths.lua_lib_dir`.
    Lualib,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repo {
    pub name: String,
    pub kind: RepoKind,
    pub path: PathBuf,
}

/// Every repository hhl.yaml implies, servers first.
pub fn repos(model: &Model) -> Vec<Repo> {
    let mut servers: Vec<&str> = model
        .instances
        .iter()
        .filter(|i| i.kind == Kind::Openresty)
        .map(|i| i.server.as_str())
        .collect();
    servers.dedup();
    let repo = |name: &str, kind| Repo {
        name: name.to_string(),
        kind,
        path: model.git.root.join(format!("{name}.git")),
    };
    servers
        .into_iter()
        .map(|s| repo(s, RepoKind::Server(s.to_string())))
        .chain([repo(SERVERCTRL, RepoKind::Serverctrl), repo(LUALIB, RepoKind::Lualib)])
        .collect()
}

/// The repository at `path` (a hook's working directory).
pub fn repo_at(model: &Model, path: &Path) -> Option<Repo> {
    repos(model).into_iter().find(|r| r.path == path)
}

/// One line of a pre-/post-receive hook's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefUpdate {
    pub old: String,
    pub new: String,
    pub refname: String,
}

impl RefUpdate {
    pub fn parse(line: &str) -> Option<RefUpdate> {
        let mut it = line.split_whitespace();
        let (old, new, refname) = (it.next()?, it.next()?, it.next()?);
        Some(RefUpdate {
            old: old.into(),
            new: new.into(),
            refname: refname.into(),
        })
    }
    pub fn branch(&self) -> Option<&str> {
        self.refname.strip_prefix("refs/heads/")
    }
    pub fn is_delete(&self) -> bool {
        self.new.bytes().all(|b| b == b'0')
    }
}

/// What `git push -o ...` may ask for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushOptions {
    /// Move the branch, deploy nothing.
    pub no_deploy: bool,
    /// Restart the pushed instance instead of a graceful reload.
    pub restart: bool,
    /// Also restart the branch owner's Redis.
    pub restart_redis: bool,
    /// Restart every instance of the branch owner (all servers and Redis).
    pub restart_all: bool,
}

pub const PUSH_OPTIONS: &str = "no-deploy, restart, restart=redis, restart=all";

pub fn parse_push_options(opts: &[String]) -> Result<PushOptions, String> {
    let mut o = PushOptions::default();
    for opt in opts {
        match opt.as_str() {
            "no-deploy" => o.no_deploy = true,
            "restart" | "restart=server" => o.restart = true,
            "restart=redis" => o.restart_redis = true,
            "restart=all" => o.restart_all = true,
            other => return Err(format!("unknown push option `{other}`; hhl knows: {PUSH_OPTIONS}")),
        }
    }
    Ok(o)
}

/// Who is pushing: an identity, with the developer they are, if any.
pub struct Pusher<'a> {
    pub user: &'a str,
    pub owner: Option<&'a str>,
    pub admin: bool,
}

impl<'a> Pusher<'a> {
    pub fn new(model: &'a Model, user: &'a str) -> Pusher<'a> {
        let owner = model.developers.iter().find(|d| *d == user).map(String::as_str);
        let admin = model.access.is_admin(user);
        Pusher { user, owner, admin }
    }
}

/// Why `pusher` may not make `update` in `repo`, or None when they may.
pub fn refusal(model: &Model, repo: &Repo, pusher: &Pusher, update: &RefUpdate) -> Option<String> {
    let who = pusher.user;
    let Some(branch) = update.branch() else {
        return (!pusher.admin).then(|| {
            format!(
                "{}: only branches can be pushed here, not {}",
                repo.name, update.refname
            )
        });
    };
    match &repo.kind {
        RepoKind::Server(server) => {
            let shared = model
                .instances
                .iter()
                .any(|i| &i.server == server && i.developer == MASTER)
                && !model
                    .instances
                    .iter()
                    .any(|i| &i.server == server && i.developer != MASTER);
            let owners: Vec<&str> = model.owners().collect();
            if !owners.contains(&branch) && !update.is_delete() {
                return Some(format!(
                    "{}: branch `{branch}` is nobody's instance; push to your own branch (one of: {})",
                    repo.name,
                    owners.join(", ")
                ));
            }
            if shared && branch != MASTER && !update.is_delete() {
                return Some(format!(
                    "{server} is shared by everybody: only its `master` branch deploys (admins push it)"
                ));
            }
            if pusher.admin {
                return None;
            }
            if update.is_delete() {
                return Some(format!("{}: deleting branch `{branch}` is for admins", repo.name));
            }
            if branch == MASTER {
                return Some(format!(
                    "{}: `master` deploys the shared integration instance; only admins push it (you are `{who}`). Push to your own branch and ask an admin to merge",
                    repo.name
                ));
            }
            if pusher.owner != Some(branch) {
                let yours = match pusher.owner {
                    Some(o) => format!("push to `{o}`: git push <remote> HEAD:{o}"),
                    None => "you own no branch here".into(),
                };
                return Some(format!(
                    "{}: branch `{branch}` belongs to {branch}, and you are `{who}`; {yours}",
                    repo.name
                ));
            }
            None
        }
        RepoKind::Serverctrl | RepoKind::Lualib => (!pusher.admin).then(|| {
            format!(
                "{}: only admins push here (you are `{who}`); ask one (users.admins in hhl.yaml)",
                repo.name
            )
        }),
    }
}

/// The instance a branch of a server repository deploys to.
pub fn instance_for<'m>(model: &'m Model, server: &str, branch: &str) -> Option<&'m Instance> {
    model
        .instances
        .iter()
        .find(|i| i.kind == Kind::Openresty && i.server == server && i.developer == branch)
}

/// Where `inst`'s code comes from: its server's repository, and the branch named
/// after its developer (`master` for master's and shared servers' instances).
pub fn source_of(model: &Model, inst: &Instance) -> Option<(Repo, String)> {
    if inst.kind != Kind::Openresty {
        return None;
    }
    let repo = repos(model)
        .into_iter()
        .find(|r| r.kind == RepoKind::Server(inst.server.clone()))?;
    Some((repo, inst.developer.clone()))
}

/// The hook script git runs; all the logic is in `hhlctl hook`.
pub fn hook_script(hhlctl: &Path, config: &Path, hook: &str) -> String {
    format!(
        "#!/bin/sh\n# Installed by `hhlctl repo init`; run it again to update. The logic is in hhlctl.\nexec '{}' --config '{}' hook {hook}\n",
        hhlctl.display(),
        config.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::{self, Source};
    use crate::core::model::{build, Flavor};

    fn model() -> Model {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hhl.yaml"))
            .unwrap()
            .replace("admins: []", "admins: [lead]");
        let src = Source {
            path: "/etc/hhl/hhl.yaml".into(),
            text,
        };
        let raw = config::parse(&src.path, &src.text).unwrap();
        build(&raw, &src, Flavor::Debian).unwrap()
    }

    fn push(model: &Model, repo: &str, user: &str, branch: &str) -> Option<String> {
        let r = repos(model).into_iter().find(|r| r.name == repo).unwrap();
        let u = RefUpdate {
            old: "0".repeat(40),
            new: "1".repeat(40),
            refname: format!("refs/heads/{branch}"),
        };
        refusal(model, &r, &Pusher::new(model, user), &u)
    }

    #[test]
    fn a_developer_pushes_only_their_own_branch() {
        let m = model();
        assert_eq!(push(&m, "socketserver", "dev1", "dev1"), None);
        let no = push(&m, "socketserver", "dev1", "dev2").unwrap();
        assert!(no.contains("branch `dev2` belongs to dev2, and you are `dev1`"), "{no}");
        assert!(push(&m, "socketserver", "dev1", "master")
            .unwrap()
            .contains("only admins push it"));
        assert!(push(&m, "socketserver", "dev1", "feature")
            .unwrap()
            .contains("nobody's instance"));
        assert!(push(&m, "httpserver", "dev1", "dev1")
            .unwrap()
            .contains("shared by everybody"));
        assert!(push(&m, "serverctrl", "dev1", "master")
            .unwrap()
            .contains("only admins push here"));
        assert_eq!(push(&m, "socketserver", "lead", "dev2"), None);
        assert_eq!(push(&m, "serverctrl", "lead", "master"), None);
        assert_eq!(push(&m, "httpserver", "root", "master"), None);
    }

    #[test]
    fn tags_and_deletions_are_for_admins() {
        let m = model();
        let r = repos(&m).into_iter().find(|r| r.name == "socketserver").unwrap();
        let tag = RefUpdate::parse(&format!("{} {} refs/tags/v1", "0".repeat(40), "1".repeat(40))).unwrap();
        let no = refusal(&m, &r, &Pusher::new(&m, "dev1"), &tag).unwrap();
        assert_eq!(no, "socketserver: only branches can be pushed here, not refs/tags/v1");
        assert_eq!(refusal(&m, &r, &Pusher::new(&m, "lead"), &tag), None);
        let delete = RefUpdate::parse(&format!("{} {} refs/heads/dev1", "1".repeat(40), "0".repeat(40))).unwrap();
        let no = refusal(&m, &r, &Pusher::new(&m, "dev1"), &delete).unwrap();
        assert_eq!(no, "socketserver: deleting branch `dev1` is for admins");
    }

    #[test]
    fn push_options() {
        let o = parse_push_options(&["restart".into(), "restart=redis".into()]).unwrap();
        assert!(o.restart && o.restart_redis && !o.no_deploy);
        let e = parse_push_options(&["reboot".into()]).unwrap_err();
        assert!(
            e.contains("unknown push option `reboot`") && e.contains(PUSH_OPTIONS),
            "{e}"
        );
    }
}
