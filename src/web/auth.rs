//! Who may sign in to the log page: a file of `user:<argon2id PHC hash>` lines (salted
//! hashes only; `hhlctl web passwd USER` writes them), and in-memory sessions keyed by
//! random tokens.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// Parse the password file; `Err` names the first bad line.
pub fn parse(text: &str) -> Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((user, hash)) = line.split_once(':') else {
            return Err(format!("line {}: expected `user:hash`", n + 1));
        };
        if PasswordHash::new(hash).is_err() {
            return Err(format!("line {}: the hash of `{user}` is not a PHC string", n + 1));
        }
        out.insert(user.to_string(), hash.to_string());
    }
    Ok(out)
}

fn random<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("getrandom: {e}"))?;
    Ok(bytes)
}

pub fn hash(password: &str) -> Result<String> {
    let salt = SaltString::encode_b64(&random::<16>()?).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("hashing: {e}"))?
        .to_string())
}

pub fn verify(users: &HashMap<String, String>, user: &str, password: &str) -> bool {
    // Unknown users cost the same as wrong passwords.
    const DUMMY: &str =
        "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$1Xwq7zKlfq5n1Nn0tqyYJSyNb5P7iYqzV4cT8DmJQgU";
    let stored = users.get(user).map(String::as_str).unwrap_or(DUMMY);
    let ok = PasswordHash::new(stored)
        .map(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
        .unwrap_or(false);
    ok && users.contains_key(user)
}

/// Replace or add `user`'s line in the password file text.
pub fn set(text: &str, user: &str, hash: &str) -> Result<String> {
    if user.is_empty() || user.contains(':') || user.contains(char::is_whitespace) {
        bail!("`{user}` cannot be a user name here");
    }
    let mut out = String::new();
    let mut done = false;
    for line in text.lines() {
        if line.split_once(':').is_some_and(|(u, _)| u == user) {
            out += &format!("{user}:{hash}\n");
            done = true;
        } else {
            out += line;
            out.push('\n');
        }
    }
    if !done {
        out += &format!("{user}:{hash}\n");
    }
    Ok(out)
}

pub struct Sessions {
    /// Token → identity, expiry, and the order sessions were opened in.
    by_token: HashMap<String, (String, Instant, u64)>,
    ttl: Duration,
    opened: u64,
}

impl Sessions {
    pub fn new(ttl: Duration) -> Sessions {
        Sessions {
            by_token: HashMap::new(),
            ttl,
            opened: 0,
        }
    }

    pub fn open(&mut self, user: &str) -> Result<String> {
        let bytes = random::<32>()?;
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let now = Instant::now();
        self.by_token.retain(|_, (_, exp, _)| *exp > now);
        // One identity's sessions are bounded: the oldest gives way.
        let mut mine: Vec<(u64, String)> = self
            .by_token
            .iter()
            .filter(|(_, (u, _, _))| u == user)
            .map(|(t, (_, _, n))| (*n, t.clone()))
            .collect();
        if mine.len() >= super::limits::SESSIONS_PER_IDENTITY {
            mine.sort();
            for (_, t) in &mine[..=mine.len() - super::limits::SESSIONS_PER_IDENTITY] {
                self.by_token.remove(t);
            }
        }
        self.opened += 1;
        self.by_token
            .insert(token.clone(), (user.to_string(), now + self.ttl, self.opened));
        Ok(token)
    }

    pub fn user(&self, token: &str) -> Option<&str> {
        self.by_token
            .get(token)
            .filter(|(_, exp, _)| *exp > Instant::now())
            .map(|(u, _, _)| u.as_str())
    }

    pub fn close(&mut self, token: &str) {
        self.by_token.remove(token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_salted_and_verify() {
        let a = hash("s3cret").unwrap();
        let b = hash("s3cret").unwrap();
        assert_ne!(a, b, "same password, same hash: no salt");
        assert!(a.starts_with("$argon2id$"));
        let users = parse(&set("", "dev1", &a).unwrap()).unwrap();
        assert!(verify(&users, "dev1", "s3cret"));
        assert!(!verify(&users, "dev1", "wrong"));
        assert!(!verify(&users, "dev2", "s3cret"));
        assert_eq!(parse("dev1 nohash\n").unwrap_err(), "line 1: expected `user:hash`");
        assert!(parse("dev1:plain\n").unwrap_err().contains("not a PHC string"));
    }

    #[test]
    fn sessions_expire() {
        let mut s = Sessions::new(Duration::from_millis(0));
        let t = s.open("dev1").unwrap();
        assert_eq!(s.user(&t), None);
        let mut s = Sessions::new(Duration::from_secs(60));
        let t = s.open("dev1").unwrap();
        assert_eq!(s.user(&t), Some("dev1"));
        s.close(&t);
        assert_eq!(s.user(&t), None);
    }

    #[test]
    fn signing_in_again_and_again_closes_ones_own_oldest_sessions() {
        let max = crate::web::limits::SESSIONS_PER_IDENTITY;
        let mut s = Sessions::new(Duration::from_secs(60));
        let other = s.open("dev2").unwrap();
        let first = s.open("dev1").unwrap();
        let rest: Vec<String> = (0..max).map(|_| s.open("dev1").unwrap()).collect();
        assert_eq!(s.user(&first), None);
        assert!(rest.iter().all(|t| s.user(t) == Some("dev1")));
        assert_eq!(s.user(&other), Some("dev2"));
    }
}
