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
    /// `status [--json] [INSTANCE…]`.
    Status(Vec<String>, bool),
    Restart(Vec<String>),
    Reload(Vec<String>),
    Logs {
        follow: bool,
        lines: usize,
        names: Vec<String>,
        /// `--level`: this level and more severe (0 emerg .. 7 debug).
        level: Option<u8>,
        /// `--since`: journalctl's argument (`--since=-1h`).
        since: Option<String>,
    },
    /// The branch head of each instance, when it is not live.
    Deploy(Vec<String>),
    /// `releases [--json] [INSTANCE]`.
    Releases(Option<String>, bool),
    /// The instance, and the kept release to make live (default: the one before).
    Rollback(String, Option<String>),
    Web,
    /// The Redis port and secret of an owner (a developer's own; admins name one).
    RedisSecret(Option<String>),
    /// One command on an owner's Redis (the caller's own; admins may name one with
    /// `--owner`), its words split as redis-cli splits a line.
    Redis {
        owner: Option<String>,
        words: Vec<Vec<u8>>,
    },
    /// Admin only.
    Start(Vec<String>),
    Stop(Vec<String>),
    Plan,
    Apply,
}

/// The developer command set, for `help` and refusals.
pub const HELP: &str = "\
commands (ssh <entry>@server <command>):
  status [--json] [INSTANCE…]   your instances: state, PID, memory, port answering
  restart [INSTANCE…]           restart your instances (default: all of yours)
  reload [INSTANCE…]            graceful reload (nginx config test, then HUP)
  logs [-f] [-n N] [--level L] [--since T] [INSTANCE…]
                                your instances' logs; -f follows; L: err, warn,
                                notice, info, debug (and more severe); T: 15m, 1h,
                                6h, 1d, 7d (the console's filters)
  deploy [INSTANCE…]            deploy your branch's head where it is not live (after a failed push)
  releases [--json] [INSTANCE]  the kept releases of an OpenResty instance
  rollback INSTANCE [RELEASE]   back to the release before the current one (or RELEASE)
  web                           a one-time sign-in link for the console (it opens
                                through your forward: ssh -N -L 8080:127.0.0.1:8080 <entry>@server)
  redis CMD [ARG…]              one command on your own Redis, e.g. redis GET k
                                (quote for ssh: 'redis SET k \"a b\"')
  redis-secret                  your Redis's port and secret (for redis-cli and tools
                                through ssh -N -L PORT:127.0.0.1:PORT)
  help                          this text
git: git push/fetch <entry>@server:<repo> (socketserver, lualib, …)";

pub const ADMIN_HELP: &str = "\
admin commands:
  start|stop [INSTANCE…]        any instance (or --all)
  redis --owner OWNER CMD …     a command on anyone's Redis
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
        "status" => {
            let json = args.contains(&"--json");
            let rest: Vec<&str> = args.iter().copied().filter(|a| *a != "--json").collect();
            Ok(Request::Status(names(&rest)?, json))
        }
        "restart" => Ok(Request::Restart(names(args)?)),
        "reload" => Ok(Request::Reload(names(args)?)),
        "deploy" => Ok(Request::Deploy(names(args)?)),
        "start" => Ok(Request::Start(names(args)?)),
        "stop" => Ok(Request::Stop(names(args)?)),
        "logs" => {
            let (mut follow, mut lines, mut rest) = (false, 50usize, Vec::new());
            let (mut level, mut since) = (None, None);
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
                    "--level" | "-l" => {
                        let l = it.next().ok_or("logs: --level needs a level: err, warn, info, …")?;
                        level = Some(crate::core::log_entry::parse_level(l)?);
                    }
                    "--since" | "-S" => {
                        let s = it.next().ok_or("logs: --since needs a time: 15m, 1h, 6h, 1d, 7d")?;
                        since = Some(crate::core::log_entry::parse_since(s)?);
                    }
                    a if a.starts_with('-') => return Err(format!("logs: unknown option `{a}`")),
                    a => rest.push(a.to_string()),
                }
            }
            Ok(Request::Logs {
                follow,
                lines,
                names: rest,
                level,
                since,
            })
        }
        "releases" => {
            let json = args.contains(&"--json");
            let rest: Vec<&str> = args.iter().copied().filter(|a| *a != "--json").collect();
            match rest.as_slice() {
                [] => Ok(Request::Releases(None, json)),
                [one] if !one.starts_with('-') => Ok(Request::Releases(Some(one.to_string()), json)),
                _ => Err("releases takes at most one instance (and --json)".into()),
            }
        }
        "rollback" => match args {
            [one] if !one.starts_with('-') => Ok(Request::Rollback(one.to_string(), None)),
            [one, to] if !one.starts_with('-') && !to.starts_with('-') => {
                Ok(Request::Rollback(one.to_string(), Some(to.to_string())))
            }
            _ => Err("rollback takes an instance and maybe a release: rollback socketserver-<you> [RELEASE]".into()),
        },
        "web" if args.is_empty() => Ok(Request::Web),
        "redis" => {
            // The rest of the line as written: redis-cli's quoting, not blanks alone.
            let rest = line.trim_start()["redis".len()..].to_string();
            let mut words = crate::core::redis_cmd::split(&rest)?;
            let mut owner = None;
            if words.first().is_some_and(|w| w == b"--owner") {
                let name = words
                    .get(1)
                    .map(|w| String::from_utf8_lossy(w).into_owned())
                    .ok_or("redis: --owner needs a name: redis --owner dev1 GET k")?;
                owner = Some(name);
                words.drain(..2);
            }
            if let Some(w) = words.first().filter(|w| w.starts_with(b"-")) {
                return Err(format!(
                    "redis: unknown option `{}` (the only one is --owner, for admins)",
                    crate::core::error::excerpt(&String::from_utf8_lossy(w))
                ));
            }
            Ok(Request::Redis { owner, words })
        }
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
mod redis_tests {
    use std::path::PathBuf;

