//! The journal, through journalctl (journald has no D-Bus API for reading logs).

use std::collections::HashSet;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

/// How far back a failure report looks for the lines that explain it.
const LOOK_BACK: usize = 300;
/// At most this many distinct error lines are shown above the last lines.
const MAX_ERRORS: usize = 8;

/// The lines explaining why `unit` failed, for failure reports: the distinct error
/// lines of its recent journal (a crash loop buries nginx's one `[alert]` under
/// systemd's restart messages), then its last `n` lines.
pub fn last_lines(unit: &str, n: usize) -> String {
    lines_since(unit, n, None)
}

/// `last_lines`, of what `unit` logged from `since` on (a job or reload begun then):
/// the report of one failure never shows the lines of an older one.
pub fn lines_since(unit: &str, n: usize, since: Option<SystemTime>) -> String {
    if !readable() {
        return "(this account may not read the system journal, so the reason is not shown here; ask an admin)\n"
            .into();
    }
    let since_arg = since.map(|t| {
        let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        format!("--since=@{}.{:06}", d.as_secs(), d.subsec_micros())
    });
    let journalctl = |args: &[&str]| -> Result<String, String> {
        crate::host::child::output(
            Command::new("journalctl")
                .args(["--no-pager", "-q", "-u", unit])
                .args(since_arg.iter())
                .args(args),
            crate::host::child::JOURNAL,
        )
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .map_err(|e| format!("({e:#})\n"))
    };
    let tail = match journalctl(&["-o", "short-iso", "-n", &n.to_string()]) {
        Ok(t) if t.trim().is_empty() && since.is_some() => {
            return "(nothing in its journal since the reload or job began)\n".into()
        }
        Ok(t) => t,
        Err(e) => return e,
    };
    let recent = journalctl(&["-o", "json", "-n", &LOOK_BACK.to_string()]).unwrap_or_default();
    let errors = explaining(&recent, &tail, MAX_ERRORS);
    if errors.is_empty() {
        return tail;
    }
    let mut out = String::from("errors logged recently:\n");
    for e in errors {
        out.push_str(&format!("  {e}\n"));
    }
    out.push_str("last lines:\n");
    out.push_str(&tail);
    out
}

/// From journalctl's `-o json` lines, the error lines (journal priority err or worse,
/// or nginx's `[error]`/`[crit]`/`[alert]`/`[emerg]` and Redis's ` # ` warnings on
/// stdout/stderr, which the journal stores as info) as `IDENT[PID]: MESSAGE`, newest `max` distinct ones (repeats of a
/// crash loop differ only in numbers), oldest first; none already in `shown`.
pub fn explaining(json_lines: &str, shown: &str, max: usize) -> Vec<String> {
    // Repeats of a crash loop differ only in numbers (pids, times).
    let key = |t: &str| -> String { t.chars().filter(|c| !c.is_ascii_digit()).collect() };
    let shown = key(shown);
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for line in json_lines.lines().rev() {
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let field = |k: &str| entry.get(k).and_then(|v| v.as_str()).unwrap_or("");
        let message = field("MESSAGE");
        let priority: u8 = field("PRIORITY").parse().unwrap_or(6);
        if message.is_empty() || (priority > 3 && !is_error_text(message)) {
            continue;
        }
        let k = key(message);
        if shown.contains(&k) || !seen.insert(k) {
            continue;
        }
        let ident = match field("SYSLOG_IDENTIFIER") {
            "" => field("_COMM"),
            i => i,
        };
        let pid = match field("_PID") {
            "" => String::new(),
            p => format!("[{p}]"),
        };
        out.push(format!("{ident}{pid}: {message}"));
        if out.len() == max {
            break;
        }
    }
    out.reverse();
    out
}

/// An error in a program's own words, written to stdout/stderr (which the journal
/// stores as info; see `is_error_text`): nginx's level in brackets, or a Redis warning (` # `) that says
/// something failed (Redis also marks its start-up banner with `#`).
fn is_error_text(message: &str) -> bool {
    if ["[error]", "[crit]", "[alert]", "[emerg]", "FATAL"]
        .iter()
        .any(|l| message.contains(l))
    {
        return true;
    }
    message.split_once(" # ").is_some_and(|(_, text)| {
        ["rror", "ail", "ould not", "an't", "annot", "in use", "denied", "abort"]
            .iter()
            .any(|w| text.contains(w))
    })
}

/// Whether this user may read the system journal (root, or groups systemd-journal/adm).
pub fn readable() -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    crate::host::child::output(Command::new("id").arg("-nG"), crate::host::child::USER_TOOLS)
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .any(|g| g == "systemd-journal" || g == "adm")
        })
        .unwrap_or(false)
}

/// `ssh … logs --level --since`: what to show.
pub struct Filtered<'a> {
    pub lines: usize,
    pub follow: bool,
    /// This level and more severe (nginx's own level in the text counts).
    pub level: Option<u8>,
    /// journalctl's `--since=-1h` (`core::log_entry::parse_since`).
    pub since: Option<&'a str>,
}

