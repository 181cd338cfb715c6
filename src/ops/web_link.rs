//! Passwordless sign-in: `hhlctl web link IDENTITY` (and `ssh <entry>@server web`)
//! prints a one-time URL that signs IDENTITY in for `TTL`. The token is
//! `identity.expiry.nonce.mac`, keyed-BLAKE2b over the rest with the page's key
//! (`KEY`, root-only, handed to hhl-web.service as a credential); the page takes each
//! nonce once (it remembers the used ones until they expire).

use std::collections::HashMap;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Result};
use blake2::digest::consts::U32;
use blake2::digest::{KeyInit, Mac};
use blake2::Blake2bMac;

use crate::host::secrets;

use crate::core::package::{WEB_KEY as KEY, WEB_URL_FILE as URL_FILE};
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";
/// How long a link stays good.
pub const TTL_SECS: u64 = 300;

type Blake = Blake2bMac<U32>;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The page's public address: `URL_FILE`'s line, or `DEFAULT_URL`.
pub fn public_url() -> String {
    std::fs::read_to_string(URL_FILE)
        .ok()
        .map(|s| s.trim().trim_end_matches('/').to_string())
        .filter(|s| s.starts_with("http://") || s.starts_with("https://"))
        .unwrap_or_else(|| DEFAULT_URL.to_string())
}

fn mac(key: &[u8], body: &str) -> Blake {
    let mut m = <Blake as KeyInit>::new_from_slice(key).expect("32-byte key");
    m.update(body.as_bytes());
    m
}

/// A token for `identity`, good until `expiry` (unix seconds).
pub fn token(key: &[u8], identity: &str, expiry: u64) -> Result<String> {
    if identity.is_empty()
        || !identity
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        bail!("`{identity}` is not an identity name");
    }
    let body = format!("{identity}.{expiry}.{}", secrets::random_hex::<16>()?);
    let tag: String = mac(key, &body)
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(format!("{body}.{tag}"))
}

/// The one-time sign-in URL for `identity` (what engineer tools and `ssh … web` print).
/// Must run as a user who can read (or, root, make) the key.
pub fn issue(identity: &str) -> Result<String> {
    let key = secrets::ensure_link_key(Path::new(KEY))?;
    Ok(format!(
        "{}/link?t={}",
        public_url(),
        token(&key, identity, now() + TTL_SECS)?
    ))
}

/// The device cookie a browser gets when it signs in as `identity`:
/// `identity.nonce.mac`, keyed-BLAKE2b over `device.identity.nonce` (apart from
/// links' tokens). Its tries at `identity`'s password are counted on their own
/// (`guard::Throttle`): an attacker sharing the address cannot lock that browser out.
pub fn device_token(key: &[u8], identity: &str) -> Result<String> {
    let nonce = secrets::random_hex::<16>()?;
    let tag: String = mac(key, &format!("device.{identity}.{nonce}"))
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(format!("{identity}.{nonce}.{tag}"))
}

/// The nonce of `cookie` if it is a good device cookie for `identity`.
pub fn device_of<'a>(key: &[u8], cookie: &'a str, identity: &str) -> Option<&'a str> {
    let mut parts = cookie.split('.');
    let (who, nonce, tag) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || who != identity || tag.len() != 64 {
        return None;
    }
    let tag: Vec<u8> = (0..32)
        .filter_map(|i| tag.get(2 * i..2 * i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect();
    mac(key, &format!("device.{identity}.{nonce}"))
        .verify_slice(&tag)
        .is_ok()
        .then_some(nonce)
}

/// Links already taken, by nonce, until they expire.
#[derive(Default)]
pub struct Used(HashMap<String, u64>);

impl Used {
    /// The identity `token` signs in, taking it: `Err` says why not.
    pub fn take(&mut self, key: &[u8], token: &str, now: u64) -> Result<String, &'static str> {
        let parts: Vec<&str> = token.split('.').collect();
        let [identity, expiry, nonce, tag] = parts[..] else {
            return Err("this sign-in link is malformed");
        };
        let body = format!("{identity}.{expiry}.{nonce}");
        let tag: Vec<u8> = (0..tag.len() / 2)
            .filter_map(|i| tag.get(2 * i..2 * i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
            .collect();
        if mac(key, &body).verify_slice(&tag).is_err() {
            return Err("this sign-in link is not one of this server's");
        }
        let expiry: u64 = expiry.parse().map_err(|_| "this sign-in link is malformed")?;
        if expiry <= now || expiry > now + TTL_SECS {
            return Err("this sign-in link has expired: ask for a new one (ssh … web)");
        }
        self.0.retain(|_, e| *e > now);
        if self.0.insert(nonce.to_string(), expiry).is_some() {
            return Err("this sign-in link was used already: ask for a new one (ssh … web)");
        }
        Ok(identity.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The link a developer gets by default opens through the one forward their key
    /// allows (authorized_keys' `permitopen`), at the same address on their machine.
    #[test]
    fn the_default_link_is_the_forwarded_address() {
        assert_eq!(DEFAULT_URL, format!("http://{}", crate::core::authorized_keys::CONSOLE));
    }

    #[test]
    fn a_link_works_once_and_expires() {
        let key = [7u8; 32];
        let t = token(&key, "dev1", 1000 + TTL_SECS).unwrap();
        let mut used = Used::default();
        assert_eq!(used.take(&key, &t, 1000), Ok("dev1".to_string()));
        assert_eq!(
            used.take(&key, &t, 1001).unwrap_err(),
            "this sign-in link was used already: ask for a new one (ssh … web)"
        );
        let late = token(&key, "dev1", 1000 + TTL_SECS).unwrap();
        assert!(used.take(&key, &late, 1000 + TTL_SECS).unwrap_err().contains("expired"));
        let forged = t.replacen("dev1", "dev2", 1);
        assert!(Used::default()
            .take(&key, &forged, 1000)
            .unwrap_err()
            .contains("not one of this server's"));
        assert!(Used::default()
            .take(&[8u8; 32], &t, 1000)
            .unwrap_err()
            .contains("not one of this server's"));
        assert!(token(&key, "a.b", 1).is_err());
        let d = device_token(&key, "dev1").unwrap();
        assert!(device_of(&key, &d, "dev1").is_some());
        assert_eq!(device_of(&key, &d, "dev2"), None);
        assert_eq!(device_of(&[8u8; 32], &d, "dev1"), None);
        assert_eq!(device_of(&key, &d.replacen("dev1", "dev2", 1), "dev2"), None);
        // A link's token is no device cookie.
        assert_eq!(device_of(&key, &t, "dev1"), None);
    }
}
