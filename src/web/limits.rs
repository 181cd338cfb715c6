//! What one client or one identity may hold of the console at once, so that nobody
//! can take every slot: a deadline on the whole request (headers and body), the
//! connections whose request is still arriving (when full, the oldest of the address
//! holding the most is closed: a new client always gets in), live streams per
//! identity with admins counted apart, and requests under way per identity.
//!
//! Every client on this host (dev1's Lua code too), and every developer through an
//! ssh forward, arrives from 127.0.0.1: limits by address alone would let one of them
//! shut out all the others. So an address is only ever refused its *own* excess, and
//! what a signed-in identity holds is counted per identity.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::AbortHandle;

/// A request (its headers and its body) must have arrived this long after its
/// connection was accepted; then the connection is closed (408 once the headers are in).
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(10);
/// The largest request body (forms and JSON of the console are a few hundred bytes).
pub const MAX_BODY: usize = 64 * 1024;
/// Connections whose request has not fully arrived. When one more comes, the oldest
/// of the address with the most is closed: slow senders cannot keep out new clients.
pub const MAX_ARRIVING: usize = 256;
/// Open connections in all (live streams and requests under way included); when
/// full, a new one closes the oldest arriving one, or is closed if none is arriving.
pub const MAX_CONNECTIONS: usize = 1024;
/// Live streams (the console's live view, live tails) one developer may hold, over
/// all their sessions.
pub const STREAMS_PER_IDENTITY: usize = 8;
/// Live streams of all developers together.
pub const STREAMS: usize = 192;
/// Live streams of all admins together, apart from the developers' (an admin always
/// gets in, whatever the developers hold); each admin also has `STREAMS_PER_IDENTITY`.
pub const ADMIN_STREAMS: usize = 64;
/// Sessions one identity may have; signing in once more closes their oldest.
pub const SESSIONS_PER_IDENTITY: usize = 16;
/// Requests (other than live streams) one identity may have under way at once.
pub const REQUESTS_PER_IDENTITY: usize = 8;

#[derive(Default)]
struct Arriving {
    next: u64,
    /// By connection number (so the first is the oldest): its address and task.
    open: BTreeMap<u64, (IpAddr, AbortHandle)>,
    by_address: HashMap<IpAddr, usize>,
}

#[derive(Default)]
struct Held {
    /// Live streams by identity.
    streams: HashMap<String, usize>,
    developer_streams: usize,
    admin_streams: usize,
    /// Requests under way by identity.
    requests: HashMap<String, usize>,
}

/// The console's counts; shared by the accept loop and the handlers.
#[derive(Default)]
pub struct Limits {
    arriving: Mutex<Arriving>,
    held: Mutex<Held>,
    open: std::sync::atomic::AtomicUsize,
}

/// Why a stream or request is refused: the message the client reads (HTTP 429).
#[derive(Debug, PartialEq)]
pub struct Refused(pub String);

impl Limits {
    /// A connection was accepted: its number, after closing the oldest
    /// arriving connection of the busiest address when `MAX_ARRIVING` (or
    /// `MAX_CONNECTIONS`) is reached. `None`: every slot holds a request that has
    /// arrived; the new connection is to be closed.
    pub fn accepted(&self) -> Option<u64> {
        let mut a = self.arriving.lock().ok()?;
        let open = self.open.load(std::sync::atomic::Ordering::Relaxed);
        if (a.open.len() >= MAX_ARRIVING || open >= MAX_CONNECTIONS) && !evict_one(&mut a) {
            return None;
        }
        self.open.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        a.next += 1;
        Some(a.next)
    }

    /// Connection `id` (from `peer`) is served by `task`: it may be closed while its
    /// request arrives.
    pub fn arriving(&self, id: u64, peer: IpAddr, task: AbortHandle) {
        if let Ok(mut a) = self.arriving.lock() {
            a.open.insert(id, (peer, task));
            *a.by_address.entry(peer).or_insert(0) += 1;
        }
    }

