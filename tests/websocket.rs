//! The example game server with real WebSocket clients, in a real systemd through the
//! real deploy path (`git push` over ssh as dev1): handshake, echo and Redis round trips on every
//! instance; 50 sessions kept across 20 deploys with no dropped or unanswered message;
//! old workers gone within worker_shutdown_timeout; sessions opened as `git push`
//! returns run the new code; restart closes sessions with 1001 and is back at once; a
//! stop systemd had to finish with SIGKILL is reported as a failure; 5,000 sessions on
//! one instance; Chromium's WebSocket from a page.
//!
//! The test's threads enter the container's network namespace (setns), so the clients
//! talk to its private loopback.

mod support;

use std::fs::File;
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::container::{Container, CFG};
use support::entry;
use support::{example_yaml, repo};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Message, WebSocket};

type Ws = WebSocket<TcpStream>;

/// Move the calling thread (and the threads it starts) into the container's network.
fn enter_net(c: &Container) {
    let ns = File::open(format!("/proc/{}/ns/net", c.leader)).expect("container netns");
    // SAFETY: setns on a valid descriptor; affects only this thread.
    let r = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
}

/// Handshake on /ws of `port`; returns the socket and the server's hello.
fn open(port: u16) -> (Ws, Value) {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("connect {port}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut ws, resp) = tungstenite::client(format!("ws://127.0.0.1:{port}/ws"), stream)
        .unwrap_or_else(|e| panic!("handshake on {port}: {e}"));
    assert_eq!(resp.status(), 101);
    let hello = recv(&mut ws);
    assert_eq!(hello["op"], "hello", "{hello}");
    (ws, hello)
}

/// The next text frame as JSON.
fn recv(ws: &mut Ws) -> Value {
    loop {
        match ws.read().expect("reading a frame") {
            Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

fn call(ws: &mut Ws, msg: Value) -> Value {
    ws.send(Message::text(msg.to_string())).unwrap();
    recv(ws)
}

/// The example applied (with dev1's key), its Lua in every instance, dev1's
/// socketserver repository cloned over ssh.
fn game_server() -> Container {
    let c = Container::boot();
    let keys = entry::keys_yaml(&c, &["dev1"]);
    c.write(CFG, &(example_yaml() + &keys));
    let r = c.sh("hhlctl apply");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    c.deploy_lua();
    c.ok(&format!(
        "{} && curl -sf http://127.0.0.1:1081/hhl",
        support::redis_cli(6381, "ping")
    ));
    let r = c.sh("hhlctl repo init");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    entry::start_sshd(&c);
    let r = entry::in_clone(
        &c,
        "dev1",
        "socketserver",
        &format!(
            "cp -r {}/. . && git add -A && git commit -q --allow-empty -m game",
            repo().join("examples/src").display()
        ),
    );
    assert_eq!(r.code, 0, "{}", r.stdout);
    push_version(&c, "v0");
    c
}

/// dev1 pushes the game with `game/version.lua` returning `v`; returns when git does.
fn push_version(c: &Container, v: &str) {
    let r = entry::in_clone(
        c,
        "dev1",
        "socketserver",
        &format!(
            "printf 'return \"{v}\"\\n' > game/version.lua && git commit -qam {v} && git push -q origin HEAD:dev1"
        ),
    );
    assert_eq!(r.code, 0, "push {v}: {}", r.stdout);
}

/// PIDs of the nginx workers of `unit`.
fn workers(c: &Container, unit: &str) -> Vec<String> {
    c.ok(&format!(
        "cat /proc/$(systemctl show -p MainPID --value {unit})/task/*/children"
    ))
    .split_whitespace()
    .map(str::to_string)
    .collect()
}

#[derive(Default)]
struct Tally {
    answered: AtomicUsize,
    going_away: AtomicUsize,
    dropped: AtomicUsize,
    unanswered: AtomicUsize,
}

/// One player: echo after echo, 10 ms apart; on close 1001 reconnect and resend what
/// was not answered. Anything else (1006, a reset, a missing answer) is counted.
fn player(port: u16, n: usize, stop: Arc<AtomicBool>, t: Arc<Tally>) {
    let mut id = 0u64;
    let mut ws = Some(open(port).0);
    let mut pending: Option<u64> = None;
    while !(stop.load(Ordering::SeqCst) && pending.is_none()) {
        let s = match ws.as_mut() {
            Some(s) => s,
            None => {
                ws = Some(open(port).0);
                ws.as_mut().unwrap()
            }
        };
        let want = *pending.get_or_insert_with(|| {
            id += 1;
            id
        });
        let msg = json!({"op": "echo", "id": want, "data": format!("p{n}-{want}")});
        if s.send(Message::text(msg.to_string())).is_err() {
            t.dropped.fetch_add(1, Ordering::SeqCst);
            ws = None;
            continue;
        }
        loop {
            match s.read() {
                Ok(Message::Text(text)) => {
                    let v: Value = serde_json::from_str(&text).unwrap();
                    if v["op"] == "echo" && v["id"] == want {
                        assert_eq!(v["data"], format!("p{n}-{want}"));
                        t.answered.fetch_add(1, Ordering::SeqCst);
                        pending = None;
                        break;
                    }
                }
                Ok(Message::Close(frame)) => {
                    if frame.map(|f| f.code) == Some(CloseCode::Away) {
                        t.going_away.fetch_add(1, Ordering::SeqCst);
                    } else {
                        t.dropped.fetch_add(1, Ordering::SeqCst);
                    }
                    // Send our close in reply, as the protocol asks, then reconnect.
                    while s.read().is_ok() {}
                    ws = None;
                    break;
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut =>
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
    if let Some(mut s) = ws {
        let _ = s.close(None);
        while s.read().is_ok() {}
    }
}

#[test]
fn game_sessions_live_through_deploys_and_restarts() {
    let c = game_server();
    enter_net(&c);

    // Every instance: handshake, echo, and a room whose state lands in its owner's Redis.
    let owners = [
        ("master", 6379),
        ("dev1", 6381),
        ("dev2", 6382),
        ("dev3", 6383),
        ("dev4", 6384),
    ];
    for (base, server) in [(1080, "socketserver"), (1090, "dtserver")] {
        for (i, (owner, redis)) in owners.iter().enumerate() {
            let port = base + i as u16;
            let (mut ws, hello) = open(port);
            assert_eq!(hello["instance"], format!("{server}-{owner}"));
            let echo = call(&mut ws, json!({"op": "echo", "id": 1, "data": "hi"}));
            assert_eq!(echo, json!({"op": "echo", "id": 1, "data": "hi"}));
            let room = format!("room-{server}");
            let joined = call(&mut ws, json!({"op": "join", "id": 2, "room": room, "player": "ann"}));
            assert_eq!(joined["players"], json!(["ann"]), "{joined}");
            let state = call(&mut ws, json!({"op": "set", "id": 3, "key": "score", "value": port}));
            assert_eq!(state["state"]["score"], port.to_string(), "{state}");
            assert_eq!(
                c.ok(&support::redis_cli(
                    *redis,
                    &format!("hget hhl:room:{room}:state score")
                ))
                .trim(),
                port.to_string()
            );
            // A 100 KB frame is within the limits (lua-resty-websocket's default: 64 KB).
            let big = "x".repeat(100_000);
            let echo = call(&mut ws, json!({"op": "echo", "id": 4, "data": big}));
            assert_eq!(echo["data"].as_str().map(str::len), Some(100_000));
            ws.close(None).unwrap();
            while ws.read().is_ok() {}
        }
    }

    // 50 sessions across 20 deploys.
    let unit = "openresty@socketserver-dev1.service";
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let players: Vec<_> = (0..50)
        .map(|n| {
            let (stop, tally) = (stop.clone(), tally.clone());
            std::thread::spawn(move || player(1081, n, stop, tally))
        })
        .collect();
    let mut slowest_exit = Duration::ZERO;
    for n in 1..=20 {
        let old = workers(&c, unit);
        let before = tally.answered.load(Ordering::SeqCst);
        push_version(&c, &format!("v{n}"));
        let pushed = Instant::now();
        // Opened as soon as `git push` returns: the new code.
        let (mut ws, hello) = open(1081);
        assert_eq!(hello["version"], format!("v{n}"), "deploy {n}: {hello}");
        ws.close(None).unwrap();
        // The old workers end well within worker_shutdown_timeout (10 s).
        while old.iter().any(|p| c.sh(&format!("test -e /proc/{p}")).code == 0) {
            assert!(
                pushed.elapsed() < Duration::from_secs(10),
                "deploy {n}: old workers {old:?} still there"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        slowest_exit = slowest_exit.max(pushed.elapsed());
        // Sessions keep being answered between deploys.
        let t = Instant::now();
        while tally.answered.load(Ordering::SeqCst) < before + 100 {
            assert!(t.elapsed() < Duration::from_secs(10), "deploy {n}: sessions stalled");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    stop.store(true, Ordering::SeqCst);
    for p in players {
        p.join().unwrap();
    }
    let (answered, away) = (
        tally.answered.load(Ordering::SeqCst),
        tally.going_away.load(Ordering::SeqCst),
    );
    eprintln!("50 sessions, 20 deploys: {answered} answered, {away} closes with 1001, old workers gone within {slowest_exit:?}");
    assert_eq!(tally.dropped.load(Ordering::SeqCst), 0, "dropped sessions");
    assert_eq!(tally.unanswered.load(Ordering::SeqCst), 0, "unanswered messages");
    assert!(away >= 20, "every deploy sends its sessions 1001: {away}");
    assert_eq!(workers(&c, unit).len(), 1, "one worker left (worker_processes: 1)");

    // Restart: every session gets 1001; the unit is back within the bound.
    let readers: Vec<_> = (0..50)
        .map(|_| {
            let mut ws = open(1081).0;
            std::thread::spawn(move || {
                let first = ws.read();
                // Our close in reply, so the server's close handshake completes.
                while ws.read().is_ok() {}
                match first {
                    Ok(Message::Close(Some(f))) => f.code,
                    other => panic!("expected close 1001, got {other:?}"),
                }
            })
        })
        .collect();
    let t = Instant::now();
    let r = c.sh("hhlctl restart socketserver-dev1");
    let took = t.elapsed();
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("restarted openresty@socketserver-dev1.service"),
        "{}",
        r.stdout
    );
    assert!(took < Duration::from_secs(5), "restart took {took:?}");
    for reader in readers {
        assert_eq!(reader.join().unwrap(), CloseCode::Away);
    }
    // Type=exec: the job is done once nginx runs, a moment before it listens.
    while TcpStream::connect(("127.0.0.1", 1081)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "not listening 5 s after the restart began"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let (_, hello) = open(1081);
    assert_eq!(hello["version"], "v20");
    eprintln!(
        "restart with 50 open sessions: job {took:?}, serving again after {:?}",
        t.elapsed()
    );
}

/// Plain OpenResty session code, as a game written before hhl.websocket has it: a
/// `recv_frame` loop that echoes text and knows nothing of the worker's exit.
const PLAIN_ECHO: &str = "if ngx.var.uri == '/hhl' then ngx.say('ok') return end
local server = require 'resty.websocket.server'
local wb = assert(server:new({ timeout = 60000, max_payload_len = 65535 }))
wb:send_text('{\"op\":\"hello\"}')
while true do
    local data, typ, err = wb:recv_frame()
    if not data then
        if not (err and err:find('timeout', 1, true)) then break end
    elseif typ == 'close' then
        wb:send_close()
        break
    elseif typ == 'ping' then
        wb:send_pong(data)
    elseif typ == 'text' then
        wb:send_text(data)
    end
end
";

#[test]
fn plain_resty_websocket_code_ends_its_sessions_on_restart_and_reload() {
    let c = Container::applied(&example_yaml());
    enter_net(&c);
    let unit = "openresty@dtserver-dev1.service";
    c.write("/opt/hhl/dtserver/dev1/src/main.lua", PLAIN_ECHO);
    c.ok("curl -sf http://127.0.0.1:1091/hhl");

    // Restart with 5 sessions open, each waiting in recv_frame: every one gets 1001
    // and the restart ends within 2 s, without SIGKILL (was: worker_shutdown_timeout).
    let readers: Vec<_> = (0..5)
        .map(|_| {
            let mut ws = open(1091).0;
            let echo = call(&mut ws, json!({"op": "echo", "id": 1, "data": "x"}));
            assert_eq!(echo["id"], 1);
            std::thread::spawn(move || {
                let first = ws.read();
                while ws.read().is_ok() {}
                match first {
                    Ok(Message::Close(Some(f))) => f.code,
                    other => panic!("expected close 1001, got {other:?}"),
                }
            })
        })
        .collect();
    let t = Instant::now();
    let r = c.sh("hhlctl restart dtserver-dev1");
    let took = t.elapsed();
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains(&format!("restarted {unit}")), "{}", r.stdout);
    assert!(!r.stderr.contains("SIGKILL"), "{}", r.stderr);
    for reader in readers {
        assert_eq!(reader.join().unwrap(), CloseCode::Away);
    }
    assert!(
        took <= Duration::from_secs(2),
        "restart with 5 plain sessions took {took:?}"
    );
    let journal = c.ok(&format!("journalctl -u {unit} --no-pager -q -o cat"));
    assert!(
        !journal.contains("SIGKILL") && !journal.contains("timed out"),
        "{journal}"
    );
    eprintln!("restart with 5 plain resty.websocket.server sessions: {took:?}");

    // Reloads: sessions busy echoing get 1001 between messages; none is dropped or
    // left unanswered, and the old workers leave at once.
    while TcpStream::connect(("127.0.0.1", 1091)).is_err() {
        assert!(t.elapsed() < Duration::from_secs(5), "not listening after the restart");
        std::thread::sleep(Duration::from_millis(5));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let players: Vec<_> = (0..10)
        .map(|n| {
            let (stop, tally) = (stop.clone(), tally.clone());
            std::thread::spawn(move || player(1091, n, stop, tally))
        })
        .collect();
    for n in 1..=5 {
        let old = workers(&c, unit);
        let before = tally.answered.load(Ordering::SeqCst);
        let t = Instant::now();
        let r = c.sh("hhlctl reload dtserver-dev1");
        assert_eq!(r.code, 0, "reload {n}: {}{}", r.stdout, r.stderr);
        while old.iter().any(|p| c.sh(&format!("test -e /proc/{p}")).code == 0) {
            assert!(
                t.elapsed() < Duration::from_secs(3),
                "reload {n}: old workers {old:?} still there"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        while tally.answered.load(Ordering::SeqCst) < before + 50 {
            assert!(t.elapsed() < Duration::from_secs(10), "reload {n}: sessions stalled");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    stop.store(true, Ordering::SeqCst);
    for p in players {
        p.join().unwrap();
    }
    let away = tally.going_away.load(Ordering::SeqCst);
    assert_eq!(tally.dropped.load(Ordering::SeqCst), 0, "dropped sessions");
    assert_eq!(tally.unanswered.load(Ordering::SeqCst), 0, "unanswered messages");
    assert!(away >= 5, "every reload sends its sessions 1001: {away}");
}

#[test]
fn a_stop_finished_by_sigkill_is_reported_as_failed() {
    let c = Container::applied(&example_yaml());
    enter_net(&c);
    // A handler that holds its worker and never reads (no session loop at all), and a
    // unit that will not wait for nginx's own 10 s: systemd has to kill it.
    c.write(
        "/opt/hhl/dtserver/dev1/src/main.lua",
        "if ngx.var.uri == '/hhl' then ngx.say('ok') return end\n\
         local wb = assert(require('resty.websocket.server'):new({ timeout = 60000 }))\n\
         ngx.sleep(60)\n",
    );
    c.write(
        "/etc/systemd/system/openresty@dtserver-dev1.service.d/60-test.conf",
        "[Service]\nTimeoutStopSec=1s\n",
    );
    c.ok("systemctl daemon-reload && curl -sf http://127.0.0.1:1091/hhl");
    let stream = TcpStream::connect(("127.0.0.1", 1091)).unwrap();
    let (_ws, resp) = tungstenite::client("ws://127.0.0.1:1091/ws", stream).unwrap();
    assert_eq!(resp.status(), 101);
    let r = c.sh("hhlctl restart dtserver-dev1");
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(
            "error: restarting openresty@dtserver-dev1.service failed (systemd job: the stop timed out and systemd finished it with SIGKILL; unit now: active)"
        ),
        "{}",
        r.stderr
    );
    assert!(!r.stdout.contains("restarted"), "{}", r.stdout);
    // A clean restart of the same unit is reported as such.
    let r = c.sh("hhlctl restart dtserver-dev1");
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("restarted openresty@dtserver-dev1.service"),
        "{}",
        r.stdout
    );
}

#[test]
fn one_instance_holds_5000_sessions() {
    let c = Container::applied(&example_yaml());
    enter_net(&c);
    // The client needs a descriptor per session too.
    let lim = libc::rlimit {
        rlim_cur: 8192,
        rlim_max: 8192,
    };
    // SAFETY: plain setrlimit on this process.
    assert_eq!(
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) },
        0,
        "RLIMIT_NOFILE 8192"
    );
    let t = Instant::now();
    let mut sessions: Vec<Ws> = (0..5000).map(|_| open(1082).0).collect();
    let opened = t.elapsed();
    let stats: Value = serde_json::from_str(&c.ok("curl -s http://127.0.0.1:1082/stats")).unwrap();
    assert_eq!(stats["sessions"], 5000, "{stats}");
    // Every one of them still answers.
    for (i, ws) in sessions.iter_mut().enumerate() {
        let r = call(ws, json!({"op": "echo", "id": i, "data": "x"}));
        assert_eq!(r["id"], i);
    }
    eprintln!(
        "5,000 sessions opened in {opened:?}, all answered after {:?}",
        t.elapsed()
    );
    // nginx writes to stderr: its levels are in the text ("worker_connections are not
    // enough" would be an [alert]).
    let errors = c
        .sh("journalctl -u openresty@socketserver-dev2 --no-pager -q | grep -E '\\[(error|crit|alert|emerg)\\]'")
        .stdout;
    assert_eq!(errors, "", "errors in the journal");
}

#[test]
fn chromium_plays_over_websocket_from_a_page() {
    let c = Container::applied(&example_yaml());
    c.ok("nohup chromedriver --port=9515 >/tmp/chromedriver.log 2>&1 &");
    c.ok("for i in $(seq 200); do curl -s http://127.0.0.1:9515/status | grep -q '\"ready\":true' && exit 0; sleep 0.05; done; exit 1");
    let wd = |method: &str, path: &str, body: Value| -> Value {
        c.write("/tmp/wd.json", &body.to_string());
        let out = c.ok(&format!(
            "curl -s -m 60 -X {method} -H 'Content-Type: application/json' -d @/tmp/wd.json http://127.0.0.1:9515{path}"
        ));
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("webdriver {path}: {e}: {out}"))
    };
    let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome",
        "goog:chromeOptions": {"binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"]}}}});
    let session = wd("POST", "/session", caps)["value"]["sessionId"]
        .as_str()
        .expect("a WebDriver session")
        .to_string();
    wd(
        "POST",
        &format!("/session/{session}/url"),
        json!({"url": "http://127.0.0.1:1081/hhl"}),
    );
    let js = "const done = arguments[0]; const out = [];
        const ws = new WebSocket('ws://127.0.0.1:1081/ws');
        ws.onmessage = e => { const m = JSON.parse(e.data); out.push(m.op);
            if (m.op === 'hello') ws.send(JSON.stringify({op: 'join', id: 1, room: 'web', player: 'chromium'}));
            if (m.op === 'joined') ws.send(JSON.stringify({op: 'set', id: 2, key: 'from', value: 'browser'}));
            if (m.op === 'state') { out.push(m.state.from); ws.close(1000); } };
        ws.onclose = e => done(out.concat([e.code, e.wasClean]));
        setTimeout(() => done(out.concat(['timeout'])), 10000);";
    let r = wd(
        "POST",
        &format!("/session/{session}/execute/async"),
        json!({"script": js, "args": []}),
    );
    wd("DELETE", &format!("/session/{session}"), json!({}));
    assert_eq!(
        r["value"],
        json!(["hello", "joined", "state", "browser", 1000, true]),
        "{r}"
    );
    assert_eq!(
        c.ok(&support::redis_cli(6381, "hget hhl:room:web:state from")).trim(),
        "browser"
    );
}
