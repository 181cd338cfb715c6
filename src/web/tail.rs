//! The live tail read from the journal files through sd-journal, not `journalctl -f`:
//! journald writes each entry into its memory-mapped file at once but signals readers
//! only from a timer (about 250 ms later), so `-f` shows a line a quarter second late.
//! Checking for new entries every `POLL` shows it within that.

use std::time::Duration;

use systemd::journal::{Journal, OpenOptions};
use tokio::sync::mpsc;

/// How long the reader sleeps when it has shown everything (wake-ups from journald's
/// own signal, e.g. a rotated file, come sooner).
const POLL: Duration = Duration::from_millis(20);
/// Lines read ahead of the browser before the reader waits for it.
const BUFFER: usize = 4096;

/// The unit's lines as `journalctl -u UNIT` selects them: the service's own, its
/// core dumps, systemd's about it, and other root daemons' about it.
fn add_unit_matches(journal: &mut Journal, unit: &str) -> std::io::Result<()> {
    journal.match_add("_SYSTEMD_UNIT", unit)?;
    journal.match_or()?;
    journal.match_add("MESSAGE_ID", "fc2e22bc6ee647b6b90729ab34a250b1")?;
    journal.match_add("_UID", "0")?;
    journal.match_add("COREDUMP_UNIT", unit)?;
    journal.match_or()?;
    journal.match_add("_PID", "1")?;
    journal.match_add("UNIT", unit)?;
    journal.match_or()?;
    journal.match_add("_UID", "0")?;
    journal.match_add("OBJECT_SYSTEMD_UNIT", unit)?;
    journal.match_or()?;
    Ok(())
}

/// The journal positioned after its last entry of `units`. All files, as journalctl
/// opens them: journald puts the lines of a unit running as a developer (uid >= 1000)
/// in `user-UID.journal`, which the system-only flag would leave out.
fn open_at_end(units: &[String]) -> std::io::Result<Journal> {
    let mut journal = OpenOptions::default().local_only(true).open()?;
    for unit in units {
        add_unit_matches(&mut journal, unit)?;
    }
    journal.seek_tail()?;
    // After seek_tail the reader sits past the end; stepping back to the last entry
    // makes the next `next()` return only entries written from now on.
    journal.previous()?;
    Ok(journal)
}

/// The current entry as one `journalctl -o json` line with the fields the page reads.
fn json_line(journal: &mut Journal) -> Option<String> {
    let t = journal.timestamp_usec().ok()?;
    let mut fields = serde_json::Map::new();
    fields.insert("__REALTIME_TIMESTAMP".into(), t.to_string().into());
    for name in ["MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "_SYSTEMD_UNIT"] {
        if let Ok(Some(field)) = journal.get_data(name) {
            if let Some(value) = field.value() {
                fields.insert(name.into(), String::from_utf8_lossy(value).into_owned().into());
            }
        }
    }
    Some(serde_json::Value::Object(fields).to_string())
}

/// Follow the journal for `units` from now on: a `journalctl -o json` line per new
/// entry. The reader runs on its own thread (sd-journal handles stay on one thread)
/// and ends when the receiver is dropped (the browser went) or the journal fails.
pub fn follow(units: Vec<String>) -> std::io::Result<mpsc::Receiver<String>> {
    let (tx, rx) = mpsc::channel(BUFFER);
    let (opened_tx, opened_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new().name("journal-tail".into()).spawn(move || {
        let mut journal = match open_at_end(&units) {
            Ok(j) => {
                let _ = opened_tx.send(Ok(()));
                j
            }
            Err(e) => {
                let _ = opened_tx.send(Err(e));
                return;
            }
        };
        while !tx.is_closed() {
            match journal.next() {
                Ok(0) => {
                    if journal.wait(Some(POLL)).is_err() {
                        return;
                    }
                }
                Ok(_) => {
                    if let Some(line) = json_line(&mut journal) {
                        if tx.blocking_send(line).is_err() {
                            return;
                        }
                    }
                }
                Err(_) => return,
            }
        }
    })?;
    // Opening is bounded (the stream itself lasts as long as its reader).
    let limit = crate::host::child::limit(&crate::host::child::JOURNAL);
    opened_rx.recv_timeout(limit).unwrap_or_else(|e| {
        Err(std::io::Error::other(match e {
            std::sync::mpsc::RecvTimeoutError::Timeout => format!(
                "the journal did not open within {:.1} s ({})",
                limit.as_secs_f64(),
                crate::host::child::JOURNAL.hint
            ),
            std::sync::mpsc::RecvTimeoutError::Disconnected => "the journal reader thread ended".into(),
        }))
    })?;
    Ok(rx)
}
