//! Logs developers can read: journal, rsyslog files, `hhlctl logs`, the Lua module.
//! Real systemd, real journald, real rsyslog.

mod support;

use std::time::{Duration, Instant};

use support::container::Container;
use support::example_yaml;

const LUA: &str = r#"local log = require "hhl.log"
ngx.log(ngx.ERR, "plain ngx.log marker-", ngx.var.arg_m)
log.warn("structured marker-" .. ngx.var.arg_m, { player = 42, room = "lobby two" })
ngx.say("logged")
"#;

/// Wait until `script` succeeds (rsyslog writes asynchronously).
fn eventually(c: &Container, script: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = c.sh(script);
        if r.code == 0 {
            return r.stdout;
        }
        assert!(Instant::now() < deadline, "`{script}` never succeeded: {}", r.stderr);
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

    // rsyslog: dev1's file, root:dev1 0640, in a root:dev1 0750 directory.
    let file = "/var/log/hhl/dev1/socketserver-dev1.log";
    let text = eventually(&c, &format!("grep 'marker-one' {file}"));
    assert!(text.contains("warning socketserver-dev1"), "{text}");
    assert!(text.contains("plain ngx.log marker-one"), "{text}");
    assert_eq!(
        c.ok(&format!("stat -c '%U:%G %a' {file} /var/log/hhl/dev1")),
        "root:dev1 640\nroot:dev1 750\n"
    );
    // Nothing of it in the shared syslog, and dev2 cannot read it.
    assert_eq!(c.sh("grep -c marker-one /var/log/syslog").stdout.trim(), "0");
    let r = c.sh_as("dev2", &format!("cat {file}"));
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("Permission denied"), "{}", r.stderr);
    // Redis has its own file too.
    eventually(&c, "test -s /var/log/hhl/dev2/redis-dev2.log");

    // hhlctl logs: root reads the journal; dev1 (no journal access) their file.
    let r = c.sh("hhlctl logs socketserver-dev1 -n 20");
    assert!(r.stdout.contains("structured marker-one"), "{}", r.stdout);
    let r = c.sh_as("dev1", "hhlctl logs socketserver-dev1 -n 20");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("structured marker-one"), "{}", r.stdout);
    let r = c.sh_as("dev1", "hhlctl logs socketserver-dev2");
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("not yours: you are unix user `dev1` and may not read the logs of socketserver-dev2"),
        "{}",
        r.stderr
    );
}

/// A WebDriver session against chromedriver inside the container.
struct Browser<'a> {
    c: &'a Container,
    session: String,
}

impl<'a> Browser<'a> {
    fn call(c: &Container, method: &str, path: &str, body: &serde_json::Value) -> serde_json::Value {
        c.write("/tmp/wd.json", &body.to_string());
        let out = c.ok(&format!(
            "curl -s -m 60 -X {method} -H 'Content-Type: application/json' -d @/tmp/wd.json http://127.0.0.1:9515{path}"
        ));
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("webdriver {path}: {e}: {out}"))
    }

    fn start(c: &'a Container) -> Browser<'a> {
        c.ok("nohup chromedriver --port=9515 >/tmp/chromedriver.log 2>&1 &");
        eventually(c, "curl -s http://127.0.0.1:9515/status | grep -q '\"ready\":true'");
        let caps = serde_json::json!({"capabilities": {"alwaysMatch": {"browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"]}}}});
        let r = Browser::call(c, "POST", "/session", &caps);
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {r}"))
            .to_string();
        Browser { c, session }
    }

    fn cmd(&self, method: &str, path: &str, body: serde_json::Value) -> serde_json::Value {
        let r = Browser::call(self.c, method, &format!("/session/{}{path}", self.session), &body);
        assert!(r["value"]["error"].is_null(), "webdriver {path}: {r}");
        r["value"].clone()
    }

    fn go(&self, url: &str) {
        self.cmd("POST", "/url", serde_json::json!({ "url": url }));
    }

    fn element(&self, css: &str) -> String {
        let v = self.cmd(
            "POST",
            "/element",
            serde_json::json!({"using": "css selector", "value": css}),
        );
        v.as_object()
            .unwrap()
            .values()
            .next()
            .unwrap()
            .as_str()
            .unwrap()
            .to_string()
    }

    fn type_into(&self, css: &str, text: &str) {
        let e = self.element(css);
        self.cmd(
            "POST",
            &format!("/element/{e}/value"),
            serde_json::json!({ "text": text }),
        );
    }

    fn click(&self, css: &str) {
        let e = self.element(css);
        self.cmd("POST", &format!("/element/{e}/click"), serde_json::json!({}));
    }

    fn script(&self, js: &str) -> serde_json::Value {
        self.cmd("POST", "/execute/sync", serde_json::json!({ "script": js, "args": [] }))
    }

    /// The HTTP status of `fetch(path)` from the page, with the page's own session.
    fn fetch_status(&self, path: &str) -> serde_json::Value {
        let js = format!("const done = arguments[0]; fetch('{path}').then(r => done(r.status))");
        self.cmd(
            "POST",
            "/execute/async",
            serde_json::json!({ "script": js, "args": [] }),
        )
    }

    /// Poll `js` (returning a boolean) until true.
    fn wait_for(&self, js: &str, what: &str) -> Duration {
        let t = Instant::now();
        while self.script(js) != serde_json::json!(true) {
            if t.elapsed() > Duration::from_secs(15) {
                let page = self.script("return location.href + ' | ' + document.body.innerText.slice(0, 800)");
                panic!("timed out waiting for {what}; the page: {page}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        t.elapsed()
    }
}

impl Drop for Browser<'_> {
    fn drop(&mut self) {
        let _ = self.c.sh(&format!(
            "curl -s -X DELETE http://127.0.0.1:9515/session/{}",
            self.session
        ));
    }
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
