//! `hhlctl web`: the page where developers read their own instances' logs. A small
//! HTTP server (axum) that signs users in against salted password hashes, asks
//! `journalctl` for the units they may see, and live-tails with server-sent events.
//! It runs as the hardened `hhl-web.service` (a dynamic user in group systemd-journal).

pub mod auth;
pub mod entry;
mod tail;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::extract::{Form, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::stream::{self, Stream};
use serde::Deserialize;

use crate::model::Model;
use entry::{Entry, Filter, Visible};

const COOKIE: &str = "hhl_session";
const PAGE: &str = include_str!("page.html");
const APP_JS: &str = include_str!("app.js");
const LOGIN: &str = include_str!("login.html");

pub struct Config {
    pub listen: SocketAddr,
    pub passwd: PathBuf,
}

struct App {
    model: Model,
    users: HashMap<String, String>,
    sessions: Mutex<auth::Sessions>,
}

type Shared = Arc<App>;

pub fn serve(model: Model, cfg: Config) -> Result<()> {
    let text = std::fs::read_to_string(&cfg.passwd)
        .with_context(|| format!("reading the password file {}", cfg.passwd.display()))?;
    let users = auth::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", cfg.passwd.display()))?;
    let app: Shared = Arc::new(App {
        model,
        users,
        sessions: Mutex::new(auth::Sessions::new(Duration::from_secs(12 * 3600))),
    });
    let router = Router::new()
        .route("/", get(index))
        .route(
            "/app.js",
            get(|| async { ([(header::CONTENT_TYPE, "text/javascript")], APP_JS) }),
        )
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/api/instances", get(instances))
        .route("/api/logs", get(logs))
        .route("/api/tail", get(tail))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(app);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .with_context(|| format!("listening on {}", cfg.listen))?;
        eprintln!("hhlctl web: listening on http://{}", cfg.listen);
        axum::serve(listener, router).await.context("serving")
    })
}

async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; style-src 'self' 'unsafe-inline'"
            .parse()
            .expect("static"),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, "nosniff".parse().expect("static"));
    h.insert(header::X_FRAME_OPTIONS, "DENY".parse().expect("static"));
    r
}

fn token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

fn signed_in(app: &App, headers: &HeaderMap) -> Option<String> {
    let t = token(headers)?;
    app.sessions.lock().ok()?.user(&t).map(str::to_string)
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": msg.into() }))).into_response()
}

async fn index(State(app): State<Shared>, headers: HeaderMap) -> Response {
    match signed_in(&app, &headers) {
        Some(user) => Html(PAGE.replace("{{user}}", &html_escape(&user))).into_response(),
        None => Redirect::to("/login").into_response(),
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn login_page() -> Html<String> {
    Html(LOGIN.replace("{{error}}", ""))
}

#[derive(Deserialize)]
struct LoginForm {
    user: String,
    password: String,
}

async fn login(State(app): State<Shared>, Form(f): Form<LoginForm>) -> Response {
    let check = app.clone();
    let (user, password) = (f.user.clone(), f.password);
    // argon2 takes tens of milliseconds: off the event loop.
    let ok = tokio::task::spawn_blocking(move || auth::verify(&check.users, &user, &password))
        .await
        .unwrap_or(false);
    if !ok {
        let page = LOGIN.replace("{{error}}", "<p class=\"error\">Wrong user name or password.</p>");
        return (StatusCode::UNAUTHORIZED, Html(page)).into_response();
    }
    let token = match app.sessions.lock().map(|mut s| s.open(&f.user)) {
        Ok(Ok(t)) => t,
        _ => return error(StatusCode::INTERNAL_SERVER_ERROR, "could not open a session"),
    };
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/".to_string()),
            (
                header::SET_COOKIE,
                format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age=43200"),
            ),
        ],
    )
        .into_response()
}

async fn logout(State(app): State<Shared>, headers: HeaderMap) -> Response {
    if let (Some(t), Ok(mut s)) = (token(&headers), app.sessions.lock()) {
        s.close(&t);
    }
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/login".to_string()),
            (
                header::SET_COOKIE,
                format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
            ),
        ],
    )
        .into_response()
}

async fn instances(State(app): State<Shared>, headers: HeaderMap) -> Response {
    match signed_in(&app, &headers) {
        Some(user) => Json(entry::visible(&app.model, &user)).into_response(),
        None => error(StatusCode::UNAUTHORIZED, "sign in first"),
    }
}

#[derive(Deserialize, Default)]
struct LogQuery {
    /// An instance (`socketserver-dev1`); all of yours when absent.
    instance: Option<String>,
    /// Most verbose level to show: 0 (emerg) .. 7 (debug).
    level: Option<u8>,
    q: Option<String>,
    /// `15m`, `1h`, `1d`, or nothing for all.
    since: Option<String>,
    lines: Option<usize>,
}

/// The units the query asks for, if the user may see them all.
fn units_for(app: &App, headers: &HeaderMap, q: &LogQuery) -> Result<Vec<Visible>, (StatusCode, String)> {
    let Some(user) = signed_in(app, headers) else {
        return Err((StatusCode::UNAUTHORIZED, "sign in first".into()));
    };
    let visible = entry::visible(&app.model, &user);
    match q.instance.as_deref().filter(|i| !i.is_empty()) {
        None => Ok(visible),
        Some(i) => match visible.into_iter().find(|v| v.instance == i) {
            Some(v) => Ok(vec![v]),
            None => Err((StatusCode::FORBIDDEN, format!("{i}: not one of your instances, {user}"))),
        },
    }
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

async fn logs(State(app): State<Shared>, headers: HeaderMap, Query(q): Query<LogQuery>) -> Response {
    let units = match units_for(&app, &headers, &q) {
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
    if let Some(since) = q.since.as_deref().filter(|s| !s.is_empty()) {
        if !["15m", "1h", "6h", "1d", "7d"].contains(&since) {
            return error(StatusCode::BAD_REQUEST, "since: one of 15m, 1h, 6h, 1d, 7d");
        }
        cmd.arg(format!("--since=-{since}"));
    }
    let out = match cmd.stdout(Stdio::piped()).output().await {
        Ok(o) => o,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, format!("journalctl: {e}")),
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

async fn tail(State(app): State<Shared>, headers: HeaderMap, Query(q): Query<LogQuery>) -> Response {
    let units = match units_for(&app, &headers, &q) {
        Ok(u) => u,
        Err((status, msg)) => return error(status, msg),
    };
    let lines = match tail::follow(units.iter().map(|v| v.unit.clone()).collect()) {
        Ok(l) => l,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, format!("reading the journal: {e}")),
    };
    let f = filter(&q);
    // The reader ends when this stream (and so its receiver) is dropped.
    let events = stream::unfold((lines, f), |(mut lines, f)| async move {
        while let Some(line) = lines.recv().await {
            if let Some(e) = entry::parse(&line).filter(|e| f.keeps(e)) {
                let data = serde_json::to_string(&e).unwrap_or_default();
                return Some((Ok::<Event, Infallible>(Event::default().data(data)), (lines, f)));
            }
        }
        None
    });
    sse(events).into_response()
}

fn sse<S: Stream<Item = Result<Event, Infallible>> + Send + 'static>(s: S) -> impl IntoResponse {
    Sse::new(s).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
