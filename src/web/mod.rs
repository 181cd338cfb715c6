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
mod logs;
mod pages;
mod session;
mod snapshot;
mod tail;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::extract::{ConnectInfo, Request, State};
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
/// Open connections at once; beyond, new ones are closed on accept.
const MAX_CONNECTIONS: usize = 256;
/// A request's headers must arrive within this (and connections are not kept alive).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

struct App {
    model: Model,
    users: HashMap<String, String>,
    sessions: Mutex<auth::Sessions>,
    hashing: tokio::sync::Semaphore,
    throttle: Mutex<guard::Throttle>,
    tails: Mutex<HashMap<String, usize>>,
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
    let app: Shared = Arc::new(App {
        model,
        users,
        sessions: Mutex::new(auth::Sessions::new(Duration::from_secs(12 * 3600))),
        hashing: tokio::sync::Semaphore::new(HASHING),
        throttle: Mutex::new(guard::Throttle::default()),
        tails: Mutex::new(HashMap::new()),
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
        .with_state(app.clone());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async {
        tokio::spawn(snapshot::poll(app));
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
