//! The client side of benches/ws.sh (run inside the container's network namespace):
//!   ws_client latency PORT N     N WebSocket echo round trips on one session: median, p99 (µs)
//!   ws_client bare PORT N        the same against a bare echo (plain text, no JSON)
//!   ws_client http PORT N        N HTTP/1.1 keep-alive GET round trips: median, p99 (µs)
//!   ws_client hold PORT N        open N sessions at once, then one echo on each
//!   ws_client deploy PORT N LABEL CMD...
//!                                N sessions echoing (10 ms apart) while CMD runs (the
//!                                deploys, a restart); reconnect on 1001; count what was lost
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Message, WebSocket};

type Ws = WebSocket<TcpStream>;

fn open(port: u16) -> Result<Ws, String> {
    let s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_nodelay(true).ok();
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let (ws, _) = tungstenite::client(format!("ws://127.0.0.1:{port}/ws"), s).map_err(|e| e.to_string())?;
    Ok(ws)
}

/// Read until a text frame (skipping the example's hello when `skip_hello`).
fn text(ws: &mut Ws) -> Result<String, String> {
    loop {
        match ws.read().map_err(|e| e.to_string())? {
            Message::Text(t) => return Ok(t.to_string()),
            Message::Close(f) => return Err(format!("close {f:?}")),
            _ => {}
        }
    }
}

fn report(name: &str, mut us: Vec<f64>) {
    us.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let p = |q: f64| us[((us.len() as f64 * q).ceil() as usize).clamp(1, us.len()) - 1];
    println!("{name}: n={} median {:.1} us  p99 {:.1} us", us.len(), p(0.5), p(0.99));
}

