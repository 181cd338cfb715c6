//! What an ssh client asked for (SSH_ORIGINAL_COMMAND), parsed. Pure: no request is
//! authorized here (`access::may` does that), only recognised or refused.

use std::path::Path;

use crate::core::model::Model;
use crate::core::repos::{self, Repo};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `git push`: git-receive-pack '<repo>'.
    Receive(Repo),
    /// `git fetch` / `clone`: git-upload-pack '<repo>'.
    Upload(Repo),
    Help,
    Status(Vec<String>),
    Restart(Vec<String>),
    Reload(Vec<String>),
    Logs {
        follow: bool,
        lines: usize,
        names: Vec<String>,
    },
    Releases(Option<String>),
    /// The instance, and the kept release to make live (default: the one before).
    Rollback(String, Option<String>),
    Web,
    /// The Redis port and secret of an owner (a developer's own; admins name one).
    RedisSecret(Option<String>),
    /// Admin only.
    Start(Vec<String>),
    Stop(Vec<String>),
    Plan,
    Apply,
}

/// The developer command set, for `help` and refusals.
pub const HELP: &str = "\
commands (ssh <entry>@server <command>):
  status [INSTANCE…]            your instances: state, PID, memory, port answering
  restart [INSTANCE…]           restart your instances (default: all of yours)
  reload [INSTANCE…]            graceful reload (nginx config test, then HUP)
  logs [-f] [-n N] [INSTANCE…]  your instances' logs; -f follows
  releases [INSTANCE]           the kept releases of an OpenResty instance
  rollback INSTANCE [RELEASE]   back to the release before the current one (or RELEASE)
  web                           a one-time sign-in link for the console (it opens
                                through your forward: ssh -N -L 8080:127.0.0.1:8080 <entry>@server)
  redis-secret                  your Redis's port and secret (for redis-cli and tools)
  help                          this text
git: git push/fetch <entry>@server:<repo> (socketserver, lualib, …)";

pub const ADMIN_HELP: &str = "\
admin commands:
  start|stop [INSTANCE…]        any instance (or --all)
  plan                          what apply would change
  apply                         make the host match serverctrl's hhl.yaml";

/// Longest command line accepted: far above any real one.
const MAX_LEN: usize = 4096;

