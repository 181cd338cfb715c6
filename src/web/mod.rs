//! `hhlctl web`: the page where developers read their own instances' logs. A small
//! HTTP server (axum) that signs users in against salted password hashes, asks
//! `journalctl` for the units they may see, and live-tails with server-sent events.
//! It runs as the hardened `hhl-web.service` (a dynamic user in group systemd-journal).

pub mod auth;
mod console;
pub mod entry;
pub mod guard;
pub mod link;
mod tail;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::extract::{ConnectInfo, Form, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::stream::{self, Stream};
use serde::Deserialize;

use crate::core::model::Model;
use entry::{Entry, Filter, Visible};

const COOKIE: &str = "hhl_session";
const PAGE: &str = include_str!("page.html");
const CONSOLE: &str = include_str!("console.html");
const CONSOLE_JS: &str = include_str!("console.js");
const APP_JS: &str = include_str!("app.js");
const LOGIN: &str = include_str!("login.html");

pub struct Config {
    pub listen: SocketAddr,
    /// Optional: without it, sign-in is by one-time link only.
    pub passwd: Option<PathBuf>,
    /// The key one-time links are signed with; without it, passwords only.
    pub key: Option<PathBuf>,
    /// The page's public address (`https://…` makes cookies `Secure`).
    pub public_url: String,
}

/// Password hashes at once (argon2id: 19 MiB and tens of ms each); the rest wait.
const HASHING: usize = 2;
/// Open connections at once; beyond, new ones are closed on accept.
const MAX_CONNECTIONS: usize = 256;
/// A request's headers must arrive within this (and connections are not kept alive).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Live tails one session may hold open.
pub const MAX_TAILS: usize = 4;

struct App {
    model: Model,
    users: HashMap<String, String>,
    sessions: Mutex<auth::Sessions>,
    hashing: tokio::sync::Semaphore,
    throttle: Mutex<guard::Throttle>,
    tails: Mutex<HashMap<String, usize>>,
    key: Option<Vec<u8>>,
    links: Mutex<link::Used>,
    public_url: String,
    watch: console::Watch,
}

impl App {
    fn cookie_flags(&self) -> &'static str {
        if self.public_url.starts_with("https://") {
            "HttpOnly; Secure; SameSite=Strict; Path=/"
        } else {
            "HttpOnly; SameSite=Strict; Path=/"
        }
    }
}

type Shared = Arc<App>;

pub fn serve(model: Model, cfg: Config) -> Result<()> {
    let users = match &cfg.passwd {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading the password file {}", p.display()))?;
            auth::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?
        }
        None => HashMap::new(),
    };
    let key = match &cfg.key {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading the link key {}", p.display()))?;
            Some(
                crate::host::secrets::parse_link_key(&text)
                    .with_context(|| format!("{}: not 64 hex digits", p.display()))?,
            )
        }
        None => None,
    };
    let app: Shared = Arc::new(App {
        model,
        users,
        sessions: Mutex::new(auth::Sessions::new(Duration::from_secs(12 * 3600))),
        hashing: tokio::sync::Semaphore::new(HASHING),
        throttle: Mutex::new(guard::Throttle::default()),
        tails: Mutex::new(HashMap::new()),
        key,
        links: Mutex::new(link::Used::default()),
        public_url: cfg.public_url.trim_end_matches('/').to_string(),
        watch: console::Watch::new(),
    });
    let router = Router::new()
        .route("/", get(console_page))
        .route("/logs", get(index))
        .route(
            "/app.js",
            get(|| async { ([(header::CONTENT_TYPE, "text/javascript")], APP_JS) }),
        )
        .route(
            "/console.js",
            get(|| async { ([(header::CONTENT_TYPE, "text/javascript")], CONSOLE_JS) }),
        )
        .route("/api/overview", get(console::overview))
        .route("/api/events", get(console::events))
        .route("/api/act", post(console::act))
        .route("/api/rollback", post(console::rollback))
        .route("/api/releases", get(console::releases))
        .route("/api/around", get(console::around))
        .route("/api/admin/apply", get(console::last_apply))
        .route("/api/admin/plan", get(console::plan))
        .route("/login", get(login_page).post(login))
        .route("/link", get(link_signin))
        .route("/logout", post(logout))
        .route("/api/instances", get(instances))
        .route("/api/logs", get(logs))
        .route("/api/tail", get(tail))
        .layer(axum::middleware::map_response(security_headers))
        .layer(axum::middleware::from_fn_with_state(app.clone(), same_origin_posts))
        .with_state(app.clone());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async {
        tokio::spawn(console::poll(app));
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .with_context(|| format!("listening on {}", cfg.listen))?;
        eprintln!(
            "hhlctl web: listening on http://{} (public address {})",
            cfg.listen, cfg.public_url
        );
        accept(listener, router).await
    })
}