fn latency(port: u16, n: usize, json: bool) {
    let mut ws = open(port).expect("handshake");
    if json {
        text(&mut ws).expect("hello");
    }
    let mut us = Vec::with_capacity(n);
    for i in 0..n + 100 {
        let msg = if json {
            format!(r#"{{"op":"echo","id":{i},"data":"ping"}}"#)
        } else {
            format!("ping {i}")
        };
        let t = Instant::now();
        ws.send(Message::text(msg)).unwrap();
        text(&mut ws).unwrap();
        // The first 100 warm the JIT and the connection.
        if i >= 100 {
            us.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    report(&format!("ws echo :{port}"), us);
}

fn http(port: u16, n: usize) {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_nodelay(true).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let mut us = Vec::with_capacity(n);
    for i in 0..n + 100 {
        let t = Instant::now();
        w.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut len = 0;
        loop {
            let mut line = String::new();
            assert!(r.read_line(&mut line).unwrap() > 0, "the server closed the connection");
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
        if i >= 100 {
            us.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    report(&format!("http GET :{port}"), us);
}

fn hold(port: u16, n: usize) {
    let t = Instant::now();
    let mut open_ok = Vec::with_capacity(n);
    let mut failed = None;
    for _ in 0..n {
        match open(port).and_then(|mut ws| text(&mut ws).map(|_| ws)) {
            Ok(ws) => open_ok.push(ws),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    let opened = t.elapsed();
    let mut answered = 0;
    for (i, ws) in open_ok.iter_mut().enumerate() {
        ws.send(Message::text(format!(r#"{{"op":"echo","id":{i}}}"#))).unwrap();
        if text(ws).is_ok() {
            answered += 1;
        }
    }
    println!(
        "sessions held on :{port}: {} of {n} opened in {:.2} s, {answered} answered an echo afterwards{}",
        open_ok.len(),
        opened.as_secs_f64(),
        failed.map(|e| format!(" (stopped at: {e})")).unwrap_or_default()
    );
}

#[derive(Default)]
struct Tally {
    answered: AtomicUsize,
    away: AtomicUsize,
    dropped: AtomicUsize,
    unanswered: AtomicUsize,
    refused: AtomicUsize,
    max_us: AtomicUsize,
}

fn player(port: u16, stop: Arc<AtomicBool>, t: Arc<Tally>) {
    let mut ws: Option<Ws> = None;
    let mut id = 0u64;
    let mut pending = None;
    while !(stop.load(Ordering::SeqCst) && pending.is_none()) {
        if ws.is_none() {
            match open(port).and_then(|mut w| text(&mut w).map(|_| w)) {
                Ok(w) => ws = Some(w),
                Err(_) => {
                    // Between a restart's stop and start nothing listens.
                    t.refused.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
            }
        }
        let s = ws.as_mut().unwrap();
        let want = *pending.get_or_insert_with(|| {
            id += 1;
            id
        });
        let sent = Instant::now();
        if s.send(Message::text(format!(r#"{{"op":"echo","id":{want}}}"#)))
            .is_err()
        {
            t.dropped.fetch_add(1, Ordering::SeqCst);
            ws = None;
            continue;
        }
        loop {
            match s.read() {
                Ok(Message::Text(_)) => {
                    t.answered.fetch_add(1, Ordering::SeqCst);
                    t.max_us
                        .fetch_max(sent.elapsed().as_micros() as usize, Ordering::SeqCst);
                    pending = None;
                    break;
                }
                Ok(Message::Close(f)) => {
                    if f.map(|f| f.code) == Some(CloseCode::Away) {
                        t.away.fetch_add(1, Ordering::SeqCst);
                    } else {
                        t.dropped.fetch_add(1, Ordering::SeqCst);
                    }
                    while s.read().is_ok() {}
                    ws = None;
                    break;
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
                {
                    t.unanswered.fetch_add(1, Ordering::SeqCst);
                    pending = None;
                    ws = None;
                    break;
                }
                Err(_) => {
                    t.dropped.fetch_add(1, Ordering::SeqCst);
                    ws = None;
                    break;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn deploy(port: u16, n: usize, label: &str, cmd: &[String]) {
    let stop = Arc::new(AtomicBool::new(false));
    let t = Arc::new(Tally::default());
    let players: Vec<_> = (0..n)
        .map(|_| {
            let (stop, t) = (stop.clone(), t.clone());
            std::thread::spawn(move || player(port, stop, t))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let start = Instant::now();
    let status = std::process::Command::new(&cmd[0]).args(&cmd[1..]).status().unwrap();
    let took = start.elapsed();
    stop.store(true, Ordering::SeqCst);
    for p in players {
        p.join().unwrap();
    }
    println!(
        "{n} sessions through {} ({:.2} s, {status}): {} answered, {} closes with 1001 (reconnected), {} dropped, {} unanswered, {} reconnects refused, slowest answer {:.1} ms",
        label,
        took.as_secs_f64(),
        t.answered.load(Ordering::SeqCst),
        t.away.load(Ordering::SeqCst),
        t.dropped.load(Ordering::SeqCst),
        t.unanswered.load(Ordering::SeqCst),
        t.refused.load(Ordering::SeqCst),
        t.max_us.load(Ordering::SeqCst) as f64 / 1000.0
    );
}

fn main() {
    let a: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let num = |i: usize| -> usize { a[i].parse().expect("a number") };
    // Each session is a descriptor here too.
    let lim = libc::rlimit {
        rlim_cur: 20000,
        rlim_max: 20000,
    };
    // SAFETY: plain setrlimit on this process.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    match a.first().map(String::as_str) {
        Some("latency") => latency(num(1) as u16, num(2), true),
        Some("bare") => latency(num(1) as u16, num(2), false),
        Some("http") => http(num(1) as u16, num(2)),
        Some("hold") => hold(num(1) as u16, num(2)),
        Some("deploy") => deploy(num(1) as u16, num(2), &a[3], &a[4..]),
        // `cargo test --all-targets` runs every bench target with the harness's flags
        // (`--test-threads=2`): this client has no tests; benches/ws.sh drives it.
        Some(flag) if flag.starts_with("--") => {
            eprintln!("ws_client: a client for benches/ws.sh, which gives it its arguments; no tests here");
        }
        _ => {
            eprintln!("usage: ws_client latency|bare|http|hold PORT N | deploy PORT N LABEL CMD...");
            std::process::exit(2);
        }
    }
}
