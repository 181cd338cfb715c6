//! `hhlctl web`: the page where developers read their own instances' logs. A small
//! HTTP server (axum) that signs users in against salted password hashes, asks
//! `journalctl` for the units they may see, and live-tails with server-sent events.
//! It runs as the hardened `hhl-web.service` (a dynamic user in group systemd-journal).

mod actions;
mod admin;
pub mod auth;
mod console;
pub mod entry;
pub mod guard;
pub mod limits;
mod logs;
mod pages;
mod session;
mod snapshot;
mod tail;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::extract::{ConnectInfo, Extension, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::stream::Stream;

use crate::core::model::Model;

const CONSOLE_JS: &str = include_str!("console.js");
const APP_JS: &str = include_str!("app.js");

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

struct App {
    model: Model,
    users: HashMap<String, String>,
    sessions: Mutex<auth::Sessions>,
    hashing: tokio::sync::Semaphore,
    /// Tries for names that are no identity here, at once (`guard::UNKNOWN_AT_ONCE`).
    unknown: tokio::sync::Semaphore,
    throttle: Mutex<guard::Throttle>,
    limits: Arc<limits::Limits>,
    /// Whose `X-Forwarded-For` is believed (hhl.yaml's `web.trusted_proxies`).
    trusted: Vec<IpAddr>,
    /// Signs device cookies: the link key, or one of this process's own.
    device_key: Vec<u8>,
    key: Option<Vec<u8>>,
    links: Mutex<crate::ops::web_link::Used>,
    public_url: String,
    watch: snapshot::Watch,
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
    let device_key = match &key {
        Some(k) => k.clone(),
        None => crate::host::secrets::random::<32>()?.to_vec(),
    };
    let app: Shared = Arc::new(App {
        trusted: model.trusted_proxies.clone(),
        model,
        users,
        sessions: Mutex::new(auth::Sessions::new(Duration::from_secs(12 * 3600))),
        hashing: tokio::sync::Semaphore::new(HASHING),
        unknown: tokio::sync::Semaphore::new(guard::UNKNOWN_AT_ONCE),
        throttle: Mutex::new(guard::Throttle::default()),
        limits: Arc::new(limits::Limits::default()),
        device_key,
        key,
        links: Mutex::new(crate::ops::web_link::Used::default()),
        public_url: cfg.public_url.trim_end_matches('/').to_string(),
        watch: snapshot::Watch::new(),
    });
    let router = Router::new()
        .route("/", get(console_page))
        .route("/logs", get(logs_page))
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
        .route("/api/act", post(actions::act))
        .route("/api/rollback", post(actions::rollback))
        .route("/api/releases", get(actions::releases))
        .route("/api/around", get(logs::around))
        .route("/api/admin/apply", get(admin::last_apply))
        .route("/api/admin/plan", get(admin::plan))
        .route("/login", get(|| async { pages::login(None) }).post(session::login))
        .route("/link", get(session::link_signin))
        .route("/logout", post(session::logout))
        .route("/api/instances", get(logs::instances))
        .route("/api/logs", get(logs::logs))
        .route("/api/tail", get(logs::tail))
        .layer(axum::middleware::map_response(security_headers))
        .layer(axum::middleware::from_fn_with_state(app.clone(), same_origin_posts))
        .layer(axum::middleware::from_fn_with_state(app.clone(), arrive))
        .with_state(app.clone());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async {
        tokio::spawn(snapshot::poll(app.clone()));
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .with_context(|| format!("listening on {}", cfg.listen))?;
        eprintln!(
            "hhlctl web: listening on http://{} (public address {})",
            listener.local_addr().unwrap_or(cfg.listen),
            cfg.public_url
        );
        accept(listener, router, app.limits.clone()).await
    })
}

/// The connection a request came on: its number in `limits`, when it was accepted.
#[derive(Clone, Copy)]
struct Conn {
    id: u64,
    accepted: Instant,
}

