//! After a deploy's reload, one request to the instance (its server's `smoke_path`,
//! default `/`: the built-in templates send every path to `src/main.lua`) and the new
//! workers' error lines from the journal, so that a runtime error (a nil index, a
//! failing `require`) shows at push time, with `file:line` as in the repository. Pure:
//! the request's text, the answer's status, and the journal's lines as the pusher
//! reads them.

use std::collections::HashSet;

use serde_json::Value;

use crate::core::model::Instance;

/// What a server's values say about the check: `smoke_path: /hhl`, or `""` for none.
pub const KEY: &str = "smoke_path";
/// Without the key.
pub const DEFAULT_PATH: &str = "/";
/// Most lines shown: the first errors matter, the rest is in `logs`.
pub const MAX_LINES: usize = 20;
/// Lines shown after one error line (its stack traceback).
const MAX_CONTINUATION: usize = 6;

/// The path to request, `None` when the check is off; `Err` says what is wrong with it.
pub fn path(inst: &Instance) -> Result<Option<String>, String> {
    match inst.values.get(KEY) {
        None => Ok(Some(DEFAULT_PATH.to_string())),
        Some(Value::String(p)) if p.is_empty() => Ok(None),
        Some(Value::String(p)) if p.starts_with('/') && p.len() <= 1024 && p.bytes().all(|b| b.is_ascii_graphic()) => {
            Ok(Some(p.clone()))
        }
        Some(other) => Err(format!(
            "{}: {KEY} {other} is not a path (`/hhl`, or \"\" for no check after a deploy)",
            inst.name
        )),
    }
}

/// The request: HTTP/1.1, closed after the answer.
pub fn request(path: &str, port: u16) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: hhl-push-check\r\nConnection: close\r\n\r\n")
}

/// The status code of an answer's first line (`HTTP/1.1 500 Internal Server Error`).
pub fn status(head: &[u8]) -> Option<u16> {
    let line = head.split(|b| *b == b'\n').next()?;
    let text = std::str::from_utf8(line).ok()?;
    let mut words = text.split_whitespace();
    words.next().filter(|w| w.starts_with("HTTP/"))?;
    words.next()?.parse().ok()
}

/// nginx's levels that count as errors.
fn is_error(msg: &str) -> bool {
    ["[error]", "[crit]", "[alert]", "[emerg]"]
        .iter()
        .any(|l| msg.contains(l))
}

/// `2026/12/06 08:00:00 [error] 123#123: *4 text` → `[error] text`; `None` for a line
/// that does not start with nginx's date (a continuation: a stack traceback).
fn strip_nginx_prefix(msg: &str) -> Option<String> {
    let b = msg.as_bytes();
    let dated = b.len() > 20 && b[4] == b'/' && b[7] == b'/' && b[10] == b' ' && b[13] == b':';
    if !dated {
        return None;
    }
    let rest = &msg[20..];
    let (level, after) = rest.split_once(' ').unwrap_or((rest, ""));
    // `123#123: ` then maybe `*4 ` (the connection).
    let after = after.split_once(": ").map(|(_, a)| a).unwrap_or(after);
    let after = match after.strip_prefix('*') {
        Some(a) => a.split_once(' ').map(|(_, a)| a).unwrap_or(a),
        None => after,
    };
    Some(format!("{level} {after}"))
}

/// Drop nginx's `, client: …, server: …, request: …` tail.
fn without_request_tail(s: &str) -> &str {
    s.find(", client: ").map(|i| &s[..i]).unwrap_or(s)
}

/// The error lines, and their tracebacks, in `journalctl -o json` output, of processes
/// other than `old` (the workers before the reload), with `src_dir/` cut from paths
/// so they read as in the repository. At most `MAX_LINES`, repeats once.
/// nginx's config-file notices end with ` in <file>.conf:<line>`.
fn is_config_notice(msg: &str) -> bool {
    msg.trim_end()
        .rsplit_once(" in ")
        .and_then(|(_, at)| at.rsplit_once(':'))
        .is_some_and(|(file, line)| {
            file.ends_with(".conf") && !line.is_empty() && line.bytes().all(|b| b.is_ascii_digit())
        })
}