    use super::*;

    fn model() -> Model {
        let text = "developers: [dev1]\nservers: {}\n".to_string();
        let path = PathBuf::from("h.yaml");
        let raw = crate::core::config::parse(&path, &text).unwrap();
        crate::core::model::build(
            &raw,
            &crate::core::config::Source { path, text },
            crate::core::model::Flavor::Debian,
        )
        .unwrap()
    }

    #[test]
    fn redis_takes_the_line_as_redis_cli_splits_it() {
        let m = model();
        let w = |v: &[&str]| v.iter().map(|s| s.as_bytes().to_vec()).collect::<Vec<_>>();
        assert_eq!(
            parse(&m, "redis SET k \"a b\""),
            Ok(Request::Redis {
                owner: None,
                words: w(&["SET", "k", "a b"])
            })
        );
        assert_eq!(
            parse(&m, "  redis --owner dev2 GET k"),
            Ok(Request::Redis {
                owner: Some("dev2".into()),
                words: w(&["GET", "k"])
            })
        );
        assert_eq!(
            parse(&m, "redis"),
            Ok(Request::Redis {
                owner: None,
                words: vec![]
            })
        );
        assert_eq!(
            parse(&m, "redis --owner").unwrap_err(),
            "redis: --owner needs a name: redis --owner dev1 GET k"
        );
        assert_eq!(
            parse(&m, "redis -p 6382 GET k").unwrap_err(),
            "redis: unknown option `-p` (the only one is --owner, for admins)"
        );
        assert_eq!(
            parse(&m, "redis GET 'k").unwrap_err(),
            "redis: a 'quoted' argument is not closed"
        );
        // logs: the console's filters, checked here.
        assert_eq!(
            parse(&m, "logs --level err --since 1h -n 5 socketserver-dev1"),
            Ok(Request::Logs {
                follow: false,
                lines: 5,
                names: vec!["socketserver-dev1".into()],
                level: Some(3),
                since: Some("--since=-1h".into()),
            })
        );
        assert!(parse(&m, "logs --level").unwrap_err().contains("--level needs a level"));
        assert!(parse(&m, "logs --since 2y")
            .unwrap_err()
            .contains("is not one of 15m, 1h, 6h, 1d, 7d"));
        assert!(parse(&m, "logs --level loud").unwrap_err().contains("is not a level"));
        // A word that merely starts like the verb is not it.
        assert!(parse(&m, "redisx GET k").unwrap_err().contains("is not a command here"));
    }
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
        assert_eq!(parse(&m, "deploy"), Ok(Request::Deploy(vec![])));
        assert_eq!(
            parse(&m, "deploy socketserver-dev1"),
            Ok(Request::Deploy(vec!["socketserver-dev1".into()]))
        );
        assert_eq!(
            parse(&m, "deploy --force").unwrap_err(),
            "deploy: unknown option `--force`"
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
