//! What keeps the log page up and its sign-in honest under abuse: sign-in attempts
//! throttled per user and per address, and the Origin check on every POST (login
//! CSRF). Pure apart from the clock it is given.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap};

/// Attempts allowed per user name, and per client address, in one window.
pub const PER_USER: usize = 10;
pub const PER_ADDRESS: usize = 30;
pub const WINDOW: Duration = Duration::from_secs(300);
/// Keys remembered at once; beyond, every new key is throttled (memory stays bounded).
const MAX_KEYS: usize = 100_000;

#[derive(Default)]
pub struct Throttle {
    attempts: HashMap<String, Vec<Instant>>,
}

impl Throttle {
    /// Count an attempt by `user` from `address` at `now`: `Err(seconds to wait)` when
    /// either has used up its window (the attempt is then not counted).
    pub fn attempt(&mut self, user: &str, address: &str, now: Instant) -> Result<(), u64> {
        if self.attempts.len() > MAX_KEYS {
            self.attempts
                .retain(|_, v| v.iter().any(|t| now.duration_since(*t) < WINDOW));
        }
        let keys = [(format!("u:{user}"), PER_USER), (format!("a:{address}"), PER_ADDRESS)];
        let mut wait = 0;
        for (key, max) in &keys {
            let seen = self.attempts.get_mut(key.as_str());
            if let Some(v) = seen {
                v.retain(|t| now.duration_since(*t) < WINDOW);
                if v.len() >= *max {
                    let oldest = v[0];
                    wait = wait.max((WINDOW - now.duration_since(oldest)).as_secs() + 1);
                }
            } else if self.attempts.len() >= MAX_KEYS {
                wait = wait.max(WINDOW.as_secs());
            }
        }
        if wait > 0 {
            return Err(wait);
        }
        for (key, _) in keys {
            self.attempts.entry(key).or_default().push(now);
        }
        Ok(())
    }

    /// A successful sign-in clears the user's count (not the address's).
    pub fn succeeded(&mut self, user: &str) {
        self.attempts.remove(&format!("u:{user}"));
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

    #[test]
    fn throttles_per_user_and_per_address() {
        let mut t = Throttle::default();
        let now = Instant::now();
        for _ in 0..PER_USER {
            t.attempt("dev1", "10.0.0.1", now).unwrap();
        }
        assert_eq!(t.attempt("dev1", "10.0.0.2", now), Err(WINDOW.as_secs() + 1));
        t.attempt("dev2", "10.0.0.1", now).unwrap();
        t.succeeded("dev1");
        t.attempt("dev1", "10.0.0.3", now).unwrap();
        let later = now + WINDOW;
        for i in 0..PER_ADDRESS {
            t.attempt(&format!("u{i}"), "10.0.0.9", later).unwrap();
        }
        assert!(t.attempt("dev3", "10.0.0.9", later).is_err());
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