/// Serve each connection with a header-read timeout and no keep-alive (an idle
/// connection is closed), at most `MAX_CONNECTIONS` at once.
async fn accept(listener: tokio::net::TcpListener, router: Router) -> Result<()> {
    let open = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            // EMFILE and friends: wait for connections to close rather than spin.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let service =
            hyper_util::service::TowerToHyperService::new(router.clone().layer(axum::Extension(ConnectInfo(peer))));
        tokio::spawn(async move {
            let _permit = permit;
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .keep_alive(false)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Every POST must come from the page itself (login CSRF).
async fn same_origin_posts(State(app): State<Shared>, req: Request, next: axum::middleware::Next) -> Response {
    if req.method() == axum::http::Method::POST {
        if let Some(why) = guard::cross_site(req.headers(), &app.public_url) {
            return error(StatusCode::FORBIDDEN, format!("refused: a cross-site request ({why})"));
        }
    }
    next.run(req).await
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

/// The console (home page): the signed-in identity's instances.
async fn console_page(State(app): State<Shared>, headers: HeaderMap) -> Response {
    match signed_in(&app, &headers) {
        Some(user) => {
            let admin = if app.model.access.is_admin(&user) { "admin" } else { "" };
            Html(
                CONSOLE
                    .replace("{{user}}", &html_escape(&user))
                    .replace("{{role}}", admin),
            )
            .into_response()
        }
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

fn login_error(status: StatusCode, msg: &str) -> Response {
    let page = LOGIN.replace("{{error}}", &format!("<p class=\"error\">{}</p>", html_escape(msg)));
    (status, Html(page)).into_response()
}

async fn login(
    State(app): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(f): Form<LoginForm>,
) -> Response {
    let user = f.user.chars().take(64).collect::<String>();
    let attempt = app
        .throttle
        .lock()
        .map(|mut t| t.attempt(&user, &peer.ip().to_string(), std::time::Instant::now()))
        .unwrap_or(Ok(()));
    if let Err(wait) = attempt {
        return login_error(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("Too many sign-in attempts for this user or from this address: try again in {wait} s."),
        );
    }
    // argon2 takes tens of milliseconds and 19 MiB: a few at a time, off the event loop.
    let Ok(_permit) = app.hashing.acquire().await else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    };
    let check = app.clone();
    let (u, password) = (user.clone(), f.password);
    let ok = tokio::task::spawn_blocking(move || auth::verify(&check.users, &u, &password))
        .await
        .unwrap_or(false);
    if !ok {
        return login_error(StatusCode::UNAUTHORIZED, "Wrong user name or password.");
    }
    if let Ok(mut t) = app.throttle.lock() {
        t.succeeded(&user);
    }
    signed_in_as(&app, &user)
}

/// Open a session for `user` and send them to the page.
fn signed_in_as(app: &App, user: &str) -> Response {
    let token = match app.sessions.lock().map(|mut s| s.open(user)) {
        Ok(Ok(t)) => t,
        _ => return error(StatusCode::INTERNAL_SERVER_ERROR, "could not open a session"),
    };
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/".to_string()),
            (
                header::SET_COOKIE,
                format!("{COOKIE}={token}; {}; Max-Age=43200", app.cookie_flags()),
            ),
        ],
    )
        .into_response()
}

#[derive(Deserialize)]
struct LinkQuery {
    t: String,
}

/// A one-time sign-in link (`hhlctl web link`, `ssh … web`).
async fn link_signin(State(app): State<Shared>, Query(q): Query<LinkQuery>) -> Response {
    let Some(key) = &app.key else {
        return login_error(StatusCode::NOT_FOUND, "Sign-in links are not set up on this server.");
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let taken = match app.links.lock() {
        Ok(mut used) => used.take(key, &q.t, now),
        Err(_) => Err("try again"),
    };
    match taken {
        Ok(identity) if app.model.developers.contains(&identity) || app.model.access.admins.contains(&identity) => {
            signed_in_as(&app, &identity)
        }
        Ok(identity) => login_error(
            StatusCode::FORBIDDEN,
            &format!("{identity} is no longer a developer or admin here."),
        ),
        Err(why) => login_error(StatusCode::FORBIDDEN, &format!("Sorry: {why}.")),
    }
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
                format!("{COOKIE}=; {}; Max-Age=0", app.cookie_flags()),
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
    /// A moment (µs since the epoch, e.g. a crash): the lines from a minute before it
    /// to a few seconds after, instead of `since`.
    at: Option<u64>,
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
    if let Some(at) = q.at {
        let secs = at / 1_000_000;
        cmd.arg(format!("--since=@{}", secs.saturating_sub(60)));
        cmd.arg(format!("--until=@{}", secs + 5));
    } else if let Some(since) = q.since.as_deref().filter(|s| !s.is_empty()) {
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

/// One live tail of a session, counted while its stream lives.
struct TailSlot {
    app: Shared,
    session: String,
}

impl TailSlot {
    fn take(app: &Shared, session: String) -> Option<TailSlot> {
        let mut tails = app.tails.lock().ok()?;
        let n = tails.entry(session.clone()).or_insert(0);
        if *n >= MAX_TAILS {
            return None;
        }
        *n += 1;
        Some(TailSlot {
            app: app.clone(),
            session,
        })
    }
}

impl Drop for TailSlot {
    fn drop(&mut self) {
        if let Ok(mut tails) = self.app.tails.lock() {
            if let Some(n) = tails.get_mut(&self.session) {
                *n -= 1;
                if *n == 0 {
                    tails.remove(&self.session);
                }
            }
        }
    }
}

async fn tail(State(app): State<Shared>, headers: HeaderMap, Query(q): Query<LogQuery>) -> Response {
    let units = match units_for(&app, &headers, &q) {
        Ok(u) => u,
        Err((status, msg)) => return error(status, msg),
    };
    let Some(slot) = TailSlot::take(&app, token(&headers).unwrap_or_default()) else {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            format!("at most {MAX_TAILS} live tails per session: close one (another tab) first"),
        );
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

fn sse<S: Stream<Item = Result<Event, Infallible>> + Send + 'static>(s: S) -> impl IntoResponse {
    Sse::new(s).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
