//! The status table `hhlctl status` and `ssh <entry> status` print: one row per
//! instance (`host::health`), as a table or JSON. Unhealthy rows make the exit 1.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::core::access::{self, Action};
use crate::core::model::hosts::HostSpec;
use crate::core::model::Model;
use crate::core::peers::Unreachable;
use crate::host::load;
use crate::host::release_info::{self, Deployment};
use crate::host::systemd::UnitState;
use crate::ops::select::Selection;

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Row {
    /// With several hosts, the one it runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Its host did not answer: since when (seconds since the epoch), and why; the
    /// rest of the row is what it last said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreachable: Option<Unreachable>,
    pub instance: String,
    pub unit: String,
    pub developer: String,
    pub server: String,
    pub port: u16,
    #[serde(flatten)]
    pub state: UnitState,
    pub uptime_secs: Option<u64>,
    pub port_answers: bool,
    pub healthy: bool,
    /// An OpenResty instance's code: its branch's head against its live release.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<Deployment>,
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
    let rows = local_rows(config, selection)?;
    show(&rows, json)
}

/// This host's instances `names`, each with whether it is healthy (running, its port
/// answering).
pub fn health_of(config: &Path, names: &[String]) -> Result<Vec<(String, bool)>> {
    let sel = Selection {
        names: names.to_vec(),
        dev: None,
        server: None,
        all: false,
    };
    Ok(local_rows(config, &sel)?
        .into_iter()
        .map(|r| (r.instance, r.healthy))
        .collect())
}

/// The same, from what `status --json` printed on another host.
pub fn health_in_json(text: &str) -> Result<Vec<(String, bool)>> {
    let rows: Vec<Row> = serde_json::from_str(text)?;
    Ok(rows.into_iter().map(|r| (r.instance, r.healthy)).collect())
}

/// This host's rows for `selection`.
fn local_rows(config: &Path, selection: &Selection) -> Result<Vec<Row>> {
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
                host: loaded.model.here.clone(),
                unreachable: None,
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
    Ok(rows)
}

/// Print `rows` (a HOST column when any has a host); the exit code.
fn show(rows: &[Row], json: bool) -> Result<i32> {
    let unhealthy = rows.iter().filter(|r| !r.healthy).count();
    let hosts = rows.iter().any(|r| r.host.is_some());
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                let state = match &r.unreachable {
                    Some(_) => format!("{}/{} (as last seen)", r.state.active_state, r.state.sub_state),
                    None => format!("{}/{}", r.state.active_state, r.state.sub_state),
                };
                let host = match (&r.host, &r.unreachable) {
                    (Some(h), Some(u)) => format!("{h} UNREACHABLE {}", ago(u)),
                    (Some(h), None) => h.clone(),
                    (None, _) => "-".into(),
                };
                let row = vec![
                    r.instance.clone(),
                    r.developer.clone(),
                    r.server.clone(),
                    r.port.to_string(),
                    state,
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
                ];
                if hosts {
                    std::iter::once(host).chain(row).collect()
                } else {
                    row
                }
            })
            .collect();
        let mut header: Vec<&str> = vec![
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
            "PUSHED",
        ];
        if hosts {
            header.insert(0, "HOST");
        }
        print!("{}", crate::core::table::render_rows(&header, &table));
        for r in rows.iter().filter(|r| r.unreachable.is_some()) {
            let u = r.unreachable.as_ref().expect("filtered");
            if r.instance
                == rows
                    .iter()
                    .find(|o| o.host == r.host)
                    .map(|o| o.instance.as_str())
                    .unwrap_or("")
            {
                let host = r.host.as_deref().unwrap_or("-");
                if u.since == 0 {
                    println!(
                        "host {host} did not answer ({}), and never has to this host; it keeps running what it runs",
                        u.error
                    );
                } else {
                    println!(
                        "host {host} did not answer ({}); its rows are what it said {} ago; it keeps running what it runs",
                        u.error,
                        ago(u)
                    );
                }
            }
        }
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

