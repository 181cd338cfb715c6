//! Journal entries as the log page shows them. Pure: parsing `journalctl -o json`
//! lines, levels, filters, and who may see which unit.

use serde::Serialize;

use crate::core::model::Model;

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

/// An instance the page can show.
#[derive(Debug, Clone, Serialize)]
pub struct Visible {
    pub instance: String,
    pub unit: String,
    pub developer: String,
}

/// The instances unix user `user` may read: their own; admins all.
pub fn visible(model: &Model, user: &str) -> Vec<Visible> {
    let admin = model.access.admins.iter().any(|a| a == user);
    model
        .instances
        .iter()
        .filter(|i| admin || i.developer == user)
        .map(|i| Visible {
            instance: crate::core::units::syslog_identifier(i),
            unit: i.unit(),
            developer: i.developer.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
