//! Who is signed in: the session cookie, the `SignedIn` and `Admin` extractors every
//! handler takes (so none repeats the check), and the two ways in: a password
//! (throttled, `guard`) and a one-time link (`ops::web_link`).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Form, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{auth, error, App, Shared};
use crate::core::access::{self, Action};

pub(super) const COOKIE: &str = "hhl_session";

pub(super) fn token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

pub(super) fn signed_in(app: &App, headers: &HeaderMap) -> Option<String> {
    let t = token(headers)?;
    app.sessions.lock().ok()?.user(&t).map(str::to_string)
}

/// The signed-in identity; a request without a live session is answered 401.
pub(super) struct SignedIn(pub String);

impl FromRequestParts<Shared> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &Shared) -> Result<Self, Response> {
        signed_in(app, &parts.headers)
            .map(SignedIn)
            .ok_or_else(|| error(StatusCode::UNAUTHORIZED, "sign in first"))
    }
}

/// A signed-in admin (`access::may(…, Admin)`); others are answered 403.
pub(super) struct Admin;

impl FromRequestParts<Shared> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &Shared) -> Result<Self, Response> {
        let SignedIn(user) = SignedIn::from_request_parts(parts, app).await?;
        match access::may(&app.model, &user, Action::Admin) {
            Ok(()) => Ok(Admin),
            Err(why) => Err(error(StatusCode::FORBIDDEN, format!("refused: {why}"))),
        }
    }
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    user: String,
    password: String,
}

pub(super) fn login_error(status: StatusCode, msg: &str) -> Response {
    (status, super::pages::login(Some(msg))).into_response()
}

pub(super) async fn login(
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
pub(super) struct LinkQuery {
    t: String,
}

/// A one-time sign-in link (`hhlctl web link`, `ssh … web`).
pub(super) async fn link_signin(State(app): State<Shared>, Query(q): Query<LinkQuery>) -> Response {
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

pub(super) async fn logout(State(app): State<Shared>, headers: HeaderMap) -> Response {
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
