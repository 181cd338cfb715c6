//! A job's outcome in words, written once: what `hhlctl`, a push, `ssh <entry> …` and
//! the console say when systemd's job succeeded or failed, with the journal lines that
//! explain a failure.

use serde::Serialize;

use crate::core::model::Model;
use crate::core::systemd_types::JobOutcome;
use crate::host::systemd::journal;

/// How many of a failed unit's last journal lines are shown.
pub const JOURNAL_LINES: usize = 15;

/// What one job did to one instance.
#[derive(Debug, Clone, Serialize)]
pub struct Done {
    pub instance: String,
    pub unit: String,
    pub ok: bool,
    /// `restarted openresty@….service`, or what failed.
    pub message: String,
    /// On failure: the lines of its journal that explain it.
    pub journal: Option<String>,
}

/// `restarting openresty@….service failed (systemd job: failed; unit now: failed)`.
pub fn failure(o: &JobOutcome) -> String {
    format!(
        "{} {} failed (systemd job: {}; unit now: {})",
        o.kind.verb(),
        o.unit,
        o.result(),
        o.active_state
    )
}

/// Each outcome as `Done`, judged by systemd's job alone (apply waits for the ports
/// itself, after every job).
pub fn describe(outcomes: &[JobOutcome]) -> Vec<Done> {
    outcomes
        .iter()
        .map(|o| {
            let ok = o.ok();
            Done {
                instance: o.unit.clone(),
                unit: o.unit.clone(),
                ok,
                message: if ok {
                    format!("{} {}", o.kind.past(), o.unit)
                } else {
                    failure(o)
                },
                journal: (!ok).then(|| journal::last_lines(&o.unit, JOURNAL_LINES)),
            }
        })
        .collect()
}

/// Print each outcome and return how many failed.
pub fn report(outcomes: &[JobOutcome]) -> usize {
    print(&describe(outcomes))
}

/// Each outcome as `Done`: a job that succeeded still fails if the instance does not
/// answer on its port in time (`ready`).
pub fn judge(model: &Model, outcomes: &[JobOutcome]) -> Vec<Done> {
    let silent = crate::ops::ready::silent_ports(model, outcomes);
    outcomes
        .iter()
        .map(|o| {
            let inst = model.instances.iter().find(|i| i.unit() == o.unit);
            let name = inst.map(|i| i.name.clone()).unwrap_or_else(|| o.unit.clone());
            let deaf = inst.filter(|i| silent.iter().any(|s| s.unit() == i.unit()));
            let (ok, message) = if !o.ok() {
                (false, failure(o))
            } else if let Some(i) = deaf {
                (
                    false,
                    format!(
                        "{} is running but port {} does not answer after {} s",
                        o.unit,
                        i.port,
                        crate::ops::ready::PORT_WAIT.as_secs()
                    ),
                )
            } else {
                (true, format!("{} {}", o.kind.past(), o.unit))
            };
            Done {
                instance: name,
                unit: o.unit.clone(),
                ok,
                journal: (!ok).then(|| journal::last_lines(&o.unit, JOURNAL_LINES)),
                message,
            }
        })
        .collect()
}

/// A failed unit's journal excerpt, as every front end on a terminal shows it.
pub fn print_journal(unit: &str, lines: &str) {
    eprintln!("  last lines of its journal (journalctl -u {unit}):");
    for line in lines.lines() {
        eprintln!("  | {line}");
    }
}

/// Print outcomes (successes on stdout, failures with their journal on stderr);
/// returns how many failed.
pub fn print(done: &[Done]) -> usize {
    let mut failed = 0;
    for d in done {
        if d.ok {
            println!("{}", d.message);
        } else {
            failed += 1;
            eprintln!("error: {}", d.message);
            if let Some(j) = &d.journal {
                print_journal(&d.unit, j);
            }
        }
    }
    failed
}
