//! The real console (`hhlctl web serve`, what hhl-web.service runs) on this host's
//! loopback, on a port of its own, with dev1, dev2 and the admin lead able to sign in;
//! and a plain HTTP/1.1 client that can also play the attacker (any source address
//! in 127/8, requests sent in part, connections held).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::FromRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Sandbox, BIN};

/// The link key (`hhlctl web link` signs with the same kind).
pub const KEY: [u8; 32] = [7; 32];

pub struct Web {
    pub sb: Sandbox,
    pub addr: SocketAddr,
    child: Child,
}

impl Drop for Web {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Web {
    /// The console with `extra` appended to hhl.yaml (e.g. a `web:` section).
    pub fn start(extra: &str) -> Web {
        let sb = Sandbox::new();
        let yaml = super::example_under(sb.path()).replace("admins: []", "admins: [lead]") + extra;
        assert!(yaml.contains("admins: [lead]"), "the example changed: {yaml}");
        sb.write("hhl.yaml", &yaml);
        let mut passwd = String::new();
        for id in ["dev1", "dev2", "lead"] {
            passwd += &format!("{id}:{}\n", hhlctl::web::auth::hash(&format!("{id}-secret")).unwrap());
        }
        let passwd = sb.write("web.passwd", &passwd);
        let key: String = KEY.iter().map(|b| format!("{b:02x}")).collect();
        let key = sb.write("web.key", &key);
        let mut cmd = Command::new(BIN);
        // SAFETY: prctl only, between fork and exec. The console ends with the test
        // thread that started it, even when a failing test leaves a `Web` undropped.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd
            .current_dir(sb.path())
            .env("HHL_CONFIG", sb.path().join("hhl.yaml"))
            .env_remove("HHL_ROOT")
            .args([
                "web",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--public-url",
                "http://127.0.0.1",
            ])
            .arg("--passwd")
            .arg(&passwd)
            .arg("--key")
            .arg(&key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        err.read_line(&mut line).unwrap();
        let addr = line
            .split("listening on http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("hhlctl web serve did not start: {line}"));
        // Keep reading what it says, so that it never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = err.read_to_string(&mut rest);
        });
        Web { sb, addr, child }
    }

    /// A connection from `from` (any address in 127/8).
    pub fn connect(&self, from: &str) -> TcpStream {
        connect_from(from, self.addr)
    }

    /// Send `head` (and `body`) from `from` and read the whole answer.
    pub fn request(&self, from: &str, head: &str, body: &str) -> Answer {
        let mut s = self.connect(from);
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let length = if body.is_empty() && head.starts_with("GET") {
            String::new()
        } else {
            format!(
                "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
                body.len()
            )
        };
        write!(s, "{head}Host: {}\r\n{length}\r\n{body}", self.addr).unwrap();
        read_answer(&mut s)
    }

    pub fn get(&self, from: &str, path: &str, cookie: &str) -> Answer {
        self.request(from, &format!("GET {path} HTTP/1.1\r\n{}", cookie_line(cookie)), "")
    }

    /// Sign in with `id`'s password from `from` (with `cookies`, e.g. a device
    /// cookie): the answer (303 and cookies when right).
    pub fn password(&self, from: &str, id: &str, password: &str, cookies: &str) -> Answer {
        self.request(
            from,
            &format!("POST /login HTTP/1.1\r\n{}", cookie_line(cookies)),
            &format!("user={id}&password={password}"),
        )
    }

    /// Sign in with a one-time link: the session cookie (`hhl_session=…`).
    pub fn link(&self, id: &str) -> String {
        let expiry = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 60;
        let t = hhlctl::ops::web_link::token(&KEY, id, expiry).unwrap();
        let a = self.get("127.0.0.1", &format!("/link?t={t}"), "");
        assert_eq!(a.status, 303, "{}", a.body);
        a.cookie("hhl_session")
    }
}

fn cookie_line(cookie: &str) -> String {
    if cookie.is_empty() {
        String::new()
    } else {
        format!("Cookie: {cookie}\r\n")
    }
}

/// A parsed answer: status, headers (lowercase names), body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    /// `name=value` of the cookie `name` the answer sets.
    pub fn cookie(&self, name: &str) -> String {
        self.headers
            .iter()
            .filter(|(h, _)| h == "set-cookie")
            .filter_map(|(_, v)| v.split(';').next())
            .find(|kv| kv.starts_with(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} cookie in {self:?}"))
            .to_string()
    }
}

/// Read an answer to its end (every answer closes its connection).
pub fn read_answer(s: &mut TcpStream) -> Answer {
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    parse(&raw)
}

/// Read only an answer's head (a live stream's never ends).
pub fn read_head(s: &mut TcpStream) -> Answer {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => raw.push(byte[0]),
            _ => break,
        }
    }
    parse(&raw)
}

fn parse(raw: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_string(),
    }
}

/// A TCP connection to `to` from source address `from` (bound before connecting).
pub fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let src: std::net::Ipv4Addr = from.parse().unwrap();
    let SocketAddr::V4(dst) = to else { panic!("IPv4 only") };
    // SAFETY: plain socket calls on a descriptor this function owns until it is
    // handed to TcpStream.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let sa = |ip: std::net::Ipv4Addr, port: u16| libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(ip).to_be(),
            },
            sin_zero: [0; 8],
        };
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let local = sa(src, 0);
        let r = libc::bind(fd, (&local as *const libc::sockaddr_in).cast(), len);
        assert_eq!(r, 0, "bind {from}: {}", std::io::Error::last_os_error());
        let remote = sa(*dst.ip(), dst.port());
        let r = libc::connect(fd, (&remote as *const libc::sockaddr_in).cast(), len);
        let stream = TcpStream::from_raw_fd(fd);
        assert_eq!(r, 0, "connect {to}: {}", std::io::Error::last_os_error());
        stream
    }
}

/// Time `f`, asserting it took less than `bound`.
#[track_caller]
pub fn within<T>(bound: Duration, what: &str, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let out = f();
    assert!(t.elapsed() < bound, "{what} took {:?} (bound {bound:?})", t.elapsed());
    out
}