/// How long ago a host last answered (`never`: not once).
fn ago(u: &Unreachable) -> String {
    if u.since == 0 {
        "never seen".into()
    } else {
        human_secs(Some(now_secs().saturating_sub(u.since)))
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Status across hosts, on the primary: this host's rows and every other host's
/// (`of_host`, asked in parallel), in one table with a HOST column. A host that does
/// not answer is shown with what it last said and since when, and makes the exit 1.
pub fn across(config: &Path, model: &Model, identity: &str, names: &[String], json: bool) -> Result<i32> {
    let (Some(hosts), Some(here)) = (&model.hosts, model.here.as_deref()) else {
        let sel = crate::ops::act::selection(model, identity, names).map_err(|e| anyhow::anyhow!("{e}"))?;
        return print(config, &sel, json);
    };
    let admin = model.access.is_admin(identity);
    // Each host's share of the names (none named: all its instances, or the caller's).
    let share = |host: &str| -> Option<Vec<String>> {
        if names.is_empty() || names.iter().any(|n| n == "--all") {
            let mine = admin || hosts.host_of(identity) == host;
            return mine.then(|| names.to_vec());
        }
        let v: Vec<String> = names
            .iter()
            .filter(|n| model.owner_of(n).is_some_and(|o| hosts.host_of(o) == host))
            .cloned()
            .collect();
        (!v.is_empty()).then_some(v)
    };
    let asked: Vec<(&HostSpec, Vec<String>)> = hosts
        .others(here)
        .filter_map(|h| share(&h.name).map(|n| (h, n)))
        .collect();
    let remote = crate::host::parallel::map(&asked, asked.len().max(1), |(h, names)| {
        of_host(model, h, identity, names)
    });
    let mut rows = match share(here) {
        Some(n) => {
            let sel = crate::ops::act::selection(model, identity, &n).map_err(|e| anyhow::anyhow!("{e}"))?;
            local_rows(config, &sel)?
        }
        None => Vec::new(),
    };
    for got in remote {
        match (got.rows.is_empty(), got.unreachable) {
            // Never seen: one row that says so.
            (true, Some(u)) => rows.push(Row {
                host: Some(got.host),
                unreachable: Some(u),
                instance: "-".into(),
                unit: "-".into(),
                developer: "-".into(),
                server: "-".into(),
                port: 0,
                state: Default::default(),
                uptime_secs: None,
                port_answers: false,
                healthy: false,
                code: None,
            }),
            _ => rows.extend(got.rows),
        }
    }
    let code = show(&rows, json)?;
    let down = rows.iter().any(|r| r.unreachable.is_some());
    Ok(if down { 1 } else { code })
}

/// Another host's rows, as `of_host` got them.
#[derive(Debug, Clone)]
pub struct HostRows {
    pub host: String,
    /// As it answered now; or, when it did not (`unreachable`), as it last answered,
    /// each row marked (empty: it never answered).
    pub rows: Vec<Row>,
    pub unreachable: Option<Unreachable>,
}

/// What `identity` asks of other host `host` (`names` as `status` takes them: none,
/// `--all`, or instances): the one reading of another host's instances, which
/// `status` across hosts and the console share. `as <identity> status --json …`
/// within `peer::ASK`, over the kept connection. Each answer is kept; a host that
/// does not answer gives the rows it last gave (of those asked, and `identity`'s to
/// see), unhealthy, marked unreachable since that answer.
pub fn of_host(model: &Model, host: &HostSpec, identity: &str, names: &[String]) -> HostRows {
    let line = format!("as {identity} status --json {}", names.join(" "));
    let answer = crate::host::peer::ask(model, host, line.trim_end(), crate::host::peer::ASK);
    let got = match &answer {
        Ok(a) if a.unreachable().is_none() => serde_json::from_slice::<Vec<Row>>(&a.output.stdout).map_err(|e| {
            format!(
                "unreadable answer ({e}): {}",
                String::from_utf8_lossy(&a.output.stderr).trim()
            )
        }),
        Ok(a) => Err(crate::ops::hosts::failure(a)),
        Err(e) => Err(format!("{e:#}")),
    };
    let cache = cache_path(model, &host.name);
    match got {
        Ok(mut rows) => {
            // Only rows of instances hhl.yaml places on that host: another host's word
            // is not taken for instances it does not run.
            let placed = |r: &Row| {
                model.owner_of(&r.instance).is_some_and(|o| {
                    o == r.developer && model.hosts.as_ref().is_some_and(|h| h.host_of(o) == host.name)
                })
            };
            rows.retain(placed);
            for row in &mut rows {
                row.host = Some(host.name.clone());
            }
            keep(model, &host.name, &cache, &rows);
            HostRows {
                host: host.name.clone(),
                rows,
                unreachable: None,
            }
        }
        Err(error) => {
            let since = std::fs::metadata(&cache)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            let unreachable = Unreachable { since, error };
            let mut rows: Vec<Row> = read_kept(&cache)
                .into_iter()
                .filter(|r| asked(model, identity, names, r))
                .collect();
            for row in &mut rows {
                row.host = Some(host.name.clone());
                row.healthy = false;
                row.unreachable = Some(unreachable.clone());
            }
            HostRows {
                host: host.name.clone(),
                rows,
                unreachable: Some(unreachable),
            }
        }
    }
}

/// Whether `row` is one `identity` asked for with `names`, and may see: the kept rows
/// are everyone's who asked (an admin's, the console's), shown to this identity only.
fn asked(model: &Model, identity: &str, names: &[String], row: &Row) -> bool {
    let named: Vec<&String> = names.iter().filter(|n| *n != "--all").collect();
    (named.is_empty() || named.iter().any(|n| **n == row.instance))
        && access::may(model, identity, Action::Control { owner: &row.developer }).is_ok()
}

fn read_kept(cache: &Path) -> Vec<Row> {
    std::fs::read(cache)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Keep `fresh` as `host`'s last answer, over the rows kept before (a developer's
/// status asks for their own rows only): those of instances it did not name stay, if
/// hhl.yaml still places them there; in hhl.yaml's order.
fn keep(model: &Model, host: &str, cache: &Path, fresh: &[Row]) {
    let placed = |r: &Row| {
        model.hosts.as_ref().is_some_and(|h| {
            h.host_of(&r.developer) == host && model.owner_of(&r.instance) == Some(r.developer.as_str())
        })
    };
    let mut rows: Vec<Row> = read_kept(cache)
        .into_iter()
        .filter(|r| placed(r) && !fresh.iter().any(|f| f.instance == r.instance))
        .collect();
    rows.extend(fresh.iter().cloned());
    let order = |r: &Row| {
        model
            .everywhere
            .iter()
            .position(|(n, _)| *n == r.instance)
            .unwrap_or(usize::MAX)
    };
    rows.sort_by_key(order);
    if let Ok(text) = serde_json::to_vec(&rows) {
        let _ = crate::host::fsapply::write_file(cache, &text, 0o600);
    }
}

/// What `host` last said (status rows), kept by whoever asked (root or the entry
/// account), in its own directory.
fn cache_path(model: &Model, host: &str) -> std::path::PathBuf {
    let root = rustix::process::geteuid().is_root();
    crate::core::peers::control_dir(model, root).join(format!("{host}.status.json"))
}