/// Serve each connection, one request each (no keep-alive), within `limits`: the
/// request (headers and body) must arrive by `REQUEST_DEADLINE`, and while it
/// arrives the connection may be closed to let a newer one in.
async fn accept(listener: tokio::net::TcpListener, router: Router, limits: Arc<limits::Limits>) -> Result<()> {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            // EMFILE and friends: wait for connections to close rather than spin.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let accepted = Instant::now();
        let Some(id) = limits.accepted() else {
            drop(stream);
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(
            router
                .clone()
                .layer(axum::Extension(ConnectInfo(peer)))
                .layer(axum::Extension(Conn { id, accepted })),
        );
        let peek = limits::Peek::of(&stream);
        let open = limits.clone();
        let task = tokio::spawn(async move {
            let _open = Open(open.clone(), id);
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits::REQUEST_DEADLINE)
                .keep_alive(false)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::pin!(conn);
            // `arrive` answers a late body with 408 at the deadline; this closes what
            // is still arriving just after it (headers never finished).
            let late = tokio::time::Instant::from_std(accepted + limits::REQUEST_DEADLINE + Duration::from_secs(1));
            tokio::select! {
                _ = conn.as_mut() => return,
                _ = tokio::time::sleep_until(late) => {}
            }
            if open.is_arriving(id) {
                return;
            }
            let _ = conn.await;
        });
        limits.arriving(id, peer.ip(), task.abort_handle(), peek);
    }
}

/// An open connection, counted until its task ends (or is aborted).
struct Open(Arc<limits::Limits>, u64);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.closed(self.1);
    }
}

/// Outermost: the request's body must arrive whole (at most `MAX_BODY`) by the
/// connection's deadline; then the connection is no longer one that may be closed
/// for newer ones, and a signed-in identity's request counts against its
/// `REQUESTS_PER_IDENTITY` while it is answered.
async fn arrive(
    State(app): State<Shared>,
    Extension(conn): Extension<Conn>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let length = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = length.filter(|n| *n > limits::MAX_BODY as u64) {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "refused: a request body of {n} bytes; the most this page takes is {} bytes",
                limits::MAX_BODY
            ),
        );
    }
    let deadline = tokio::time::Instant::from_std(conn.accepted + limits::REQUEST_DEADLINE);
    let body = match tokio::time::timeout_at(deadline, axum::body::to_bytes(body, limits::MAX_BODY)).await {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "refused: the request body is broken or longer than {} bytes",
                    limits::MAX_BODY
                ),
            )
        }
        Err(_) => {
            return error(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "refused: the request did not arrive whole within {} s of connecting",
                    limits::REQUEST_DEADLINE.as_secs()
                ),
            )
        }
    };
    app.limits.arrived(conn.id);
    let req = Request::from_parts(parts, axum::body::Body::from(body));
    let _slot = match session::signed_in(&app, req.headers()) {
        Some(user) => match app.limits.request(&user) {
            Ok(slot) => Some(slot),
            Err(why) => return error(StatusCode::TOO_MANY_REQUESTS, format!("refused: {}", why.0)),
        },
        None => None,
    };
    next.run(req).await
}

/// A live stream for the signed-in `user` (within `limits`), or the refusal.
fn live_stream(app: &Shared, user: &str) -> Result<limits::Slot, (StatusCode, String)> {
    app.limits
        .stream(user, app.model.access.is_admin(user))
        .map_err(|why| (StatusCode::TOO_MANY_REQUESTS, format!("refused: {}", why.0)))
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

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": msg.into() }))).into_response()
}

fn sse<S: Stream<Item = Result<Event, Infallible>> + Send + 'static>(s: S) -> impl IntoResponse {
    Sse::new(s).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// The log page, or the way to sign in.
async fn logs_page(State(app): State<Shared>, headers: HeaderMap) -> Response {
    match session::signed_in(&app, &headers) {
        Some(user) => pages::logs(&user),
        None => Redirect::to("/login").into_response(),
    }
}

/// The console (home page): the signed-in identity's instances.
async fn console_page(State(app): State<Shared>, headers: HeaderMap) -> Response {
    match session::signed_in(&app, &headers) {
        Some(user) => pages::console(&user, app.model.access.is_admin(&user)),
        None => Redirect::to("/login").into_response(),
    }
}
