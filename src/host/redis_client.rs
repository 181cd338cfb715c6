//! One command on one Redis over loopback, authenticated as its `default` user with the
//! secret the entry account holds: what `ssh <entry>@server redis …` runs after
//! `access::may`. Bounded: a connect, and each read, wait at most `TIMEOUT`.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::core::redis_cmd::{self, Reply};

/// How long a command may take (a blocking BLPOP with a longer timeout is cut here).
pub const TIMEOUT: Duration = Duration::from_secs(30);
/// Largest reply read back: a `KEYS *` on a big dev database stops here.
pub const MAX_REPLY: usize = 64 << 20;

/// Run `words` on the Redis at 127.0.0.1:`port` after `AUTH default <secret>`.
pub fn run(port: u16, secret: &str, words: &[Vec<u8>]) -> Result<Reply> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut conn = TcpStream::connect_timeout(&addr, TIMEOUT)
        .with_context(|| format!("connecting to your Redis on 127.0.0.1:{port} (is it running? `status` shows it)"))?;
    conn.set_read_timeout(Some(TIMEOUT))?;
    conn.set_write_timeout(Some(TIMEOUT))?;
    conn.set_nodelay(true)?;
    let auth = [b"AUTH".to_vec(), b"default".to_vec(), secret.as_bytes().to_vec()];
    let mut out = redis_cmd::encode(&auth);
    out.extend(redis_cmd::encode(words));
    conn.write_all(&out).context("sending the command to Redis")?;
    let mut buf = Vec::new();
    let mut replies = Vec::new();
    while replies.len() < 2 {
        match redis_cmd::parse(&buf).map_err(anyhow::Error::msg)? {
            Some((r, used)) => {
                buf.drain(..used);
                replies.push(r);
                continue;
            }
            None if buf.len() > MAX_REPLY => bail!("Redis's reply is larger than {} MiB", MAX_REPLY >> 20),
            None => {}
        }
        let mut chunk = [0u8; 64 * 1024];
        let n = match conn.read(&mut chunk) {
            Ok(0) => bail!("Redis closed the connection before it answered"),
            Ok(n) => n,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                bail!("no answer from Redis within {} s", TIMEOUT.as_secs())
            }
            Err(e) => return Err(e).context("reading Redis's reply"),
        };
        buf.extend_from_slice(&chunk[..n]);
    }
    let reply = replies.pop().expect("two replies");
    if let Reply::Error(e) = &replies[0] {
        bail!("Redis refused this account's secret ({e}); ask an admin to apply hhl.yaml again");
    }
    Ok(reply)
}
