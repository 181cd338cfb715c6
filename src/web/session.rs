//! Who is signed in: the session cookie, the `SignedIn` and `Admin` extractors every
//! handler takes (so none repeats the check), and the two ways in: a password
//! (throttled, `guard`) and a one-time link (`ops::web_link`).

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, Form, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{auth, error, guard, limits, App, Shared};
use crate::core::access::{self, Action};
use crate::ops::web_link;

pub(super) const COOKIE: &str = "hhl_session";
/// The device cookie (`web_link::device_token`): this browser signed in as its
/// identity before. Sent to /login only; kept 30 days.
const DEVICE_COOKIE: &str = "hhl_device";

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

pub(super) fn token(headers: &HeaderMap) -> Option<String> {
    cookie(headers, COOKIE).map(str::to_string)
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
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let user = f.user.chars().take(64).collect::<String>();
    let forwarded = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
    let address = limits::client(peer.ip(), forwarded, &app.trusted).to_string();
    let device = cookie(&headers, DEVICE_COOKIE).and_then(|c| web_link::device_of(&app.device_key, c, &user));
    let known = app.users.contains_key(&user);
    let attempt = guard::Try {
        user: &user,
        known,
        address: &address,
        device,
    };
    let now = Instant::now();
    let counted = app
        .throttle
        .lock()
        .map(|mut t| t.attempt(&attempt, now))
        .unwrap_or(Ok(()));
    if let Err(why) = counted {
        return login_error(StatusCode::TOO_MANY_REQUESTS, &why);
    }
    // Made-up names from many addresses (127/8 is all this host's) must not queue
    // ahead of the identities: a few at a time, the rest refused at once.
    let _unknown = match known {
        true => None,
        false => match app.unknown.try_acquire() {
            Ok(p) => Some(p),
            Err(_) => {
                return login_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many sign-in attempts for unknown users at the moment: try again in a few seconds.",
                )
            }
        },
    };
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
        t.succeeded(&attempt, now);
    }
    signed_in_as(&app, &user)
}

/// Open a session for `user` and send them to the page.
fn signed_in_as(app: &App, user: &str) -> Response {
    let token = match app.sessions.lock().map(|mut s| s.open(user)) {
        Ok(Ok(t)) => t,
        _ => return error(StatusCode::INTERNAL_SERVER_ERROR, "could not open a session"),
    };
    let mut r = (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/".to_string()),
            (
                header::SET_COOKIE,
                format!("{COOKIE}={token}; {}; Max-Age=43200", app.cookie_flags()),
            ),
        ],
    )
        .into_response();
    if let Ok(device) = web_link::device_token(&app.device_key, user) {
        let flags = app.cookie_flags().replace("Path=/", "Path=/login");
        if let Ok(v) = format!("{DEVICE_COOKIE}={device}; {flags}; Max-Age=2592000").parse() {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    r
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
