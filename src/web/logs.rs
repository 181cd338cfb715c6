//! The log page's API: the instances a user may read, their journal lines (filtered
//! by level and text here), and live tails by server-sent events, each counted against
//! the identity's live streams (`limits::STREAMS_PER_IDENTITY`).

use std::convert::Infallible;
use std::process::Stdio;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream;
use serde::Deserialize;

use super::entry::{self, Entry, Filter, Visible};
use super::session::SignedIn;
use super::{error, sse, tail, App, Shared};
use crate::core::access::{self, Action};

pub(super) async fn instances(State(app): State<Shared>, SignedIn(user): SignedIn) -> Response {
    Json(entry::visible(&app.model, &user)).into_response()
}

#[derive(Deserialize, Default)]
pub(super) struct LogQuery {
    /// An instance (`socketserver-dev1`); all of yours when absent.
    instance: Option<String>,
    /// Most verbose level to show: 0 (emerg) .. 7 (debug).
    level: Option<u8>,
    q: Option<String>,
    /// `15m`, `1h`, `1d`, or nothing for all.
    since: Option<String>,
    lines: Option<usize>,
    /// A moment (µs since the epoch, e.g. a crash): the lines from a minute before it
    /// to a few seconds after, instead of `since`.
    at: Option<u64>,
}

/// The units the query asks for, if the user may see them all.
fn units_for(app: &App, user: &str, q: &LogQuery) -> Result<Vec<Visible>, (StatusCode, String)> {
    let visible = entry::visible(&app.model, user);
    match q.instance.as_deref().filter(|i| !i.is_empty()) {
        None => Ok(visible),
        Some(i) => match visible.into_iter().find(|v| v.instance == i) {
            Some(v) => Ok(vec![v]),
            None => Err(match elsewhere(&app.model, user, i) {
                Some(why) => (StatusCode::NOT_FOUND, why),
                None => (StatusCode::FORBIDDEN, format!("{i}: not one of your instances, {user}")),
            }),
        },
    }
}

/// With several hosts, an instance `label` of another host that `user` may read: its
/// journal is there, which this page does not read; where to read it.
fn elsewhere(model: &crate::core::model::Model, user: &str, label: &str) -> Option<String> {
    // `socketserver-dev3` is its instance's name; a Redis one is `redis-<owner>`.
    let owner = model
        .owner_of(label)
        .or_else(|| model.owners().find(|o| label.strip_prefix("redis-") == Some(*o)))?;
    let host = model.elsewhere(owner)?;
    access::may(model, user, Action::ReadLogs { owner }).ok()?;
    let primary = model.hosts.as_ref()?.primary();
    // ssh names a Redis instance by its port.
    let name = match model.owner_of(label) {
        Some(_) => label,
        None => model
            .everywhere
            .iter()
            .find(|(n, o)| o == owner && n.bytes().all(|b| b.is_ascii_digit()))
            .map_or(label, |(n, _)| n.as_str()),
    };
    Some(format!(
        "{label} runs on host {}, whose journal this page does not read: `ssh {}@{} logs {name}` reads it there",
        host.name, model.access.entry, primary.address
    ))
}

fn filter(q: &LogQuery) -> Filter {
    Filter {
        max_level: q.level,
        text: q.q.clone().filter(|t| !t.is_empty()),
    }
}

fn journalctl(units: &[Visible]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("journalctl");
    cmd.args(["--no-pager", "-q", "-o", "json"]);
    for v in units {
        cmd.args(["-u", &v.unit]);
    }
    cmd.stdin(Stdio::null()).stderr(Stdio::null()).kill_on_drop(true);
    cmd
}

