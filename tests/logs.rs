//! Logs developers can read: journal, rsyslog files, `hhlctl logs`, the Lua module.
//! Real systemd, real journald, real rsyslog.

mod support;

use std::time::{Duration, Instant};

use support::browser::Browser;
use support::container::Container;
use support::example_yaml;

const LUA: &str = r#"local log = require "hhl.log"
ngx.log(ngx.ERR, "plain ngx.log marker-", ngx.var.arg_m)
log.warn("structured marker-" .. ngx.var.arg_m, { player = 42, room = "lobby two" })
ngx.say("logged")
"#;

/// What sshd runs for identity `id` asking `command`: the forced command, as the entry
/// account.
fn entry_command(id: &str, command: &str) -> String {
    format!("runuser -u hhl -- env SSH_ORIGINAL_COMMAND='{command}' hhlctl ssh {id}")
}

/// Wait until `script` succeeds (rsyslog writes asynchronously).
fn eventually(c: &Container, script: &str) -> String {
    eventually_for(c, script, 10)
}

/// `eventually`, with `secs` for what a loaded machine may take longer to show.
fn eventually_for(c: &Container, script: &str, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let r = c.sh(script);
        if r.code == 0 {
            return r.stdout;
        }
        assert!(
            Instant::now() < deadline,
            "`{script}` never succeeded: {}{}",
            r.stdout,
            r.stderr
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn lua_lines_reach_the_journal_and_the_owners_file_only() {
    let c = Container::boot();
    c.start_rsyslog();
    c.write(support::container::CFG, &example_yaml());
    let r = c.sh("hhlctl apply");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("checked the rsyslog rules with rsyslogd -N1"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("restarted rsyslog.service"), "{}", r.stdout);
    c.write("/opt/hhl/socketserver/dev1/src/main.lua", LUA);
    assert_eq!(c.sh("curl -s 'http://127.0.0.1:1081/hhl?m=one'").stdout, "logged\n");

    // The journal, under the instance's identifier, with the module's priority.
    let j = eventually(
        &c,
        "journalctl -u openresty@socketserver-dev1 -o json --no-pager | grep structured.marker-one",
    );
    let entry: serde_json::Value = serde_json::from_str(j.lines().next().unwrap()).unwrap();
    assert_eq!(entry["SYSLOG_IDENTIFIER"], "socketserver-dev1");
    assert_eq!(entry["PRIORITY"], "4", "{entry}");
    let msg = entry["MESSAGE"].as_str().unwrap();
    assert!(msg.starts_with("[warn] req="), "{msg}");
    assert!(
        msg.ends_with(" msg=\"structured marker-one\" player=42 room=\"lobby two\""),
        "{msg}"
    );
    eventually(
        &c,
        "journalctl -u openresty@socketserver-dev1 --no-pager | grep -q 'plain ngx.log marker-one'",
    );

    // rsyslog: dev1's file, root:hhl-dev1 0640, in a root:hhl-dev1 0750 directory.
    let file = "/var/log/hhl/dev1/socketserver-dev1.log";
    // Both lines (ngx.log's and the module's): rsyslog may have written one so far.
    let text = eventually(
        &c,
        &format!("test $(grep -c 'marker-one' {file}) -ge 2 && grep 'marker-one' {file}"),
    );
    assert!(text.contains("warning socketserver-dev1"), "{text}");
    assert!(text.contains("plain ngx.log marker-one"), "{text}");
    assert_eq!(
        c.ok(&format!("stat -c '%U:%G %a' {file} /var/log/hhl/dev1")),
        "root:hhl-dev1 640\nroot:hhl-dev1 750\n"
    );
    // Nothing of it in the shared syslog, and dev2's instance user cannot read it.
    assert_eq!(c.sh("grep -c marker-one /var/log/syslog").stdout.trim(), "0");
    let r = c.sh_as("hhl-dev2", &format!("cat {file}"));
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("Permission denied"), "{}", r.stderr);
    // Redis has its own file too.
    eventually(&c, "test -s /var/log/hhl/dev2/redis-dev2.log");

    // Forged tags route nothing: dev1 (a shell as its instance user, and its Lua)
    // claims to be dev2's socketserver and master's Redis.
    c.ok("runuser -u hhl-dev1 -- logger -t socketserver-dev2 'fake-shell crash'");
    c.ok("runuser -u hhl-dev1 -- logger -t redis-master 'fake-shell redis'");
    c.write(
        "/opt/hhl/socketserver/dev1/src/main.lua",
        "local ok = os.execute(\"logger -t socketserver-dev2 'fake-lua crash'\")\nngx.say(tostring(ok))\n",
    );
    // The code cache is on: new code runs after a reload, as after a deploy.
    c.ok("hhlctl reload socketserver-dev1");
    let got = c.sh("curl -s http://127.0.0.1:1081/hhl").stdout;
    assert_eq!(
        got,
        "0\n",
        "dev1's Lua could not run logger: {}",
        c.ok("journalctl -u openresty@socketserver-dev1 -n 15 --no-pager")
    );
    // In the journal, as socketserver-dev2 (journald may not place so short a process
    // in dev1's unit; either way it is not dev2's).
    eventually(
        &c,
        "journalctl -t socketserver-dev2 --no-pager | grep -q 'fake-lua crash'",
    );
    eventually(
        &c,
        "journalctl -t socketserver-dev2 --no-pager | grep -q 'fake-shell crash'",
    );
    // Then a real line of dev2's: once it is in dev2's file, the fakes would be too.
    c.write("/opt/hhl/socketserver/dev2/src/main.lua", LUA);
    c.ok("hhlctl reload socketserver-dev2");
    assert_eq!(c.sh("curl -s 'http://127.0.0.1:1082/hhl?m=real2'").stdout, "logged\n");
    let dev2 = eventually(
        &c,
        "grep 'marker-real2' /var/log/hhl/dev2/socketserver-dev2.log && cat /var/log/hhl/dev2/socketserver-dev2.log",
    );
    assert!(!dev2.contains("fake-"), "a forged line reached dev2's file:\n{dev2}");
    let master = c.sh("cat /var/log/hhl/master/redis-master.log").stdout;
    assert!(
        !master.contains("fake-"),
        "a forged line reached master's Redis file:\n{master}"
    );
    // Root's `hhlctl logs`, and dev2's `ssh hhl@server logs` (the forced command, run
    // here as sshd would: as the entry account, for identity dev2).
    for (who, run) in [
        ("root", "hhlctl logs socketserver-dev2 -n 500".to_string()),
        ("dev2", entry_command("dev2", "logs -n 500 socketserver-dev2")),
    ] {
        let r = c.sh(&run);
        assert!(r.stdout.contains("marker-real2"), "{who}: {}", r.stdout);
        assert!(
            !r.stdout.contains("fake-"),
            "{who}'s hhlctl logs shows a forged line:\n{}",
            r.stdout
        );
    }
    c.write("/opt/hhl/socketserver/dev1/src/main.lua", LUA);
    c.ok("hhlctl reload socketserver-dev1");

    // hhlctl logs: root reads the journal; dev1 through the entry point, their own only;
    // an instance user (dev1's code with a shell) nothing.
    let r = c.sh("hhlctl logs socketserver-dev1 -n 200");
    assert!(r.stdout.contains("structured marker-one"), "{}", r.stdout);
    let r = c.sh(&entry_command("dev1", "logs -n 200 socketserver-dev1"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("structured marker-one"), "{}", r.stdout);
    let r = c.sh(&entry_command("dev1", "logs socketserver-dev2"));
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("refused: not yours: you are `dev1` and may not read the logs of `dev2`"),
        "{}",
        r.stderr
    );
    let r = c.sh_as("hhl-dev1", "hhlctl logs socketserver-dev1");
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains(
            "only root and the entry account `hhl` may read instances' logs here, and you are unix user `hhl-dev1`"
        ),
        "{}",
        r.stderr
    );
}