pub fn error_lines(journal_json: &str, old: &HashSet<u32>, src_dir: &str) -> Vec<String> {
    let prefix = format!("{}/", src_dir.trim_end_matches('/'));
    let mut out: Vec<String> = Vec::new();
    let mut seen = HashSet::new();
    // The PID whose error is being continued, and how many lines it got.
    let mut open: Option<(u32, usize)> = None;
    for line in journal_json.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let pid: u32 = v["_PID"].as_str().and_then(|p| p.parse().ok()).unwrap_or(0);
        if old.contains(&pid) {
            continue;
        }
        let msg = match &v["MESSAGE"] {
            Value::String(s) => s.clone(),
            // Not UTF-8: journald gives bytes.
            Value::Array(a) => String::from_utf8_lossy(
                &a.iter()
                    .filter_map(|b| b.as_u64().map(|b| b as u8))
                    .collect::<Vec<u8>>(),
            )
            .into_owned(),
            _ => continue,
        };
        let msg = msg.replace(&prefix, "");
        // A notice about the config nginx re-read (`lua_code_cache is off; … in
        // …/nginx.conf:33`) is the master's, not the new code's: a config it refuses
        // fails the reload itself. (Its stderr lines all carry the launcher's PID, so the
        // PID filter cannot tell.)
        if is_config_notice(&msg) {
            continue;
        }
        match strip_nginx_prefix(&msg) {
            Some(text) if is_error(&msg) => {
                let text = without_request_tail(&text).to_string();
                if seen.insert(text.clone()) {
                    out.push(text);
                    open = Some((pid, 0));
                } else {
                    open = None;
                }
            }
            Some(_) => open = None,
            None => {
                if let Some((p, n)) = open.as_mut() {
                    if *p == pid && *n < MAX_CONTINUATION {
                        out.push(format!("  {}", without_request_tail(msg.trim_end())));
                        *n += 1;
                    }
                }
            }
        }
        if out.len() >= MAX_LINES {
            out.truncate(MAX_LINES);
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(pid: u32, msg: &str) -> String {
        serde_json::json!({"_PID": pid.to_string(), "MESSAGE": msg}).to_string()
    }

    #[test]
    fn status_of_an_answer() {
        assert_eq!(
            status(b"HTTP/1.1 500 Internal Server Error\r\nServer: nginx\r\n"),
            Some(500)
        );
        assert_eq!(status(b"HTTP/1.0 404 Not Found\r\n"), Some(404));
        assert_eq!(status(b"garbage\r\n"), None);
        assert_eq!(status(b""), None);
        assert_eq!(
            request("/hhl", 1081),
            "GET /hhl HTTP/1.1\r\nHost: 127.0.0.1:1081\r\nUser-Agent: hhl-push-check\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn new_workers_errors_with_file_and_line() {
        let src = "/opt/hhl/socketserver/dev1/src";
        let journal = [
            entry(10, "2026/12/06 08:00:00 [error] 10#10: *1 old worker's error, client: 1.2.3.4"),
            entry(20, "2026/12/06 08:00:01 [notice] 20#20: signal process started"),
            entry(21, "2026/12/06 08:00:01 [error] 21#21: *7 lua entry thread aborted: runtime error: /opt/hhl/socketserver/dev1/src/main.lua:3: attempt to index a nil value (global 'cfg')"),
            entry(21, "stack traceback:"),
            entry(21, "coroutine 0:"),
            entry(21, "\t/opt/hhl/socketserver/dev1/src/main.lua: in main chunk, client: 127.0.0.1, server: localhost, request: \"GET / HTTP/1.1\", host: \"127.0.0.1:1081\""),
            entry(21, "2026/12/06 08:00:01 [info] 21#21: *7 client closed connection"),
            entry(22, "2026/12/06 08:00:02 [error] 22#22: *9 lua entry thread aborted: runtime error: /opt/hhl/socketserver/dev1/src/main.lua:3: attempt to index a nil value (global 'cfg')"),
            entry(21, "not a continuation any more"),
        ]
        .join("\n");
        let old: HashSet<u32> = [10].into();
        assert_eq!(
            error_lines(&journal, &old, src),
            vec![
                "[error] lua entry thread aborted: runtime error: main.lua:3: attempt to index a nil value (global 'cfg')",
                "  stack traceback:",
                "  coroutine 0:",
                "  \tmain.lua: in main chunk",
            ]
        );
        assert!(error_lines(&entry(30, "2026/12/06 08:00:01 [info] 30#30: fine"), &old, src).is_empty());
        let many: String = (0..50)
            .map(|n| entry(40, &format!("2026/12/06 08:00:01 [error] 40#40: error {n}")))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(error_lines(&many, &old, src).len(), MAX_LINES);
    }

    #[test]
    fn config_notices_of_a_reload_are_not_the_new_codes_errors() {
        let line =
            |pid: u32, msg: &str| serde_json::json!({ "_PID": pid.to_string(), "MESSAGE": msg }).to_string() + "\n";
        let journal = line(7, "nginx: [alert] lua_code_cache is off; this will hurt performance in /opt/hhl/socketserver/dev1/conf/nginx.conf:33")
            + &line(8, "2026/12/06 10:00:00 [error] 8#8: *1 lua entry thread aborted: runtime error: /opt/hhl/socketserver/dev1/src/main.lua:2: boom");
        let found = error_lines(&journal, &HashSet::new(), "/opt/hhl/socketserver/dev1/src");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("main.lua:2: boom"), "{found:?}");
        assert!(is_config_notice("nginx: [warn] x in /etc/nginx.conf:3"));
        assert!(!is_config_notice("[error] failed in main.lua:3"));
    }
}
