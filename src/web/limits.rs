//! What one client or one identity may hold of the console at once, so that nobody
//! can take every slot: a deadline on the whole request (headers and body), the
//! connections whose request is still arriving (when full, the oldest stalled one of
//! the address holding the most is closed: a new client always gets in), live streams per
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
    /// By connection number (so the first is the oldest): its address, its task, and
    /// a look at what it has sent.
    open: BTreeMap<u64, (IpAddr, AbortHandle, Option<Peek>)>,
    by_address: HashMap<IpAddr, usize>,
}

/// A second handle on an arriving connection's socket, to look at what the client
/// sent without taking it. A request that already sits whole in the kernel's buffer
/// is not stalling, only waiting for its task to be run (on a busy host, behind a
/// flood of reconnects from its own address: every developer's tunnel arrives from
/// 127.0.0.1), so it is not the one to close.
pub struct Peek(std::net::TcpStream);

impl Peek {
    /// One more descriptor while the request arrives (units/hhl-web.service's
    /// LimitNOFILE=16384 has room for `MAX_CONNECTIONS` twice over); `None` when the
    /// process has none left.
    pub fn of(socket: &impl std::os::fd::AsFd) -> Option<Peek> {
        let fd = socket.as_fd().try_clone_to_owned().ok()?;
        Some(Peek(std::net::TcpStream::from(fd)))
    }

    /// Whether a whole request (head, and the body its Content-Length announces) has
    /// arrived. The socket is non-blocking (the runtime's), so this never waits.
    fn whole(&self) -> bool {
        let mut buf = [0u8; 8192];
        match self.0.peek(&mut buf) {
            Ok(n) => request_whole(&buf[..n]),
            Err(_) => false,
        }
    }
}

/// Whether `bytes` hold a whole HTTP/1 request: a complete head, no chunked body, and
/// as many bytes after it as Content-Length says.
fn request_whole(bytes: &[u8]) -> bool {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(head)) = req.parse(bytes) else {
        return false;
    };
    let mut length = 0;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return false;
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            match std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
            {
                Some(n) => length = n,
                None => return false,
            }
        }
    }
    bytes.len() - head >= length
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
    /// request arrives (unless `peek` shows it arrived whole).
    pub fn arriving(&self, id: u64, peer: IpAddr, task: AbortHandle, peek: Option<Peek>) {
        if let Ok(mut a) = self.arriving.lock() {
            a.open.insert(id, (peer, task, peek));
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

/// Close the oldest arriving connection of the address with the most, passing over
/// those whose request already sits whole in the socket (only if all do, the oldest
/// of them); false if none.
fn evict_one(a: &mut Arriving) -> bool {
    let Some((&busiest, _)) = a.by_address.iter().max_by_key(|(_, n)| **n) else {
        return false;
    };
    let mut theirs = a.open.iter().filter(|(_, (ip, _, _))| *ip == busiest);
    let oldest = theirs.clone().next().map(|(id, _)| *id);
    let stalled = theirs.find(|(_, (_, _, peek))| !peek.as_ref().is_some_and(Peek::whole));
    let Some(id) = stalled.map(|(id, _)| *id).or(oldest) else {
        return false;
    };
    if let Some((_, task, _)) = a.open.get(&id) {
        task.abort();
    }
    forget(a, id);
    true
}

fn forget(a: &mut Arriving, id: u64) {
    if let Some((ip, _, _)) = a.open.remove(&id) {
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
            l.arriving(id, ip("10.0.0.66"), t.clone(), None);
            attacker.push(t);
        }
        let victim = l.accepted().unwrap();
        l.arriving(victim, ip("10.0.0.7"), task(), None);
        assert_eq!(l.counts(), (MAX_ARRIVING, MAX_ARRIVING));
        // Full: the next (from anyone) closes the attacker's oldest, not the victim's.
        let next = l.accepted().unwrap();
        l.arriving(next, ip("10.0.0.66"), task(), None);
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
    fn a_whole_request_is_told_from_a_stalled_one() {
        for whole in [
            &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"POST /login HTTP/1.1\r\nContent-Length: 5\r\n\r\nu=a&b",
        ] {
            assert!(request_whole(whole), "{}", String::from_utf8_lossy(whole));
        }
        for stalled in [
            &b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: "[..],
            b"POST /login HTTP/1.1\r\nContent-Length: 500\r\n\r\nu=a&b",
            b"POST /login HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nu=a&b\r\n",
            b"POST /login HTTP/1.1\r\nContent-Length: lots\r\n\r\n",
            b"",
        ] {
            assert!(!request_whole(stalled), "{}", String::from_utf8_lossy(stalled));
        }
    }

    /// On a busy host a client's whole request can wait for its task while a flood of
    /// reconnects from the same address (127.0.0.1: every tunnel) fills the arriving
    /// slots: the stalled ones are closed, not it.
    #[tokio::test(flavor = "current_thread")]
    async fn a_request_that_arrived_whole_is_not_the_one_closed() {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let at = listener.local_addr().unwrap();
        let mut client = std::net::TcpStream::connect(at).unwrap();
        client
            .write_all(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nu=a&b")
            .unwrap();
        let mut slow = std::net::TcpStream::connect(at).unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\nX-Slow: ").unwrap();
        let (whole_side, _) = listener.accept().unwrap();
        let (slow_side, _) = listener.accept().unwrap();
        for s in [&whole_side, &slow_side] {
            // Bounded: a blocking peek returns once the bytes are in.
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s.peek(&mut [0u8; 1]).unwrap();
            s.set_nonblocking(true).unwrap();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !Peek::of(&whole_side).unwrap().whole() {
            assert!(std::time::Instant::now() < deadline, "the request never arrived whole");
            std::thread::yield_now();
        }

        let l = Limits::default();
        let task = || tokio::spawn(std::future::pending::<()>()).abort_handle();
        let (first, second) = (task(), task());
        let old = l.accepted().unwrap();
        l.arriving(old, ip("127.0.0.1"), first.clone(), Peek::of(&whole_side));
        let stalled = l.accepted().unwrap();
        l.arriving(stalled, ip("127.0.0.1"), second.clone(), Peek::of(&slow_side));
        let mut flood = Vec::new();
        while l.counts().0 < MAX_ARRIVING {
            let id = l.accepted().unwrap();
            l.arriving(id, ip("127.0.0.1"), task(), None);
            flood.push(id);
        }
        // Full: the next passes over the oldest (whole) and closes the stalled one.
        let next = l.accepted().unwrap();
        l.arriving(next, ip("127.0.0.1"), task(), None);
        tokio::task::yield_now().await;
        assert!(l.is_arriving(old) && !first.is_finished());
        assert!(!l.is_arriving(stalled) && second.is_finished());
        // Then the flood's own oldest: a new client always gets in.
        l.arriving(l.accepted().unwrap(), ip("127.0.0.1"), task(), None);
        assert!(l.is_arriving(old) && !l.is_arriving(flood[0]));
        drop((client, slow));
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