#[test]
fn the_log_page_signs_in_shows_only_your_logs_and_tails_live() {
    let c = Container::boot();
    c.write(support::container::CFG, &example_yaml());
    assert_eq!(c.sh("hhlctl apply").code, 0);
    c.write("/opt/hhl/socketserver/dev1/src/main.lua", LUA);
    c.ok("curl -s 'http://127.0.0.1:1081/hhl?m=before' >/dev/null");
    for (user, pw) in [("dev1", "dev1-secret"), ("dev2", "dev2-secret")] {
        c.ok(&format!("printf '{pw}\\n' | hhlctl web passwd {user}"));
    }
    let r = c.sh("printf 'short\\n' | hhlctl web passwd dev1");
    assert!(
        r.stderr.contains("the password is shorter than 8 characters"),
        "{}",
        r.stderr
    );
    let r = c.sh("printf 'long enough\\n' | hhlctl web passwd mallory");
    assert!(
        r.stderr.contains("`mallory` owns no instance and is not an admin"),
        "{}",
        r.stderr
    );
    // Only salted hashes are stored, readable by root alone.
    let stored = c.ok("cat /etc/hhl/web.passwd");
    assert!(
        !stored.contains("secret") && stored.contains("dev1:$argon2id$"),
        "{stored}"
    );
    assert_eq!(c.ok("stat -c '%a %U' /etc/hhl/web.passwd").trim(), "600 root");
    c.ok("systemctl start hhl-web.service");
    eventually(&c, "curl -s -o /dev/null http://127.0.0.1:8080/login");
    let score = c.ok("systemd-analyze security --no-pager hhl-web.service | tail -1");
    eprintln!("hhl-web.service: {}", score.trim());

    // HTTP: no session, wrong password, another developer's logs.
    let code = |args: &str| c.ok(&format!("curl -s -o /dev/null -w '%{{http_code}}' {args}"));
    assert_eq!(code("http://127.0.0.1:8080/api/logs"), "401");
    assert_eq!(code("-b hhl_session=forged http://127.0.0.1:8080/api/tail"), "401");
    assert_eq!(code("http://127.0.0.1:8080/"), "303");
    assert_eq!(code("-d 'user=dev1&password=wrong' http://127.0.0.1:8080/login"), "401");
    assert_eq!(
        code("-d 'user=nobody&password=dev1-secret' http://127.0.0.1:8080/login"),
        "401"
    );

    let b = Browser::start(&c);
    b.go("http://127.0.0.1:8080/");
    b.wait_for("return location.pathname == '/login'", "the redirect to sign in");
    b.type_into("#user", "dev1");
    b.type_into("#password", "wrong password");
    b.click("#signin");
    b.wait_for(
        "return document.body.innerText.includes('Wrong user name or password.')",
        "the refusal",
    );
    b.type_into("#user", "dev1");
    b.type_into("#password", "dev1-secret");
    b.click("#signin");
    // Signed in, the console is home; the log page is one link away.
    b.wait_for("return location.pathname == '/'", "the console");
    b.click("#nav-logs");
    b.wait_for(
        "return document.getElementById('state') && document.getElementById('state').textContent == 'live'",
        "the live tail",
    );
    // Earlier lines are there; only dev1's instances are offered.
    b.wait_for(
        "return document.body.innerText.includes('structured marker-before')",
        "the earlier line",
    );
    b.wait_for(
        "return document.body.innerText.includes('plain ngx.log marker-before')",
        "the earlier ngx.log line",
    );
    let offered = b.script("return [...document.querySelectorAll('#instance option')].map(o => o.value).join(' ')");
    assert_eq!(offered, " socketserver-dev1 dtserver-dev1 redis-dev1");
    // A fresh line arrives without a reload.
    c.ok("curl -s 'http://127.0.0.1:1081/hhl?m=fresh' >/dev/null");
    let took = b.wait_for(
        "return document.body.innerText.includes('structured marker-fresh')",
        "the live line",
    );
    eprintln!("a fresh line reached the page in {took:?}");
    // dev2's logs: 403 from the browser's own session.
    let status = b.fetch_status("/api/logs?instance=socketserver-dev2");
    assert_eq!(status, serde_json::json!(403));
    let status = b.fetch_status("/api/tail?instance=redis-dev2");
    assert_eq!(status, serde_json::json!(403));
    // Signing out ends the session.
    b.click("header button");
    b.wait_for("return location.pathname == '/login'", "sign-out");
    let status = b.fetch_status("/api/logs");
    assert_eq!(status, serde_json::json!(401));
}