/// The last `lines` entries of `units` that pass the filter (then new ones, with
/// `follow`), one line each (`core::log_entry::line`), as the console filters them.
pub fn show_filtered(units: &[String], f: &Filtered) -> Result<i32> {
    use std::io::{BufRead, Write};

    use crate::core::log_entry::{self, Filter};
    let filter = Filter {
        max_level: f.level,
        text: None,
    };
    let mut cmd = Command::new("journalctl");
    // Fetch more than shown, as the console does: the level filter runs here.
    cmd.args([
        "--no-pager",
        "-q",
        "-o",
        "json",
        "-n",
        &(f.lines.saturating_mul(4)).to_string(),
    ]);
    if let Some(s) = f.since {
        cmd.arg(s);
    }
    if f.follow {
        cmd.arg("-f");
    }
    for u in units {
        cmd.args(["-u", u]);
    }
    cmd.stdout(std::process::Stdio::piped())
        .stdin(std::process::Stdio::null());
    // A listing is bounded as a whole (`child::JOURNAL`). A follow has no end of its
    // own: it lasts as long as its reader (the ssh session), and journalctl's next
    // write after the reader left ends it.
    let (mut following, mut listing) = (None, None);
    let child = if f.follow {
        following.insert(cmd.spawn().context("running journalctl")?)
    } else {
        listing
            .insert(crate::host::child::Bounded::spawn(
                &mut cmd,
                crate::host::child::JOURNAL,
            )?)
            .child()
    };
    let out = child.stdout.take().context("journalctl's output")?;
    let mut reader = std::io::BufReader::new(out);
    let stdout = std::io::stdout();
    let mut shown: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    let mut raw = String::new();
    loop {
        raw.clear();
        if reader.read_line(&mut raw)? == 0 {
            break;
        }
        let Some(e) = log_entry::parse(&raw).filter(|e| filter.keeps(e)) else {
            continue;
        };
        if f.follow {
            // Following: each line as it comes (the backlog is journalctl's -n).
            let mut o = stdout.lock();
            writeln!(o, "{}", log_entry::line(&e))?;
            o.flush()?;
        } else {
            shown.push_back(log_entry::line(&e));
            if shown.len() > f.lines {
                shown.pop_front();
            }
        }
    }
    let mut o = stdout.lock();
    for l in shown.drain(..) {
        writeln!(o, "{l}")?;
    }
    let status = match (following, listing) {
        (Some(mut child), _) => child.wait().context("journalctl")?,
        (_, Some(bounded)) => bounded.wait()?,
        (None, None) => unreachable!("one of the two was started"),
    };
    Ok(status.code().unwrap_or(1))
}

/// Replace this process with journalctl showing `units`.
pub fn show(units: &[String], lines: usize, follow: bool) -> Result<i32> {
    let mut cmd = Command::new("journalctl");
    cmd.args(["--no-pager", "-o", "short-iso", "-n", &lines.to_string()]);
    if follow {
        cmd.arg("-f");
    }
    for u in units {
        cmd.args(["-u", u]);
    }
    // As in `show_filtered`: a listing is bounded, a follow lasts as long as its reader.
    let status = if follow {
        cmd.status().context("running journalctl")?
    } else {
        crate::host::child::status(&mut cmd, crate::host::child::JOURNAL)?
    };
    Ok(status.code().unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ident: &str, pid: u32, priority: u8, message: &str) -> String {
        serde_json::json!({"SYSLOG_IDENTIFIER": ident, "_PID": pid.to_string(), "PRIORITY": priority.to_string(), "MESSAGE": message})
            .to_string()
    }

    #[test]
    fn a_crash_loop_shows_nginx_alert_once_above_systemd_noise() {
        let mut lines = Vec::new();
        for pid in [101, 202, 303] {
            lines.push(entry(
                "socketserver-dev1",
                pid,
                6,
                &format!("2026/11/26 08:00:0{} [alert] {pid}#{pid}: failed to load the 'resty.core' module (https://github.com/openresty/lua-resty-core); ensure you are using an OpenResty release", pid % 10),
            ));
            lines.push(entry(
                "systemd",
                1,
                4,
                "openresty@socketserver-dev1.service: Main process exited, code=exited, status=1/FAILURE",
            ));
            lines.push(entry(
                "systemd",
                1,
                3,
                "Failed to start openresty@socketserver-dev1.service - hhl OpenResty socketserver-dev1.",
            ));
            lines.push(entry(
                "systemd",
                1,
                6,
                "openresty@socketserver-dev1.service: Scheduled restart job, restart counter is at 3.",
            ));
        }
        let got = explaining(&lines.join("\n"), "", 8);
        assert_eq!(got.len(), 2, "{got:#?}");
        assert!(
            got[0].starts_with("socketserver-dev1[303]: ") && got[0].contains("failed to load the 'resty.core' module"),
            "{got:#?}"
        );
        assert!(got[1].starts_with("systemd[1]: Failed to start"), "{got:#?}");
    }

    #[test]
    fn lines_already_shown_and_info_lines_are_left_out() {
        let lines = [
            entry("redis-6379", 7, 6, "7:C 26 Nov 2026 09:20:33.231 # Configuration loaded"),
            entry("redis-6379", 7, 6, "7:M 26 Nov 2026 09:20:33.234 * Ready to accept connections tcp"),
            entry(
                "redis-6379",
                7,
                6,
                "7:M 26 Nov 2026 09:20:33.234 # Warning: Could not create server TCP listening socket 127.0.0.1:6379: bind: Address already in use",
            ),
        ]
        .join("\n");
        // Shown already, as another attempt of the same loop: left out.
        let tail = "2026-11-26T09:20:34+0000 vm redis-6379[9]: 9:M 26 Nov 2026 09:20:34.736 # Warning: Could not create server TCP listening socket 127.0.0.1:6379: bind: Address already in use\n";
        assert!(explaining(&lines, tail, 8).is_empty());
        let got = explaining(&lines, "", 8);
        assert_eq!(got.len(), 1, "{got:#?}");
        assert!(got[0].ends_with("bind: Address already in use"), "{got:#?}");
    }
}
