//! Which TCP ports on 127.0.0.1 have a listening socket with room in its accept queue,
//! read from the kernel in one netlink request (sock_diag, LISTEN sockets only): for a
//! loopback port that is what answers a connect, without 400 handshakes (and 400
//! TIME_WAIT sockets) to find out. Ports not found here are knocked on for real.

use std::collections::HashSet;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const TCP_LISTEN: u32 = 10;
const NLMSG_DONE: u16 = 3;
const NLMSG_ERROR: u16 = 2;

/// The ports of IPv4 sockets listening on 0.0.0.0 or 127.0.0.1 whose accept queue is
/// not full (a full queue drops a SYN: that port would not answer now).
pub fn loopback_listeners() -> io::Result<HashSet<u16>> {
    // SAFETY: plain socket calls on a descriptor owned here and closed below; the
    // buffers outlive the calls that use them.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let result = query(fd);
    unsafe { libc::close(fd) };
    result
}

fn query(fd: i32) -> io::Result<HashSet<u16>> {
    // nlmsghdr (16 bytes) + inet_diag_req_v2 (56 bytes).
    let mut req = [0u8; 72];
    req[0..4].copy_from_slice(&72u32.to_ne_bytes());
    req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req[6..8].copy_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16).to_ne_bytes());
    req[16] = libc::AF_INET as u8;
    req[17] = libc::IPPROTO_TCP as u8;
    req[20..24].copy_from_slice(&(1u32 << TCP_LISTEN).to_ne_bytes());
    let sent = unsafe { libc::send(fd, req.as_ptr().cast(), req.len(), 0) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut ports = HashSet::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut msgs = &buf[..n as usize];
        if msgs.is_empty() {
            return Ok(ports);
        }
        while msgs.len() >= 16 {
            let len = u32::from_ne_bytes(msgs[0..4].try_into().unwrap_or_default()) as usize;
            let kind = u16::from_ne_bytes(msgs[4..6].try_into().unwrap_or_default());
            if len < 16 || len > msgs.len() {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "short netlink message"));
            }
            match kind {
                NLMSG_DONE => return Ok(ports),
                NLMSG_ERROR => return Err(io::Error::other("sock_diag refused the request")),
                _ => {
                    if let Some(port) = answering_port(&msgs[16..len]) {
                        ports.insert(port);
                    }
                }
            }
            msgs = &msgs[((len + 3) & !3).min(msgs.len())..];
        }
    }
}

/// From one inet_diag_msg: the port, if the socket listens on 0.0.0.0 or 127.0.0.1
/// and its accept queue (rqueue; wqueue is its limit for a listener) has room.
fn answering_port(m: &[u8]) -> Option<u16> {
    // family, state, timer, retrans; sockid: sport (be16), dport, src[16], dst[16],
    // if, cookie[8]; expires, rqueue, wqueue, uid, inode.
    if m.len() < 72 || u32::from(m[1]) != TCP_LISTEN {
        return None;
    }
    let port = u16::from_be_bytes([m[4], m[5]]);
    let src = [m[8], m[9], m[10], m[11]];
    let rqueue = u32::from_ne_bytes(m[56..60].try_into().ok()?);
    let wqueue = u32::from_ne_bytes(m[60..64].try_into().ok()?);
    (matches!(src, [0, 0, 0, 0] | [127, 0, 0, 1]) && rqueue < wqueue).then_some(port)
}

/// How long a port may take to accept before it counts as not answering.
const KNOCK_TIMEOUT: Duration = Duration::from_millis(300);

/// Whether each port answers on 127.0.0.1: a port with a listening socket there (with
/// room in its accept queue, read from the kernel in one request) does; the others are
/// knocked on (`knock`).
pub fn ports_answering(ports: &[u16]) -> Vec<bool> {
    let listening = loopback_listeners().unwrap_or_default();
    let unknown: Vec<u16> = ports.iter().copied().filter(|p| !listening.contains(p)).collect();
    let knocked: std::collections::HashMap<u16, bool> = unknown.iter().copied().zip(knock(&unknown)).collect();
    ports
        .iter()
        .map(|p| listening.contains(p) || knocked.get(p).copied().unwrap_or(false))
        .collect()
}

/// Connect to every port at once from one thread (non-blocking connects on a
/// single-threaded reactor), each bounded by `KNOCK_TIMEOUT`: no thread per port to
/// start and schedule, and nothing waits behind a silent port.
pub fn knock(ports: &[u16]) -> Vec<bool> {
    if ports.is_empty() {
        return Vec::new();
    }
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
        return vec![false; ports.len()];
    };
    rt.block_on(async {
        let knocks = ports.iter().map(|p| async move {
            let addr = SocketAddr::from(([127, 0, 0, 1], *p));
            matches!(
                tokio::time::timeout(KNOCK_TIMEOUT, TcpStream::connect(addr)).await,
                Ok(Ok(_))
            )
        });
        futures_util::future::join_all(knocks).await
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_is_seen_and_a_closed_port_is_not() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(loopback_listeners().unwrap().contains(&port));
        drop(listener);
        assert!(!loopback_listeners().unwrap().contains(&port));
    }

    #[test]
    fn a_listener_on_another_address_does_not_answer_on_loopback() {
        let mut m = vec![0u8; 72];
        m[1] = TCP_LISTEN as u8;
        m[4..6].copy_from_slice(&8080u16.to_be_bytes());
        m[60..64].copy_from_slice(&511u32.to_ne_bytes());
        m[8..12].copy_from_slice(&[127, 0, 0, 1]);
        assert_eq!(answering_port(&m), Some(8080));
        m[8..12].copy_from_slice(&[10, 0, 0, 1]);
        assert_eq!(answering_port(&m), None);
        // A full accept queue drops the next SYN.
        m[8..12].copy_from_slice(&[0, 0, 0, 0]);
        m[56..60].copy_from_slice(&511u32.to_ne_bytes());
        assert_eq!(answering_port(&m), None);
    }
}
