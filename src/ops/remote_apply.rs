//! Root's jobs started by those who are not root: a push to serverctrl, `ssh <entry>
//! apply|plan` and the console's admin view start `hhl-apply.service` or
//! `hhl-plan.service` (polkit lets the entry account), wait for it, and show what it
//! wrote. Also the last apply as the console shows it.

use std::path::Path;
use std::time::UNIX_EPOCH;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::core::model::Model;
use crate::core::package::{APPLIED_COMMIT, APPLY_LOG, APPLY_UNIT, PLAN_LOG, PLAN_UNIT};
use crate::core::repos::{self, RepoKind};
use crate::core::systemd_types::{ActiveState, JobKind};
use crate::host::systemd::jobs::{JOB_DEADLINE, WAIT_MARGIN};
use crate::host::systemd::Systemd;

/// One run of a root oneshot: whether it ended well, and what it wrote.
#[derive(Debug, Clone)]
pub struct Ran {
    pub ok: bool,
    pub output: String,
    /// Why it failed, when systemd ended it at its start timeout.
    pub timed_out: Option<String>,
}

/// Start `unit`, wait for it, and say whether it ended well: a oneshot that finished
/// is inactive again; one that failed is `failed`. The wait is bounded by the unit's
/// own limits (as systemd has them, drop-ins included) and `WAIT_MARGIN`, so systemd
/// ends a hung run first; that is then said with the unit's name and where to read.
pub fn run_oneshot(systemd: &Systemd, unit: &str) -> Result<(bool, Option<String>)> {
    let bounds = systemd.oneshot_limits(unit)?;
    let wait = bounds.map_or(JOB_DEADLINE, |l| l.start + l.stop + WAIT_MARGIN);
    let outcome = systemd
        .run_jobs_within(&[(unit.to_string(), JobKind::Start)], wait)
        .with_context(|| format!("waiting for {unit} (`journalctl -u {unit}` shows what it is doing)"))?;
    let ok = outcome.iter().all(|o| o.oneshot_ok());
    let timed_out = match bounds {
        Some(l) if !ok && systemd.service_result(unit).as_deref() == Some("timeout") => Some(format!(
            "{unit} timed out: it did not finish within {} s (its TimeoutStartSec), so systemd stopped it; `journalctl -u {unit}` shows where it was",
            l.start.as_secs_f64()
        )),
        _ => None,
    };
    Ok((ok, timed_out))
}

/// `hhlctl apply --from-repo` as root, through hhl-apply.service. A missing log is
/// an empty one: the unit may have failed before it wrote.
pub fn apply(systemd: &Systemd) -> Result<Ran> {
    let (ok, timed_out) = run_oneshot(systemd, APPLY_UNIT)?;
    let output = std::fs::read_to_string(APPLY_LOG).unwrap_or_default();
    let timed_out = timed_out.map(|t| t + ". What it owed systemd is recorded: the next apply finishes it");
    Ok(Ran { ok, output, timed_out })
}

/// `hhlctl plan` as root, through hhl-plan.service (the entry account may not read
/// every file plan compares).
pub fn plan(systemd: &Systemd) -> Result<Ran> {
    let (ok, timed_out) = run_oneshot(systemd, PLAN_UNIT)?;
    let output = match (std::fs::read_to_string(PLAN_LOG), &timed_out) {
        (Ok(o), _) => o,
        (Err(_), Some(_)) => String::new(),
        (Err(e), None) => return Err(e).with_context(|| format!("reading {PLAN_LOG}")),
    };
    Ok(Ran { ok, output, timed_out })
}

/// Print what an apply wrote, each line marked as the apply's; then why systemd
/// stopped it, if it did.
pub fn print(ran: &Ran) {
    for line in ran.output.lines() {
        println!("apply: {line}");
    }
    if let Some(t) = &ran.timed_out {
        println!("{t}");
    }
}

/// The serverctrl commit the last apply took, if any.
pub fn applied_commit(model: &Model) -> Option<String> {
    std::fs::read_to_string(model.paths.state_dir.join(APPLIED_COMMIT))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// How much of the last apply's output the console shows (its end).
const OUTPUT_MAX: usize = 64 * 1024;

/// The last serverctrl apply, as the console's admin view shows it.
#[derive(Debug, Serialize)]
pub struct LastApply {
    pub commit: Option<String>,
    pub subject: Option<String>,
    /// `succeeded`, `failed`, `running` or `never`.
    pub result: String,
    /// Seconds since the epoch of the output's last write.
    pub when: Option<u64>,
    pub output: String,
}

pub fn last(model: &Model) -> LastApply {
    let log = Path::new(APPLY_LOG);
    let mut output = std::fs::read_to_string(log).unwrap_or_default();
    if output.len() > OUTPUT_MAX {
        let mut cut = output.len() - OUTPUT_MAX;
        while !output.is_char_boundary(cut) {
            cut += 1;
        }
        output = output[cut..].to_string();
    }
    let when = std::fs::metadata(log)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs());
    let commit = applied_commit(model);
    let subject = commit.as_ref().and_then(|c| {
        let repo = repos::repos(model)
            .into_iter()
            .find(|r| r.kind == RepoKind::Serverctrl)?;
        crate::host::git::run(crate::host::git::at(&repo.path), &["log", "-1", "--format=%s", c, "--"]).ok()
    });
    let state = Systemd::connect()
        .and_then(|s| s.states(&[APPLY_UNIT.to_string()]))
        .ok()
        .and_then(|mut m| m.remove(APPLY_UNIT))
        .map(|s| s.active_state)
        .unwrap_or_default();
    let result = match state {
        ActiveState::Failed => "failed",
        ActiveState::Activating | ActiveState::Active => "running",
        _ if when.is_none() => "never",
        _ => "succeeded",
    };
    LastApply {
        commit,
        subject,
        result: result.into(),
        when,
        output,
    }
}
