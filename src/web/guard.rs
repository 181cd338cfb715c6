//! What keeps the log page up and its sign-in honest under abuse: sign-in attempts
//! throttled so that the attacker, not the victim, is shut out, and the Origin check
//! on every POST (login CSRF). Pure apart from the clock it is given.
//!
//! Wrong passwords are counted per identity *and* client address together, so that
//! ten wrong tries for dev1 from one address lock only that pair. Behind a proxy or
//! an ssh forward every developer arrives from the same address, the attacker too:
//! so a browser that signed in as dev1 before carries a signed device cookie, and its
//! tries are counted on their own (the OWASP "device cookie"), whatever the address
//! has done. Names that are no identity here are counted per address, apart from the
//! identities' tries: made-up users lock out made-up users. A sign-in link
//! (`ssh <entry>@server web`) is never throttled.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap};

/// Wrong passwords for one identity from one client address, or from one browser
/// that signed in as them before (device cookie), in one window.
pub const PER_PAIR: usize = 10;
/// Wrong passwords for one identity from all addresses without its device cookie
/// (many addresses guessing one password), in one window.
pub const PER_IDENTITY: usize = 100;
/// Tries for names that are no identity here, per client address, in one window.
pub const UNKNOWN_PER_ADDRESS: usize = 30;
/// Tries for names that are no identity here being checked at once, from everywhere
/// (one attacker has all of 127/8 to come from): the rest are refused at once, and
/// never queue ahead of the identities for the password hash.
pub const UNKNOWN_AT_ONCE: usize = 4;
pub const WINDOW: Duration = Duration::from_secs(300);
/// Keys remembered at once; beyond, every new key is throttled (memory stays bounded).
const MAX_KEYS: usize = 100_000;

/// Who tries to sign in: the name typed, whether it is an identity here, the client
/// address, and the device cookie's nonce if the browser holds a good one for `user`.
pub struct Try<'a> {
    pub user: &'a str,
    pub known: bool,
    pub address: &'a str,
    pub device: Option<&'a str>,
}

impl Try<'_> {
    /// The counts this try goes to, each with its limit and what to say when full.
    fn keys(&self) -> Vec<(String, usize, String)> {
        let (user, address) = (self.user, self.address);
        let link = "or sign in with a link (`ssh <entry>@server web`)";
        match (self.known, self.device) {
            (true, Some(d)) => vec![(
                format!("d:{user}:{d}"),
                PER_PAIR,
                format!("Too many wrong passwords for {user} from this browser: try again in {{}} s, {link}."),
            )],
            (true, None) => vec![
                (
                    format!("p:{user}:{address}"),
                    PER_PAIR,
                    format!("Too many wrong passwords for {user} from this address: try again in {{}} s, {link}."),
                ),
                (
                    format!("u:{user}"),
                    PER_IDENTITY,
                    format!("Too many wrong passwords for {user} from everywhere: try again in {{}} s from a browser that signed in as {user} before, {link}."),
                ),
            ],
            (false, _) => vec![(
                format!("a:{address}"),
                UNKNOWN_PER_ADDRESS,
                "Too many sign-in attempts for unknown users from this address: try again in {} s.".to_string(),
            )],
        }
    }
}

#[derive(Default)]
pub struct Throttle {
    attempts: HashMap<String, Vec<Instant>>,
}

impl Throttle {
    /// Count a try at `now` (before the password is checked: the checks a client can
    /// queue are bounded too): `Err(message)` when one of its counts is full (the try
    /// is then not counted).
    pub fn attempt(&mut self, t: &Try, now: Instant) -> Result<(), String> {
        if self.attempts.len() > MAX_KEYS {
            self.attempts
                .retain(|_, v| v.iter().any(|t| now.duration_since(*t) < WINDOW));
        }
        let keys = t.keys();
        let mut refused: Option<(u64, &str)> = None;
        for (key, max, why) in &keys {
            let wait = match self.attempts.get_mut(key.as_str()) {
                Some(v) => {
                    v.retain(|t| now.duration_since(*t) < WINDOW);
                    (v.len() >= *max).then(|| (WINDOW - now.duration_since(v[0])).as_secs() + 1)
                }
                None => (self.attempts.len() >= MAX_KEYS).then_some(WINDOW.as_secs()),
            };
            if let Some(w) = wait {
                if refused.is_none_or(|(r, _)| w > r) {
                    refused = Some((w, why));
                }
            }
        }
        if let Some((wait, why)) = refused {
            return Err(why.replacen("{}", &wait.to_string(), 1));
        }
        for (key, _, _) in keys {
            self.attempts.entry(key).or_default().push(now);
        }
        Ok(())
    }