/// The log page under abuse: a sign-in storm, cross-site POSTs, idle and excess
/// connections, too many tails; one-time links work once. (tests/hostile.rs has the
/// console's limits against a determined local attacker.)
#[test]
fn the_log_page_holds_under_abuse_and_links_sign_in_once() {
    let c = Container::boot();
    c.write(support::container::CFG, &example_yaml());
    assert_eq!(c.sh("hhlctl apply").code, 0);
    c.ok("printf 'dev1-secret\\n' | hhlctl web passwd dev1");
    // apply made the link key: root writes it, the entry account reads it (to sign
    // `ssh … web` links), nobody else; instance users cannot.
    assert_eq!(c.ok("stat -c '%a %U:%G' /etc/hhl/web.key").trim(), "640 root:hhl");
    let r = c.sh_as("hhl-dev1", "cat /etc/hhl/web.key");
    assert!(r.code != 0 && r.stderr.contains("Permission denied"), "{}", r.stderr);
    c.ok("systemctl start hhl-web.service");
    eventually(&c, "curl -s -o /dev/null http://127.0.0.1:8080/login");
    let url = "http://127.0.0.1:8080";
    // Loopback only, by default.
    assert!(c.ok("ss -ltnH 'sport = :8080'").contains("127.0.0.1:8080"));

    // Login CSRF: a POST from another origin, or that the browser marks cross-site.
    for header in ["Origin: https://evil.example", "Sec-Fetch-Site: cross-site"] {
        let r = c.ok(&format!(
            "curl -s -w ' %{{http_code}}' -H '{header}' -d 'user=dev1&password=dev1-secret' {url}/login"
        ));
        assert!(r.ends_with(" 403"), "{header}: {r}");
        assert!(r.contains("refused: a cross-site request"), "{r}");
    }

    // 1,024 parallel wrong sign-ins for dev1 from one address: at most 10 reach argon2
    // (the throttle of that identity and address), the rest are told to wait; memory
    // stays bounded.
    let codes = c.ok(&format!(
        "seq 1024 | xargs -P 128 -I{{}} curl -s -o /dev/null -w '%{{http_code}}\\n' -d 'user=dev1&password=wrong{{}}' {url}/login | sort | uniq -c"
    ));
    let count = |code: &str| -> usize {
        codes
            .lines()
            .find(|l| l.trim_end().ends_with(code))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    eprintln!("1,024 wrong sign-ins: {codes}");
    assert!(count("401") <= 10, "{codes}");
    assert!(count("429") >= 1000, "{codes}");
    let body = c.ok(&format!("curl -s -d 'user=dev1&password=x' {url}/login"));
    assert!(
        body.contains("Too many wrong passwords for dev1 from this address: try again in"),
        "{body}"
    );
    let mem: u64 = c
        .ok("systemctl show -P MemoryCurrent hhl-web.service")
        .trim()
        .parse()
        .unwrap();
    eprintln!("hhl-web memory after the storm: {} MiB", mem >> 20);
    assert!(mem < 128 << 20, "hhl-web holds {mem} bytes");
    assert_eq!(c.ok("systemctl show -P NRestarts hhl-web.service").trim(), "0");
    assert_eq!(
        c.ok("systemctl show -P MemoryMax hhl-web.service").trim(),
        (256u64 << 20).to_string()
    );

    // An idle connection (no request) is closed after the header timeout (10 s).
    let r = c.ok(
        "bash -c 'exec 3<>/dev/tcp/127.0.0.1/8080; s=$(date +%s); timeout 30 cat <&3 >/dev/null; echo $? $(( $(date +%s) - s ))'",
    );
    let mut it = r.split_whitespace();
    assert_eq!(it.next(), Some("0"), "the idle connection was not closed: {r}");
    let secs: u64 = it.next().unwrap().parse().unwrap();
    assert!((9..=15).contains(&secs), "closed after {secs} s");
    // 300 idle connections: beyond 256 arriving at once, the oldest are closed to let
    // the newest in, and the page answers.
    let r = c.ok("python3 -c \"
import socket, time
s = [socket.create_connection(('127.0.0.1', 8080)) for _ in range(300)]
time.sleep(1)
closed = 0
for x in s:
    x.setblocking(False)
    try:
        closed += x.recv(1) == b''
    except BlockingIOError:
        pass
print(closed)
\"");
    let closed: usize = r.trim().parse().unwrap();
    assert!(closed >= 40, "only {closed} of 300 idle connections were refused");
    eventually(&c, &format!("curl -s -m 5 -o /dev/null {url}/login"));

    // One-time link: only identities, works once, tampering refused.
    let r = c.sh("hhlctl web link mallory");
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("`mallory` is not a developer or an admin in"),
        "{}",
        r.stderr
    );
    let link = c.ok("hhlctl web link dev2").trim().to_string();
    assert!(link.starts_with("http://127.0.0.1:8080/link?t=dev2."), "{link}");
    let first = c.ok(&format!(
        "curl -s -c /tmp/jar -o /dev/null -w '%{{http_code}}' '{link}'"
    ));
    assert_eq!(first, "303");
    let again = c.ok(&format!("curl -s -w ' %{{http_code}}' '{link}'"));
    assert!(
        again.ends_with(" 403") && again.contains("this sign-in link was used already"),
        "{again}"
    );
    let forged = link.replace("t=dev2.", "t=dev1.");
    let r = c.ok(&format!("curl -s '{forged}'"));
    assert!(
        r.contains("this sign-in link is not one of this server&#39;s") || r.contains("not one of this server"),
        "{r}"
    );
    assert_eq!(
        c.ok(&format!(
            "curl -s -b /tmp/jar -o /dev/null -w '%{{http_code}}' {url}/api/logs"
        )),
        "200"
    );

    // At most 8 live views per identity. Probe for a ninth only once the eight stream
    // (their headers say 200): a probe sent earlier takes a slot itself, an eighth
    // tail then gets the 429 and ends, and the probe never sees eight.
    for n in 0..8 {
        c.ok(&format!(
            "(curl -s -N -D /tmp/tail-{n}.h -b /tmp/jar {url}/api/tail >/dev/null 2>&1 &)"
        ));
    }
    eventually_for(
        &c,
        "[ $(grep -l '^HTTP/1.1 200' /tmp/tail-*.h 2>/dev/null | wc -l) = 8 ]",
        40,
    );
    let r = c.ok(&format!(
        "curl -s -m 10 -w ' %{{http_code}}' -b /tmp/jar {url}/api/tail"
    ));
    assert!(
        r.ends_with(" 429")
            && r.contains("refused: dev2 has 8 live views open already (the most one identity may): close one (another tab) first"),
        "{r}"
    );

    // Behind a TLS proxy (its address in /etc/hhl/web.url): Secure cookies.
    c.ok("echo https://logs.example > /etc/hhl/web.url && systemctl restart hhl-web.service");
    eventually(&c, &format!("curl -s -o /dev/null {url}/login"));
    let link = c.ok("hhlctl web link dev2").trim().to_string();
    assert!(link.starts_with("https://logs.example/link?t="), "{link}");
    let local = link.replace("https://logs.example", url);
    let headers = c.ok(&format!("curl -s -D - -o /dev/null '{local}'"));
    assert!(headers.contains("HttpOnly; Secure; SameSite=Strict"), "{headers}");
}
