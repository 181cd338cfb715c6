//! The check after a deploy's reload (`core::smoke`): one request to the instance on
//! loopback, then the error lines its new workers wrote to the journal since the
//! reload began. A clean deploy costs the request and one journalctl; an answer of 500
//! or none waits, at most `WINDOW`, for the error lines to reach the journal.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::core::model::Instance;
use crate::core::smoke;

/// How long the request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a failing answer waits for its error lines.
pub const WINDOW: Duration = Duration::from_millis(1000);
/// Most of an answer read.
const MAX_ANSWER: usize = 64 << 10;

/// Before the reload: when, and which workers were there (their lines are the old code's).
pub struct Before {
    since: SystemTime,
    old: HashSet<u32>,
}

/// Note the time, the nginx master (the unit's main PID, 0 when not running) and its
/// current workers: lines of those are not the new code's (the master's, on a reload,
/// are about the config it re-read, such as `lua_code_cache is off`; a config it
/// refuses fails the reload).
pub fn before(master: u32) -> Before {
    let since = SystemTime::now();
    let old = (master != 0)
        .then_some(master)
        .map(|m| {
            let mut old: HashSet<u32> = crate::host::systemd::workers::children(&[m])
                .into_values()
                .flatten()
                .collect();
            old.insert(m);
            old
        })
        .unwrap_or_default();
    Before { since, old }
}

pub struct Checked {
    /// The request and its answer: `GET / → 500`, or why there was none.
    pub answer: String,
    /// The answer was a server error, or there was none.
    pub failed: bool,
    /// The new workers' error lines (`file:line` as in the repository).
    pub errors: Vec<String>,
}

/// Request `path` of `inst`, then read its new workers' error lines.
pub fn check(inst: &Instance, path: &str, before: &Before) -> Checked {
    let (answer, failed) = match get(inst.port, path) {
        Ok(code) => (format!("GET {path} → {code}"), code >= 500),
        Err(e) => (format!("GET {path}: {e}"), true),
    };
    let src = inst.src_dir().display().to_string();
    let read = || smoke::error_lines(&journal_since(&inst.unit(), before.since), &before.old, &src);
    let mut errors = read();
    if failed {
        let deadline = Instant::now() + WINDOW;
        while errors.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            errors = read();
        }
        if !errors.is_empty() {
            // The rest of a traceback, written a moment after its first line.
            std::thread::sleep(Duration::from_millis(50));
            errors = read();
        }
    }
    Checked { answer, failed, errors }
}

fn get(port: u16, path: &str) -> Result<u16, String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut conn = TcpStream::connect_timeout(&addr, REQUEST_TIMEOUT).map_err(|e| format!("no connection ({e})"))?;
    conn.set_read_timeout(Some(REQUEST_TIMEOUT))
        .map_err(|e| e.to_string())?;
    conn.set_write_timeout(Some(REQUEST_TIMEOUT))
        .map_err(|e| e.to_string())?;
    conn.write_all(smoke::request(path, port).as_bytes())
        .map_err(|e| format!("sending the request: {e}"))?;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 8192];
    // To the end (Connection: close), so the handler finishes before the journal is read.
    loop {
        match conn.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&chunk[..n]);
                if answer.len() >= MAX_ANSWER {
                    break;
                }
            }
            Err(e) if answer.is_empty() => {
                return Err(format!("no answer within {} s ({e})", REQUEST_TIMEOUT.as_secs()))
            }
            Err(_) => break,
        }
    }
    smoke::status(&answer).ok_or_else(|| "the answer is not HTTP".to_string())
}

/// The unit's journal since `since`, to the microsecond (a line of the second before
/// the reload, from a worker gone before it, is not the new code's), as JSON lines;
/// empty if it cannot be read. The PID filter drops the old workers' later lines.
fn journal_since(unit: &str, since: SystemTime) -> String {
    let d = since.duration_since(UNIX_EPOCH).unwrap_or_default();
    crate::host::child::output(
        Command::new("journalctl")
            .args(["--no-pager", "-q", "-o", "json", "-n", "500", "-u", unit])
            .arg(format!("--since=@{}.{:06}", d.as_secs(), d.subsec_micros())),
        crate::host::child::JOURNAL,
    )
    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    .unwrap_or_default()
}