    /// Connection `id`'s request has arrived whole: no longer to be closed for others.
    pub fn arrived(&self, id: u64) {
        if let Ok(mut a) = self.arriving.lock() {
            forget(&mut a, id);
        }
    }

    pub fn is_arriving(&self, id: u64) -> bool {
        self.arriving.lock().map(|a| a.open.contains_key(&id)).unwrap_or(false)
    }

    /// Connection `id` closed.
    pub fn closed(&self, id: u64) {
        self.arrived(id);
        self.open.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Connections arriving now, and open now (for tests and the journal).
    pub fn counts(&self) -> (usize, usize) {
        let arriving = self.arriving.lock().map(|a| a.open.len()).unwrap_or(0);
        (arriving, self.open.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// One more live stream for `identity`, given back when the slot drops.
    pub fn stream(self: &Arc<Self>, identity: &str, admin: bool) -> Result<Slot, Refused> {
        let mut h = self.held.lock().map_err(|_| Refused("try again".into()))?;
        let mine = h.streams.get(identity).copied().unwrap_or(0);
        if mine >= STREAMS_PER_IDENTITY {
            return Err(Refused(format!(
                "{identity} has {STREAMS_PER_IDENTITY} live views open already (the most one identity may): close one (another tab) first"
            )));
        }
        let (all, max, whose) = if admin {
            (h.admin_streams, ADMIN_STREAMS, "admins")
        } else {
            (h.developer_streams, STREAMS, "developers")
        };
        if all >= max {
            return Err(Refused(format!(
                "the {whose} have {max} live views open (the most there may be at once): try again in a minute"
            )));
        }
        *h.streams.entry(identity.to_string()).or_insert(0) += 1;
        if admin {
            h.admin_streams += 1;
        } else {
            h.developer_streams += 1;
        }
        Ok(Slot {
            limits: self.clone(),
            identity: identity.to_string(),
            kind: SlotKind::Stream { admin },
        })
    }

    /// One more request under way for `identity`, given back when the slot drops.
    pub fn request(self: &Arc<Self>, identity: &str) -> Result<Slot, Refused> {
        let mut h = self.held.lock().map_err(|_| Refused("try again".into()))?;
        let n = h.requests.entry(identity.to_string()).or_insert(0);
        if *n >= REQUESTS_PER_IDENTITY {
            return Err(Refused(format!(
                "{identity} has {REQUESTS_PER_IDENTITY} requests under way already (the most one identity may): wait for them"
            )));
        }
        *n += 1;
        Ok(Slot {
            limits: self.clone(),
            identity: identity.to_string(),
            kind: SlotKind::Request,
        })
    }
}

/// Close the oldest arriving connection of the address with the most; false if none.
fn evict_one(a: &mut Arriving) -> bool {
    let Some((&busiest, _)) = a.by_address.iter().max_by_key(|(_, n)| **n) else {
        return false;
    };
    let Some(id) = a.open.iter().find(|(_, (ip, _))| *ip == busiest).map(|(id, _)| *id) else {
        return false;
    };
    if let Some((_, task)) = a.open.get(&id) {
        task.abort();
    }
    forget(a, id);
    true
}

fn forget(a: &mut Arriving, id: u64) {
    if let Some((ip, _)) = a.open.remove(&id) {
        if let Some(n) = a.by_address.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                a.by_address.remove(&ip);
            }
        }
    }
}

enum SlotKind {
    Stream { admin: bool },
    Request,
}

/// A live stream or a request under way, counted while it lives.
pub struct Slot {
    limits: Arc<Limits>,
    identity: String,
    kind: SlotKind,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Ok(mut h) = self.limits.held.lock() else {
            return;
        };
        let h = &mut *h;
        let (map, total) = match self.kind {
            SlotKind::Stream { admin: true } => (&mut h.streams, Some(&mut h.admin_streams)),
            SlotKind::Stream { admin: false } => (&mut h.streams, Some(&mut h.developer_streams)),
            SlotKind::Request => (&mut h.requests, None),
        };
        if let Some(n) = map.get_mut(&self.identity) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.identity);
            }
        }
        if let Some(t) = total {
            *t -= 1;
        }
    }
}

