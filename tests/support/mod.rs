//! Shared test helpers: run the real hhlctl binary in a temp dir.
#![allow(dead_code)]

pub mod browser;
pub mod container;
pub mod entry;
pub mod multihost;
pub mod web;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_hhlctl");

/// The smallest useful hhl.yaml: one developer, one logic server, Redis.
pub const MINI: &str = "\
developers: [dev1]
servers:
  socketserver:
    template: builtin:socketserver
    values:
      master: {port: 1080, worker_processes: 1, worker_connections: 64, error_log_level: info, lua_code_cache: 'off', server_name: localhost}
      dev1: {port: 1081}
redis:
  template: builtin:redis
  values:
    master: {port: 6379, bind: 127.0.0.1, loglevel: notice, databases: 16, appendonly: 'no'}
    dev1: {port: 6381}
";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn example_yaml() -> String {
    fs::read_to_string(repo().join("examples/hhl.yaml")).unwrap()
}

/// The example with every path moved under `base`, so configs can be tested for real.
pub fn example_under(base: &Path) -> String {
    let b = base.display();
    example_yaml()
        .replace("hhl_root: /opt/hhl ", &format!("hhl_root: {b}/opt/hhl "))
        .replace(
            "redis_conf_dir: /opt/redis/etc",
            &format!("redis_conf_dir: {b}/opt/redis/etc"),
        )
        .replace(
            "redis_data_dir: /opt/redis/var",
            &format!("redis_data_dir: {b}/opt/redis/var"),
        )
        .replace("lua_lib_dir: /opt/hhl/lib", &format!("lua_lib_dir: {b}/opt/hhl/lib"))
        .replace(
            "unit_dir: /etc/systemd/system",
            &format!("unit_dir: {b}/etc/systemd/system"),
        )
        .replace("state_dir: /var/lib/hhl", &format!("state_dir: {b}/var/lib/hhl"))
        .replace(
            "polkit_rules: /etc/polkit-1",
            &format!("polkit_rules: {b}/etc/polkit-1"),
        )
        .replace("log_dir: /var/log/hhl", &format!("log_dir: {b}/var/log/hhl"))
        .replace(
            "rsyslog_conf: /etc/rsyslog.d",
            &format!("rsyslog_conf: {b}/etc/rsyslog.d"),
        )
        .replace("flavor: auto", "flavor: debian")
}

pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path().join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, text).unwrap();
        p
    }
    /// hhlctl with `hhl.yaml` of this sandbox as its config.
    pub fn run(&self, args: &[&str]) -> Run {
        Command::new(BIN)
            .current_dir(self.path())
            .env("HHL_CONFIG", self.path().join("hhl.yaml"))
            .env_remove("HHL_ROOT")
            .args(args)
            .output()
            .unwrap()
            .into()
    }
}

/// A shell command running `redis-cli -p PORT ARGS` as the Redis's owner: with the
/// first owner's secret (hhlctl's, under /var/lib/hhl/redis) that port accepts.
#[allow(dead_code)]
pub fn redis_cli(port: u16, args: &str) -> String {
    format!(
        "for s in /var/lib/hhl/redis/*.secret; do r=$(REDISCLI_AUTH=$(cat $s) redis-cli -p {port} {args} 2>&1); \
         case \"$r\" in *WRONGPASS*) continue;; esac; break; done; printf '%s\\n' \"$r\""
    )
}

/// The fenced blocks of `page` (a path in the repository) whose info string is `info`
/// (e.g. `sh tested`), in order, indented ones (in a list item) included: what the
/// page tells its reader to run.
pub fn blocks(page: &str, info: &str) -> Vec<String> {
    let text = fs::read_to_string(repo().join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    // A block inside a list item is indented: its lines lose the fence's indentation.
    let mut indent = 0;
    for line in text.lines() {
        let fence = line.trim_start().strip_prefix("```");
        match (&mut current, fence) {
            (None, Some(rest)) if rest.trim() == info => {
                indent = line.len() - line.trim_start().len();
                current = Some(String::new());
            }
            (Some(body), Some("")) => {
                out.push(std::mem::take(body));
                current = None;
            }
            (Some(body), _) => {
                let cut = line.len() - line.trim_start().len();
                body.push_str(&line[cut.min(indent)..]);
                body.push('\n');
            }
            _ => {}
        }
    }
    assert!(current.is_none(), "{page}: a `{info}` block is not closed");
    out
}

/// Retry `attempt` until it succeeds (exit 0), at most `secs` seconds; fail the test
/// with `what` and the last attempt's output otherwise.
#[track_caller]
#[allow(dead_code)]
pub fn eventually(what: &str, secs: u64, mut attempt: impl FnMut() -> Run) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let r = attempt();
        if r.code == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not after {secs} s (exit {})\n{}\n{}",
            r.code,
            r.stdout,
            r.stderr
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
