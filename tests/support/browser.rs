//! A WebDriver session against chromedriver (headless Chromium) inside a container:
//! the real page, driven as a user would.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use super::container::Container;

/// How long a condition on the page may take.
pub const PAGE_WAIT: Duration = Duration::from_secs(30);

pub struct Browser<'a> {
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

    /// chromedriver started (once per container), a new session, a laptop-sized window.
    pub fn start(c: &'a Container) -> Browser<'a> {
        if c.sh("curl -s http://127.0.0.1:9515/status | grep -q '\"ready\":true'")
            .code
            != 0
        {
            c.ok("nohup chromedriver --port=9515 >/tmp/chromedriver.log 2>&1 &");
            let t = Instant::now();
            while c
                .sh("curl -s http://127.0.0.1:9515/status | grep -q '\"ready\":true'")
                .code
                != 0
            {
                assert!(t.elapsed() < PAGE_WAIT, "chromedriver did not start");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let caps = serde_json::json!({"capabilities": {"alwaysMatch": {"browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                    "--window-size=1280,900", "--lang=en-GB"]}}}});
        let r = Browser::call(c, "POST", "/session", &caps);
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {r}"))
            .to_string();
        Browser { c, session }
    }

    pub fn cmd(&self, method: &str, path: &str, body: serde_json::Value) -> serde_json::Value {
        let r = Browser::call(self.c, method, &format!("/session/{}{path}", self.session), &body);
        assert!(r["value"]["error"].is_null(), "webdriver {path}: {r}");
        r["value"].clone()
    }

    pub fn go(&self, url: &str) {
        self.cmd("POST", "/url", serde_json::json!({ "url": url }));
    }

    pub fn element(&self, css: &str) -> String {
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

    pub fn type_into(&self, css: &str, text: &str) {
        let e = self.element(css);
        self.cmd(
            "POST",
            &format!("/element/{e}/value"),
            serde_json::json!({ "text": text }),
        );
    }

    pub fn click(&self, css: &str) {
        let e = self.element(css);
        self.cmd("POST", &format!("/element/{e}/click"), serde_json::json!({}));
    }

    /// Press and release `key` on whatever has the focus (`\u{E007}` is Enter).
    pub fn press(&self, key: &str) {
        self.cmd(
            "POST",
            "/actions",
            serde_json::json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
                {"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}]}]}),
        );
    }

    pub fn script(&self, js: &str) -> serde_json::Value {
        self.cmd("POST", "/execute/sync", serde_json::json!({ "script": js, "args": [] }))
    }

    /// The HTTP status of `fetch(path)` from the page, with the page's own session.
    pub fn fetch_status(&self, path: &str) -> serde_json::Value {
        let js = format!("const done = arguments[0]; fetch('{path}').then(r => done(r.status))");
        self.cmd(
            "POST",
            "/execute/async",
            serde_json::json!({ "script": js, "args": [] }),
        )
    }

    /// `POST path` with a JSON body from the page (its session, its Origin): [status, body].
    pub fn post(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let js = format!(
            "const done = arguments[0]; fetch('{path}', {{method: 'POST', headers: {{'Content-Type': 'application/json'}}, body: JSON.stringify({body})}}).then(async r => done([r.status, await r.text()]))"
        );
        self.cmd(
            "POST",
            "/execute/async",
            serde_json::json!({ "script": js, "args": [] }),
        )
    }

    /// Poll `js` (returning a boolean) until true, at most `PAGE_WAIT`.
    pub fn wait_for(&self, js: &str, what: &str) -> Duration {
        let t = Instant::now();
        while self.script(js) != serde_json::json!(true) {
            if t.elapsed() > PAGE_WAIT {
                let page = self.script("return location.href + ' | ' + document.body.innerText.slice(0, 1500)");
                panic!("timed out waiting for {what}; the page: {page}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        t.elapsed()
    }

    pub fn resize(&self, width: u32, height: u32) {
        self.cmd(
            "POST",
            "/window/rect",
            serde_json::json!({ "width": width, "height": height }),
        );
    }

    /// A PNG of the viewport, written to `path` on this machine.
    pub fn screenshot(&self, path: &std::path::Path) {
        let b64 = self.cmd("GET", "/screenshot", serde_json::json!({}));
        let b64 = b64.as_str().expect("screenshot: base64");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let tmp = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(tmp.path(), b64).unwrap();
        let out = std::process::Command::new("base64")
            .arg("-d")
            .arg(tmp.path())
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stdout.starts_with(b"\x89PNG"),
            "screenshot is no PNG"
        );
        std::fs::write(path, out.stdout).unwrap();
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