pub fn parse(model: &Model, line: &str) -> Result<Request, String> {
    if line.len() > MAX_LEN {
        return Err(format!("command longer than {MAX_LEN} bytes"));
    }
    if let Some(c) = line.chars().find(|c| c.is_control()) {
        return Err(format!("the command contains the control character U+{:04X}", c as u32));
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    let Some((&verb, args)) = words.split_first() else {
        return Ok(Request::Help);
    };
    let names = |args: &[&str]| -> Result<Vec<String>, String> {
        match args.iter().find(|a| a.starts_with('-') && **a != "--all") {
            Some(a) => Err(format!("{verb}: unknown option `{a}`")),
            None => Ok(args.iter().map(|a| a.to_string()).collect()),
        }
    };
    match verb {
        "git-receive-pack" | "git-upload-pack" => {
            let [arg] = args else {
                return Err(format!("{verb} takes one repository"));
            };
            let repo = repo_named(model, arg)?;
            Ok(if verb == "git-receive-pack" {
                Request::Receive(repo)
            } else {
                Request::Upload(repo)
            })
        }
        "help" | "--help" | "-h" => Ok(Request::Help),
        "status" => Ok(Request::Status(names(args)?)),
        "restart" => Ok(Request::Restart(names(args)?)),
        "reload" => Ok(Request::Reload(names(args)?)),
        "start" => Ok(Request::Start(names(args)?)),
        "stop" => Ok(Request::Stop(names(args)?)),
        "logs" => {
            let (mut follow, mut lines, mut rest) = (false, 50usize, Vec::new());
            let mut it = args.iter();
            while let Some(a) = it.next() {
                match *a {
                    "-f" | "--follow" => follow = true,
                    "-n" | "--lines" => {
                        let n = it.next().ok_or("logs: -n needs a number")?;
                        lines = n
                            .parse()
                            .ok()
                            .filter(|n| (1..=100_000).contains(n))
                            .ok_or_else(|| format!("logs: -n `{n}` is not a number from 1 to 100000"))?;
                    }
                    a if a.starts_with('-') => return Err(format!("logs: unknown option `{a}`")),
                    a => rest.push(a.to_string()),
                }
            }
            Ok(Request::Logs {
                follow,
                lines,
                names: rest,
            })
        }
        "releases" => match args {
            [] => Ok(Request::Releases(None)),
            [one] if !one.starts_with('-') => Ok(Request::Releases(Some(one.to_string()))),
            _ => Err("releases takes at most one instance".into()),
        },
        "rollback" => match args {
            [one] if !one.starts_with('-') => Ok(Request::Rollback(one.to_string(), None)),
            [one, to] if !one.starts_with('-') && !to.starts_with('-') => {
                Ok(Request::Rollback(one.to_string(), Some(to.to_string())))
            }
            _ => Err("rollback takes an instance and maybe a release: rollback socketserver-<you> [RELEASE]".into()),
        },
        "web" if args.is_empty() => Ok(Request::Web),
        "redis-secret" => match args {
            [] => Ok(Request::RedisSecret(None)),
            [one] if !one.starts_with('-') => Ok(Request::RedisSecret(Some(one.to_string()))),
            _ => Err("redis-secret takes at most one owner".into()),
        },
        "plan" if args.is_empty() => Ok(Request::Plan),
        "apply" if args.is_empty() => Ok(Request::Apply),
        "web" | "plan" | "apply" => Err(format!("{verb} takes no arguments")),
        other => Err(format!(
            "`{}` is not a command here; this account runs hhl's commands only (`help` lists them)",
            crate::core::error::excerpt(other)
        )),
    }
}

/// The repository git asked for: `'socketserver'`, `'socketserver.git'`,
/// `'/socketserver.git'` or its full path under git.root. Only names of hhl's own
/// repositories match; anything else (`/etc`, `../x`) is refused.
fn repo_named(model: &Model, arg: &str) -> Result<Repo, String> {
    let unquoted = arg.strip_prefix('\'').and_then(|a| a.strip_suffix('\'')).unwrap_or(arg);
    let full = Path::new(unquoted);
    let name = unquoted.trim_start_matches('/');
    let name = name.strip_suffix(".git").unwrap_or(name);
    repos::repos(model)
        .into_iter()
        .find(|r| r.name == name || r.path == full)
        .ok_or_else(|| {
            let names: Vec<String> = repos::repos(model).into_iter().map(|r| r.name).collect();
            format!(
                "no repository `{}` here; the repositories are: {}",
                crate::core::error::excerpt(unquoted),
                names.join(", ")
            )
        })
}

#[cfg(test)]
mod rollback_tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn rollback_takes_an_instance_and_maybe_a_release() {
        let text = "developers: [dev1]\nservers: {}\n".to_string();
        let path = PathBuf::from("h.yaml");
        let raw = crate::core::config::parse(&path, &text).unwrap();
        let m = crate::core::model::build(
            &raw,
            &crate::core::config::Source { path, text },
            crate::core::model::Flavor::Debian,
        )
        .unwrap();
        assert_eq!(
            parse(&m, "rollback socketserver-dev1"),
            Ok(Request::Rollback("socketserver-dev1".into(), None))
        );
        assert_eq!(
            parse(&m, "rollback socketserver-dev1 1795695114.503-cbe0cf30b09d"),
            Ok(Request::Rollback(
                "socketserver-dev1".into(),
                Some("1795695114.503-cbe0cf30b09d".into())
            ))
        );
        for bad in ["rollback", "rollback a b c", "rollback a --to"] {
            assert_eq!(
                parse(&m, bad).unwrap_err(),
                "rollback takes an instance and maybe a release: rollback socketserver-<you> [RELEASE]",
                "{bad}"
            );
        }
    }
}
