//! Journal entries as developers read them, in the console and through `ssh … logs
//! --level --since`: parsing `journalctl -o json` lines, nginx's levels, the filters
//! both offer, and one line of text per entry. Pure.

use serde::Serialize;

pub const LEVELS: [&str; 8] = ["emerg", "alert", "crit", "err", "warn", "notice", "info", "debug"];

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Entry {
    /// Microseconds since the epoch.
    pub t: u64,
    pub instance: String,
    pub unit: String,
    /// 0 (emerg) to 7 (debug).
    pub level: u8,
    pub msg: String,
}

/// nginx writes every line at the journal's default priority with its own level in
/// brackets (`[error]`): use that when present.
pub fn level_of(priority: u8, msg: &str) -> u8 {
    for (n, name) in ["emerg", "alert", "crit", "error", "warn", "notice", "info", "debug"]
        .iter()
        .enumerate()
    {
        if msg.contains(&format!("[{name}]")) {
            return n as u8;
        }
    }
    priority.min(7)
}

/// One `journalctl -o json` line.
pub fn parse(line: &str) -> Option<Entry> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let msg = match &v["MESSAGE"] {
        serde_json::Value::String(s) => s.clone(),
        // Non-UTF-8 messages come as byte arrays.
        serde_json::Value::Array(bytes) => String::from_utf8_lossy(
            &bytes
                .iter()
                .filter_map(|b| b.as_u64().map(|b| b as u8))
                .collect::<Vec<u8>>(),
        )
        .into_owned(),
        _ => return None,
    };
    let priority = v["PRIORITY"].as_str().and_then(|p| p.parse().ok()).unwrap_or(6);
    Some(Entry {
        t: v["__REALTIME_TIMESTAMP"].as_str()?.parse().ok()?,
        instance: v["SYSLOG_IDENTIFIER"].as_str().unwrap_or("").to_string(),
        unit: v["_SYSTEMD_UNIT"].as_str().unwrap_or("").to_string(),
        level: level_of(priority, &msg),
        msg,
    })
}

#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Show this level and more severe ones.
    pub max_level: Option<u8>,
    /// Case-insensitive substring.
    pub text: Option<String>,
}

impl Filter {
    pub fn keeps(&self, e: &Entry) -> bool {
        self.max_level.is_none_or(|m| e.level <= m)
            && self
                .text
                .as_ref()
                .is_none_or(|t| e.msg.to_lowercase().contains(&t.to_lowercase()))
    }
}

/// The windows `--since` (and the console's menu) offers.
pub const SINCE: [&str; 5] = ["15m", "1h", "6h", "1d", "7d"];

/// `--level`: a name (`err`, `error`, `warn`, `warning`, …) or 0..7; this level and
/// more severe ones are shown.
pub fn parse_level(arg: &str) -> Result<u8, String> {
    let alias = match arg {
        "error" => "err",
        "warning" => "warn",
        other => other,
    };
    if let Some(n) = LEVELS.iter().position(|l| *l == alias) {
        return Ok(n as u8);
    }
    arg.parse::<u8>().ok().filter(|n| *n <= 7).ok_or_else(|| {
        format!(
            "logs: --level `{}` is not a level; one of {} (or 0 to 7)",
            crate::core::error::excerpt(arg),
            LEVELS.join(", ")
        )
    })
}

/// `--since`: one of `SINCE`, as journalctl's `--since=-1h`.
pub fn parse_since(arg: &str) -> Result<String, String> {
    if SINCE.contains(&arg) {
        Ok(format!("--since=-{arg}"))
    } else {
        Err(format!(
            "logs: --since `{}` is not one of {}",
            crate::core::error::excerpt(arg),
            SINCE.join(", ")
        ))
    }
}

/// One entry as a line: `2026-12-06T08:00:00Z socketserver-dev1: <message>` (UTC).
pub fn line(e: &Entry) -> String {
    let secs = (e.t / 1_000_000) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z {}: {}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        e.instance,
        e.msg
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_and_since_arguments_and_lines() {
        assert_eq!(parse_level("err"), Ok(3));
        assert_eq!(parse_level("error"), Ok(3));
        assert_eq!(parse_level("warning"), Ok(4));
        assert_eq!(parse_level("7"), Ok(7));
        assert_eq!(
            parse_level("loud").unwrap_err(),
            "logs: --level `loud` is not a level; one of emerg, alert, crit, err, warn, notice, info, debug (or 0 to 7)"
        );
        assert!(parse_level("8").is_err());
        assert_eq!(parse_since("1h").unwrap(), "--since=-1h");
        assert_eq!(
            parse_since("-u openresty@x").unwrap_err(),
            "logs: --since `-u openresty@x` is not one of 15m, 1h, 6h, 1d, 7d"
        );
        let e = Entry {
            t: 1_795_604_477_806_000,
            instance: "socketserver-dev1".into(),
            unit: String::new(),
            level: 3,
            msg: "boom".into(),
        };
        assert_eq!(line(&e), "2026-11-25T11:01:17Z socketserver-dev1: boom");
    }

    #[test]
    fn parses_journal_json_and_nginx_levels() {
        let line = r#"{"__REALTIME_TIMESTAMP":"1795604477806000","PRIORITY":"6","SYSLOG_IDENTIFIER":"socketserver-dev1","_SYSTEMD_UNIT":"openresty@socketserver-dev1.service","MESSAGE":"2026/11/25 11:01:17 [error] 12#12: *1 [lua] main.lua:1: boom"}"#;
        let e = parse(line).unwrap();
        assert_eq!(
            (e.level, e.instance.as_str(), e.t),
            (3, "socketserver-dev1", 1795604477806000)
        );
        let bytes = r#"{"__REALTIME_TIMESTAMP":"1","PRIORITY":"4","MESSAGE":[104,105]}"#;
        assert_eq!(parse(bytes).unwrap().msg, "hi");
        assert_eq!(parse(bytes).unwrap().level, 4);
        let f = Filter {
            max_level: Some(3),
            text: Some("BOOM".into()),
        };
        assert!(f.keeps(&e));
        assert!(!f.keeps(&Entry { level: 6, ..e.clone() }));
    }
}