pub(super) async fn logs(State(app): State<Shared>, SignedIn(user): SignedIn, Query(q): Query<LogQuery>) -> Response {
    let units = match units_for(&app, &user, &q) {
        Ok(u) => u,
        Err((status, msg)) => return error(status, msg),
    };
    if units.is_empty() {
        return Json(Vec::<Entry>::new()).into_response();
    }
    let lines = q.lines.unwrap_or(500).min(5000);
    let mut cmd = journalctl(&units);
    // Fetch more than shown: level and text filters run here.
    cmd.args(["-n", &(lines * 4).to_string()]);
    if let Some(at) = q.at {
        let secs = at / 1_000_000;
        cmd.arg(format!("--since=@{}", secs.saturating_sub(60)));
        cmd.arg(format!("--until=@{}", secs + 5));
    } else if let Some(since) = q.since.as_deref().filter(|s| !s.is_empty()) {
        // The same windows as `ssh … logs --since`.
        if !crate::core::log_entry::SINCE.contains(&since) {
            return error(StatusCode::BAD_REQUEST, "since: one of 15m, 1h, 6h, 1d, 7d");
        }
        cmd.arg(format!("--since=-{since}"));
    }
    let out = match bounded(cmd.stdout(Stdio::piped()).output()).await {
        Ok(o) => o,
        Err(e) => return e,
    };
    let f = filter(&q);
    let mut entries: Vec<Entry> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(entry::parse)
        .filter(|e| f.keeps(e))
        .collect();
    let skip = entries.len().saturating_sub(lines);
    entries.drain(..skip);
    Json(entries).into_response()
}

pub(super) async fn tail(State(app): State<Shared>, SignedIn(user): SignedIn, Query(q): Query<LogQuery>) -> Response {
    let units = match units_for(&app, &user, &q) {
        Ok(u) => u,
        Err((status, msg)) => return error(status, msg),
    };
    let slot = match super::live_stream(&app, &user) {
        Ok(s) => s,
        Err((status, why)) => return error(status, why),
    };
    let lines = match tail::follow(units.iter().map(|v| v.unit.clone()).collect()) {
        Ok(l) => l,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, format!("reading the journal: {e}")),
    };
    let f = filter(&q);
    // The reader ends when this stream (and so its receiver) is dropped; the slot is
    // given back with it.
    let events = stream::unfold((lines, slot, f), |(mut lines, slot, f)| async move {
        while let Some(line) = lines.recv().await {
            if let Some(e) = entry::parse(&line).filter(|e| f.keeps(e)) {
                let data = serde_json::to_string(&e).unwrap_or_default();
                return Some((Ok::<Event, Infallible>(Event::default().data(data)), (lines, slot, f)));
            }
        }
        None
    });
    sse(events).into_response()
}

/// The journal lines around an instance's last exit: 60 s before it to 5 s after.
#[derive(Deserialize)]
pub(super) struct AroundQuery {
    instance: String,
    /// Microseconds since the epoch.
    at: u64,
}

/// `GET /api/around?instance=&at=`: the journal lines around a moment (a crash).
pub(super) async fn around(
    State(app): State<Shared>,
    SignedIn(user): SignedIn,
    Query(q): Query<AroundQuery>,
) -> Response {
    let Some(inst) = app
        .model
        .instances
        .iter()
        .find(|i| i.name == q.instance || i.syslog_identifier() == q.instance)
    else {
        return error(StatusCode::BAD_REQUEST, "no such instance");
    };
    if let Err(why) = access::may(&app.model, &user, Action::ReadLogs { owner: &inst.developer }) {
        return error(StatusCode::FORBIDDEN, format!("refused: {why}"));
    }
    let secs = q.at / 1_000_000;
    let out = bounded(
        tokio::process::Command::new("journalctl")
            .args(["--no-pager", "-q", "-o", "json", "-n", "40", "-u", &inst.unit()])
            .arg(format!("--since=@{}", secs.saturating_sub(60)))
            .arg(format!("--until=@{}", secs + 5))
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await;
    match out {
        Ok(o) => {
            let lines: Vec<Entry> = String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(entry::parse)
                .collect();
            Json(lines).into_response()
        }
        Err(e) => e,
    }
}

/// A journalctl run (`kill_on_drop`) under `child::JOURNAL`: given up on, it is killed
/// (dropped) and the page told so.
async fn bounded(
    run: impl std::future::Future<Output = std::io::Result<std::process::Output>>,
) -> Result<std::process::Output, Response> {
    let limit = crate::host::child::limit(&crate::host::child::JOURNAL);
    match tokio::time::timeout(limit, run).await {
        Ok(Ok(o)) => Ok(o),
        Ok(Err(e)) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, format!("journalctl: {e}"))),
        Err(_) => Err(error(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "journalctl did not answer within {:.1} s and was stopped; ask an admin: {}",
                limit.as_secs_f64(),
                crate::host::child::JOURNAL.hint
            ),
        )),
    }
}