    /// The try at `now` was right: it no longer counts.
    pub fn succeeded(&mut self, t: &Try, now: Instant) {
        for (key, _, _) in t.keys() {
            if let Some(v) = self.attempts.get_mut(&key) {
                v.retain(|at| *at != now);
                if v.is_empty() {
                    self.attempts.remove(&key);
                }
            }
        }
    }
}

/// Why a POST is refused as cross-site, if it is: its `Origin` is not the page's own
/// (`public` or this request's Host), or `Sec-Fetch-Site` says another site sent it.
/// A request with neither header comes from no browser (no CSRF) and passes.
pub fn cross_site(headers: &HeaderMap, public: &str) -> Option<String> {
    let get = |h: &str| headers.get(h).and_then(|v| v.to_str().ok());
    if let Some(site) = get("sec-fetch-site") {
        if site != "same-origin" && site != "none" {
            return Some(format!("Sec-Fetch-Site is {site}"));
        }
    }
    let origin = get(header::ORIGIN.as_str())?;
    let host = get(header::HOST.as_str()).unwrap_or("");
    let ours = [
        public.trim_end_matches('/').to_string(),
        format!("http://{host}"),
        format!("https://{host}"),
    ];
    if ours.iter().any(|o| o == origin) {
        None
    } else {
        Some(format!("Origin {origin} is not this page"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn try_<'a>(user: &'a str, known: bool, address: &'a str, device: Option<&'a str>) -> Try<'a> {
        Try {
            user,
            known,
            address,
            device,
        }
    }

    #[test]
    fn the_attacker_is_locked_out_not_the_victim() {
        let mut t = Throttle::default();
        let now = Instant::now();
        // Ten wrong passwords for dev1 from the shared address lock that pair only.
        for _ in 0..PER_PAIR {
            t.attempt(&try_("dev1", true, "127.0.0.1", None), now).unwrap();
        }
        assert_eq!(
            t.attempt(&try_("dev1", true, "127.0.0.1", None), now).unwrap_err(),
            "Too many wrong passwords for dev1 from this address: try again in 301 s, or sign in with a link (`ssh <entry>@server web`)."
        );
        // dev1's own browser (device cookie), another address, another identity: in.
        t.attempt(&try_("dev1", true, "127.0.0.1", Some("n1")), now).unwrap();
        t.attempt(&try_("dev1", true, "10.0.0.2", None), now).unwrap();
        t.attempt(&try_("dev2", true, "127.0.0.1", None), now).unwrap();
        // Made-up users lock out made-up users from that address, nobody else.
        for i in 0..UNKNOWN_PER_ADDRESS {
            t.attempt(&try_(&format!("u{i}"), false, "127.0.0.1", None), now)
                .unwrap();
        }
        assert_eq!(
            t.attempt(&try_("nobody", false, "127.0.0.1", None), now).unwrap_err(),
            "Too many sign-in attempts for unknown users from this address: try again in 301 s."
        );
        t.attempt(&try_("dev3", true, "127.0.0.1", None), now).unwrap();
        // A right password gives its try back to the pair.
        let later = now + Duration::from_secs(1);
        let right = try_("dev2", true, "127.0.0.1", None);
        t.attempt(&right, later).unwrap();
        t.succeeded(&right, later);
        assert_eq!(t.attempts["p:dev2:127.0.0.1"].len(), 1);
        // Many addresses against one identity: beyond PER_IDENTITY, only its device.
        for i in 0..PER_IDENTITY {
            let _ = t.attempt(&try_("dev4", true, &format!("10.1.{}.{}", i / 200, i % 200), None), now);
        }
        assert!(t
            .attempt(&try_("dev4", true, "10.9.9.9", None), now)
            .unwrap_err()
            .contains("from everywhere"));
        t.attempt(&try_("dev4", true, "10.9.9.9", Some("n2")), now).unwrap();
        // The window passes.
        t.attempt(&try_("dev1", true, "127.0.0.1", None), now + WINDOW).unwrap();
    }

    #[test]
    fn origin_must_be_the_page() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "logs.example:8080".parse().unwrap());
        assert_eq!(cross_site(&h, "https://logs.example"), None);
        h.insert(header::ORIGIN, "http://logs.example:8080".parse().unwrap());
        assert_eq!(cross_site(&h, "https://logs.example"), None);
        h.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert_eq!(
            cross_site(&h, "https://logs.example").unwrap(),
            "Origin https://evil.example is not this page"
        );
        h.remove(header::ORIGIN);
        h.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert_eq!(
            cross_site(&h, "https://logs.example").unwrap(),
            "Sec-Fetch-Site is cross-site"
        );
    }
}