/// The client's address: the peer's, or, when the peer is one of `trusted` proxies,
/// the last address of its `X-Forwarded-For` (the one that proxy appended; any before
/// it were written by the client). From anyone else the header is ignored.
pub fn client(peer: IpAddr, forwarded: Option<&str>, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    forwarded
        .and_then(|f| f.rsplit(',').next())
        .and_then(|last| last.trim().parse().ok())
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_busiest_address_loses_its_oldest_arriving_connection() {
        let l = Limits::default();
        let task = || tokio::spawn(std::future::pending::<()>()).abort_handle();
        let mut attacker = Vec::new();
        for _ in 0..MAX_ARRIVING - 1 {
            let id = l.accepted().unwrap();
            let t = task();
            l.arriving(id, ip("10.0.0.66"), t.clone());
            attacker.push(t);
        }
        let victim = l.accepted().unwrap();
        l.arriving(victim, ip("10.0.0.7"), task());
        assert_eq!(l.counts(), (MAX_ARRIVING, MAX_ARRIVING));
        // Full: the next (from anyone) closes the attacker's oldest, not the victim's.
        let next = l.accepted().unwrap();
        l.arriving(next, ip("10.0.0.66"), task());
        tokio::task::yield_now().await;
        assert!(attacker[0].is_finished());
        assert!(l.is_arriving(victim));
        l.arrived(victim);
        assert!(!l.is_arriving(victim));
        l.closed(victim);
        // (The closed attacker's task gives its count back as it ends: here no task
        // runs one, so it still counts as open.)
        assert_eq!(l.counts(), (MAX_ARRIVING - 1, MAX_ARRIVING));
    }

    #[test]
    fn streams_per_identity_and_admins_apart() {
        let l = Arc::new(Limits::default());
        let mine: Vec<Slot> = (0..STREAMS_PER_IDENTITY)
            .map(|_| l.stream("dev1", false).unwrap())
            .collect();
        assert_eq!(
            l.stream("dev1", false).err().unwrap().0,
            "dev1 has 8 live views open already (the most one identity may): close one (another tab) first"
        );
        let mut others = Vec::new();
        for i in 0..(STREAMS - STREAMS_PER_IDENTITY) {
            others.push(l.stream(&format!("d{}", i / STREAMS_PER_IDENTITY), false).unwrap());
        }
        assert!(l
            .stream("dev2", false)
            .err()
            .unwrap()
            .0
            .starts_with("the developers have 192"));
        // Admins have their own.
        let _admin = l.stream("lead", true).unwrap();
        drop(mine);
        let _again = l.stream("dev1", false).unwrap();
        let reqs: Vec<Slot> = (0..REQUESTS_PER_IDENTITY).map(|_| l.request("dev1").unwrap()).collect();
        assert!(l.request("dev1").is_err());
        assert!(l.request("dev2").is_ok());
        drop(reqs);
        assert!(l.request("dev1").is_ok());
    }

    #[test]
    fn forwarded_addresses_only_from_a_trusted_proxy() {
        let proxy = [ip("127.0.0.1")];
        let fwd = Some("203.0.113.9, 10.0.0.7");
        assert_eq!(client(ip("127.0.0.1"), fwd, &proxy), ip("10.0.0.7"));
        assert_eq!(client(ip("127.0.0.2"), fwd, &proxy), ip("127.0.0.2"));
        assert_eq!(client(ip("127.0.0.1"), Some("garbage"), &proxy), ip("127.0.0.1"));
        assert_eq!(client(ip("127.0.0.1"), None, &proxy), ip("127.0.0.1"));
        assert_eq!(client(ip("127.0.0.1"), fwd, &[]), ip("127.0.0.1"));
    }
}
