//! The status table `hhlctl status` and `ssh <entry> status` print: one row per
//! instance (`host::health`), as a table or JSON. Unhealthy rows make the exit 1.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use serde::Serialize;

use crate::host::load;
use crate::host::release_info::{self, Deployment};
use crate::host::systemd::UnitState;
use crate::ops::select::Selection;

#[derive(Serialize)]
struct Row {
    instance: String,
    unit: String,
    developer: String,
    server: String,
    port: u16,
    #[serde(flatten)]
    state: UnitState,
    uptime_secs: Option<u64>,
    port_answers: bool,
    healthy: bool,
    /// An OpenResty instance's code: its branch's head against its live release.
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<Deployment>,
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(10)]
}

/// The live release's commit (`initial` before any deploy), and whether its reload is owed.
fn live_column(code: Option<&Deployment>) -> String {
    let Some(c) = code else { return "-".into() };
    let live = c.live.as_deref().map(short).unwrap_or("initial");
    if c.reload_pending {
        format!("{live} (reload owed)")
    } else {
        live.to_string()
    }
}

/// The branch head: `=` when it is live, marked when it is not.
fn pushed_column(code: Option<&Deployment>) -> String {
    let Some(c) = code else { return "-".into() };
    match (&c.pushed, &c.held) {
        (None, _) => "-".into(),
        (Some(_), _) if !c.ahead() => "=".into(),
        (Some(p), Some(why)) => format!("{} (held: {why})", short(p)),
        (Some(p), None) => format!("{} NOT LIVE", short(p)),
    }
}

/// With HHL_TIMES set, how long the phases took (ms since the start), on stderr: where
/// status's time goes (benches/status.sh).
fn times(phases: &[(&str, Duration)]) {
    if std::env::var_os("HHL_TIMES").is_some() {
        let text: Vec<String> = phases
            .iter()
            .map(|(what, d)| format!("{what} {:.1}", d.as_secs_f64() * 1000.0))
            .collect();
        eprintln!("status times (ms since start): {}", text.join(", "));
    }
}

fn human_bytes(b: Option<u64>) -> String {
    match b {
        None => "-".into(),
        Some(b) if b >= 1 << 30 => format!("{:.1}G", b as f64 / (1u64 << 30) as f64),
        Some(b) if b >= 1 << 20 => format!("{:.1}M", b as f64 / (1u64 << 20) as f64),
        Some(b) => format!("{:.0}K", b as f64 / 1024.0),
    }
}

fn human_secs(s: Option<u64>) -> String {
    match s {
        None => "-".into(),
        Some(s) if s >= 86400 => format!("{}d{}h", s / 86400, s % 86400 / 3600),
        Some(s) if s >= 3600 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        Some(s) if s >= 60 => format!("{}m{}s", s / 60, s % 60),
        Some(s) => format!("{s}s"),
    }
}

/// Print the status of what `selection` chooses; returns the exit code (1 when any
/// is unhealthy).
pub fn print(config: &Path, selection: &Selection, json: bool) -> Result<i32> {
    let t0 = Instant::now();
    let loaded = load::load(config)?;
    let t_load = t0.elapsed();
    let chosen = selection.resolve(&loaded.model, true)?;
    let read = crate::host::health::read(&chosen)?;
    times(&[
        ("loaded", t_load),
        ("states", t_load + read.states_at),
        ("ports", t_load + read.ports_at),
    ]);
    let now_usec = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    let code = release_info::deployments(&loaded.model, &chosen);
    let rows: Vec<Row> = chosen
        .iter()
        .zip(read.health)
        .zip(code)
        .map(|((i, h), code)| {
            let active = h.state.active_state.is_active();
            let uptime_secs = (active && h.state.active_enter_usec > 0)
                .then(|| now_usec.saturating_sub(h.state.active_enter_usec) / 1_000_000);
            Row {
                instance: i.name.clone(),
                unit: i.unit(),
                developer: i.developer.clone(),
                server: i.server.clone(),
                port: i.port,
                healthy: h.healthy,
                state: h.state,
                uptime_secs,
                port_answers: h.port_answers,
                code,
            }
        })
        .collect();
    let unhealthy = rows.iter().filter(|r| !r.healthy).count();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        let table: Vec<[String; 12]> = rows
            .iter()
            .map(|r| {
                [
                    r.instance.clone(),
                    r.developer.clone(),
                    r.server.clone(),
                    r.port.to_string(),
                    format!("{}/{}", r.state.active_state, r.state.sub_state),
                    if r.state.main_pid > 0 {
                        r.state.main_pid.to_string()
                    } else {
                        "-".into()
                    },
                    human_bytes(r.state.memory),
                    human_secs(r.uptime_secs),
                    r.state.restarts.to_string(),
                    if r.port_answers { "yes".into() } else { "NO".into() },
                    live_column(r.code.as_ref()),
                    pushed_column(r.code.as_ref()),
                ]
            })
            .collect();
        print!(
            "{}",
            crate::core::table::render(
                &[
                    "INSTANCE",
                    "DEVELOPER",
                    "SERVER",
                    "PORT",
                    "STATE",
                    "PID",
                    "MEMORY",
                    "UPTIME",
                    "RESTARTS",
                    "PORT-OK",
                    "LIVE",
                    "PUSHED"
                ],
                &table
            )
        );
        if unhealthy > 0 {
            println!("{unhealthy} of {} instances unhealthy", rows.len());
        }
        let behind: Vec<&str> = rows
            .iter()
            .filter(|r| r.code.as_ref().is_some_and(|c| c.behind()))
            .map(|r| r.instance.as_str())
            .collect();
        if !behind.is_empty() {
            println!(
                "pushed but not live: {} (`ssh <entry>@server deploy INSTANCE`, or an apply, deploys the branch head)",
                behind.join(", ")
            );
        }
    }
    Ok(if unhealthy > 0 { 1 } else { 0 })
}
