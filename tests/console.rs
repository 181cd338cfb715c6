//! The developer's console, in headless Chromium against the real hhl-web.service in a
//! real systemd: real instances, real crashes, real `git push` deploys over ssh. dev1
//! sees and acts on their own instances only; an admin sees and acts on all.
//! Screenshots of each page go to target/screenshots/ (`UPDATE_SCREENSHOTS=1`:
//! docs/screenshots/, which docs/dev/console.md shows).

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use support::browser::Browser;
use support::container::{Container, CFG};
use support::{example_yaml, Run};

const IDS: [&str; 3] = ["dev1", "dev2", "lead"];
const URL: &str = "http://127.0.0.1:8080";

fn ssh_cmd(id: &str) -> String {
    format!("ssh -i /root/keys/{id} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR")
}

/// The example with keys for dev1, dev2 and lead (admin), applied, repositories
/// made, sshd running, clones set up, passwords set and hhl-web.service started.
fn server() -> Container {
    let c = Container::boot();
    let mut keys = String::from("keys:\n");
    for id in IDS {
        c.ok(&format!(
            "mkdir -p /root/keys && ssh-keygen -q -t ed25519 -N '' -C {id}@pc -f /root/keys/{id}"
        ));
        let public = c.ok(&format!("cat /root/keys/{id}.pub"));
        keys.push_str(&format!("  {id}: [\"{}\"]\n", public.trim()));
    }
    c.write(CFG, &(example_yaml().replace("admins: []", "admins: [lead]") + &keys));
    let r = c.sh("hhlctl apply && hhlctl repo init");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    c.deploy_lua();
    c.ok("ssh-keygen -A && systemctl start ssh.service && systemctl is-active ssh.service");
    for id in IDS {
        c.ok(&format!(
            "mkdir -p /root/{id} && cd /root/{id} && git config --global --add safe.directory '*' \
             && git -c user.name=x clone -q --config user.name={id} --config user.email={id}@pc \
             --config core.sshCommand='{}' hhl@127.0.0.1:socketserver",
            ssh_cmd(id)
        ));
    }
    for id in IDS {
        c.ok(&format!("printf '{id}-secret\\n' | hhlctl web passwd {id}"));
    }
    c.ok("systemctl start hhl-web.service");
    wait(&c, &format!("curl -s -o /dev/null {URL}/login"), "hhl-web answering");
    c
}

/// Wait until `script` succeeds inside, bounded.
fn wait(c: &Container, script: &str, what: &str) -> String {
    let t = Instant::now();
    loop {
        let r = c.sh(script);
        if r.code == 0 {
            return r.stdout;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}: {}",
            r.stderr
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn push_lua(c: &Container, id: &str, branch: &str, text: &str) -> Run {
    c.sh(&format!(
        "cd /root/{id}/socketserver && {{ printf 'ngx.say(\"{text}\")\\n' > main.lua && git add -A && git commit -qm {text} && git push origin HEAD:{branch}; }} 2>&1"
    ))
}

/// A screenshot of the page, into target/screenshots; with `UPDATE_SCREENSHOTS` set,
/// into docs/screenshots, which docs/dev/console.md shows (as `UPDATE_GOLDEN` does for golden
/// trees: a plain test run leaves the source tree alone).
fn shot(b: &Browser, name: &str) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = if std::env::var_os("UPDATE_SCREENSHOTS").is_some() {
        root.join("docs/screenshots")
    } else {
        root.join("target/screenshots")
    };
    b.screenshot(&dir.join(name));
}

fn sign_in(b: &Browser, who: &str) {
    b.go(&format!("{URL}/login"));
    b.type_into("#user", who);
    b.type_into("#password", &format!("{who}-secret"));
    b.click("#signin");
    b.wait_for(
        "return location.pathname == '/' && document.querySelectorAll('.card').length > 0",
        "the console",
    );
}

/// The card of `instance`, as a CSS selector.
fn card(instance: &str) -> String {
    format!("article.card[data-instance='{instance}']")
}

fn text(b: &Browser, css: &str) -> String {
    b.script(&format!(
        "const e = document.querySelector(\"{css}\"); return e ? e.textContent : ''"
    ))
    .as_str()
    .unwrap_or_default()
    .to_string()
}

#[test]
fn developers_see_and_act_on_their_own_instances_and_admins_on_all() {
    let c = server();
    // hhl-web runs as the entry account, which polkit lets manage hhl units.
    assert_eq!(c.ok("systemctl show -p User --value hhl-web.service").trim(), "hhl");
    let b = Browser::start(&c);

    // dev1 signs in and sees only their three instances, all healthy.
    sign_in(&b, "dev1");
    b.wait_for(
        "return document.querySelectorAll('.card').length == 3 && document.querySelectorAll('.card.unhealthy').length == 0",
        "dev1's three healthy instances",
    );
    let labels =
        b.script("return [...document.querySelectorAll('.card')].map(c => c.getAttribute('aria-label')).join(' ')");
    assert_eq!(labels, "socketserver-dev1 dtserver-dev1 redis-dev1");
    let page = b.script("return document.body.innerText").as_str().unwrap().to_string();
    assert!(!page.contains("dev2"), "dev2 shows on dev1's page:\n{page}");
    let overview = b.cmd(
        "POST",
        "/execute/async",
        serde_json::json!({"script": "const done = arguments[0]; fetch('/api/overview').then(r => r.json()).then(o => done(o.groups.map(g => g.owner).join(' ')))", "args": []}),
    );
    assert_eq!(overview, "dev1");

    // Restart: the uptime starts again, with a new PID.
    let ss1 = card("socketserver-dev1");
    b.wait_for(
        &format!("return Number(document.querySelector(\"{ss1} dd.uptime\").dataset.secs) >= 3"),
        "an uptime of 3 s",
    );
    // CPU from the unit's cgroup, as a share over the last reading.
    b.wait_for(
        &format!("return document.querySelector(\"{ss1} dd.cpu\").textContent.endsWith(' %')"),
        "a CPU figure",
    );
    shot(&b, "console-home.png");
    let pid = c.main_pid("openresty@socketserver-dev1.service");
    b.click(&format!("{ss1} button.restart"));
    b.wait_for(
        "return document.getElementById('result').innerText.includes('restarted openresty@socketserver-dev1.service')",
        "the restart's result",
    );
    let new_pid = c.main_pid("openresty@socketserver-dev1.service");
    assert_ne!(new_pid, pid);
    b.wait_for(
        &format!(
            "const c = document.querySelector(\"{ss1}\"); return c.dataset.pid == '{new_pid}' && Number(c.querySelector('dd.uptime').dataset.secs) < 3"
        ),
        "the uptime reset",
    );
    assert_eq!(text(&b, &format!("{ss1} dd.restarts")), "0");

    // A crash: the master killed. Its reason appears, with its journal lines.
    c.ok(&format!("kill -9 {new_pid}"));
    b.wait_for(
        &format!(
            "const c = document.querySelector(\"{ss1}\"); return c.querySelector('.reason') && c.querySelector('.reason').textContent == 'signal 9 (SIGKILL)' && c.querySelector('dd.restarts').textContent == '1' && !c.classList.contains('unhealthy')"
        ),
        "the crash, and the instance back",
    );
    b.click(&format!("{ss1} .exit summary"));
    b.wait_for(
        &format!(
            "return document.querySelector(\"{ss1} pre.lines\").textContent.includes('code=killed, status=9/KILL')"
        ),
        "the lines around the crash",
    );
    shot(&b, "console-crash.png");
    b.click(&format!("{ss1} a.crash-logs"));
    b.wait_for(
        "return location.pathname == '/logs' && document.body.innerText.includes('code=killed, status=9/KILL')",
        "the crash in the log page",
    );
    shot(&b, "logs-around-crash.png");

    // Deploys: two pushes over ssh, the newest live; roll back to the first from the page.
    for v in ["dev1-v1", "dev1-v2"] {
        let r = push_lua(&c, "dev1", "dev1", v);
        assert_eq!(r.code, 0, "{}", r.stdout);
        assert!(r.stdout.contains("remote: deployed "), "{}", r.stdout);
    }
    assert_eq!(c.get_hhl(1081), "dev1-v2\n");
    b.go(&format!("{URL}/#deploys/socketserver-dev1"));
    b.wait_for(
        "const live = document.querySelector('#releases tr.live'); return !!live && live.querySelector('.subject').textContent == 'dev1-v2' && live.querySelector('.pusher').textContent == 'dev1'",
        "dev1-v2 live, pushed by dev1",
    );
    let v1 = b.script(
        "return [...document.querySelectorAll('#releases tr')].find(r => r.querySelector('.subject') && r.querySelector('.subject').textContent == 'dev1-v1').dataset.release",
    );
    let v1 = v1.as_str().unwrap().to_string();
    b.click(&format!("#releases tr[data-release='{v1}'] button.rollback"));
    b.wait_for(
        "return document.getElementById('deploy-result').innerText.includes('reloaded openresty@socketserver-dev1.service') && (document.querySelector('#releases tr.live .subject') || {}).textContent == 'dev1-v1'",
        "the rollback's result",
    );
    assert_eq!(c.get_hhl(1081), "dev1-v1\n");
    shot(&b, "console-deploys.png");
    // ssh says the same.
    let r = c.sh(&format!("{} hhl@127.0.0.1 releases socketserver-dev1", ssh_cmd("dev1")));
    assert!(r.stdout.contains(&format!("* {v1}  ")), "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("  dev1-v2 (pushed by dev1)"), "{}", r.stdout);
    let v2 = b.script(
        "return [...document.querySelectorAll('#releases tr')].find(r => r.querySelector('.subject') && r.querySelector('.subject').textContent == 'dev1-v2').dataset.release",
    );
    let v2 = v2.as_str().unwrap().to_string();
    for (to, answer) in [(&v2, "dev1-v2\n"), (&v1, "dev1-v1\n")] {
        let r = c.sh(&format!(
            "{} hhl@127.0.0.1 rollback socketserver-dev1 {to}",
            ssh_cmd("dev1")
        ));
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        assert!(r.stdout.contains(&format!(" -> {to}")), "{}", r.stdout);
        assert_eq!(c.get_hhl(1081), answer);
    }

    // Nothing of dev2's, by any request from dev1's own session (and the same words as ssh).
    b.go(&format!("{URL}/"));
    b.wait_for("return document.querySelectorAll('.card').length == 3", "the console");
    let dev2_pid = c.main_pid("openresty@socketserver-dev2.service");
    let forbidden = [
        (
            "/api/act",
            serde_json::json!({"verb": "restart", "instances": ["socketserver-dev2"]}),
        ),
        (
            "/api/act",
            serde_json::json!({"verb": "restart", "instances": ["6382"]}),
        ),
        (
            "/api/act",
            serde_json::json!({"verb": "reload", "instances": ["socketserver-dev1", "socketserver-dev2"]}),
        ),
        ("/api/act", serde_json::json!({"verb": "restart", "owner": "dev2"})),
        ("/api/act", serde_json::json!({"verb": "restart", "owner": "master"})),
        ("/api/rollback", serde_json::json!({"instance": "socketserver-dev2"})),
    ];
    for (path, body) in forbidden {
        let r = b.post(path, body.clone());
        assert_eq!(r[0], 403, "{path} {body}: {r}");
        assert!(
            r[1].as_str().unwrap().contains("refused: not yours"),
            "{path} {body}: {r}"
        );
    }
    let r = b.post(
        "/api/act",
        serde_json::json!({"verb": "restart", "instances": ["socketserver-dev2"]}),
    );
    assert!(
        r[1].as_str()
            .unwrap()
            .contains("not yours: the instances of `dev2` belong to dev2, and you are `dev1`"),
        "{r}"
    );
    for path in [
        "/api/releases?instance=socketserver-dev2",
        "/api/around?instance=socketserver-dev2&at=1",
        "/api/logs?instance=socketserver-dev2",
        "/api/admin/apply",
        "/api/admin/plan",
    ] {
        assert_eq!(b.fetch_status(path), serde_json::json!(403), "{path}");
    }
    assert_eq!(
        c.main_pid("openresty@socketserver-dev2.service"),
        dev2_pid,
        "dev2's instance moved"
    );
    // From another site: refused before anything else, with dev1's own cookie.
    let cookie = b.cmd("GET", "/cookie/hhl_session", serde_json::json!({}));
    let token = cookie["value"].as_str().unwrap();
    let r = c.ok(&format!(
        "curl -s -w ' %{{http_code}}' -H 'Origin: https://evil.example' -H 'Content-Type: application/json' -b hhl_session={token} -d '{{\"verb\":\"restart\",\"instances\":[\"socketserver-dev1\"]}}' {URL}/api/act"
    ));
    assert!(
        r.ends_with(" 403") && r.contains("refused: a cross-site request"),
        "{r}"
    );

    // Without a session: 401 for every API, the page sends to sign-in.
    for path in [
        "/api/overview",
        "/api/events",
        "/api/releases?instance=socketserver-dev1",
    ] {
        assert_eq!(
            c.ok(&format!("curl -s -o /dev/null -w '%{{http_code}}' {URL}{path}")),
            "401",
            "{path}"
        );
    }
    for path in ["/api/act", "/api/rollback"] {
        let r = c.ok(&format!(
            "curl -s -w ' %{{http_code}}' -H 'Content-Type: application/json' -d '{{\"verb\":\"restart\",\"instances\":[\"socketserver-dev1\"],\"instance\":\"socketserver-dev1\"}}' {URL}{path}"
        ));
        assert!(r.ends_with(" 401") && r.contains("sign in first"), "{path}: {r}");
    }
    assert_eq!(c.ok(&format!("curl -s -o /dev/null -w '%{{http_code}}' {URL}/")), "303");

    // Bad requests are told what is wrong.
    let bad = [
        (
            "/api/act",
            serde_json::json!({"verb": "kill", "instances": ["socketserver-dev1"]}),
            "verb: restart or reload",
        ),
        (
            "/api/act",
            serde_json::json!({"verb": "restart"}),
            "say `instances` or `owner`",
        ),
        (
            "/api/act",
            serde_json::json!({"verb": "restart", "instances": ["nosuch-dev1"]}),
            "no instance `nosuch-dev1` in hhl.yaml",
        ),
        (
            "/api/act",
            serde_json::json!({"verb": "reload", "instances": ["6381"]}),
            "redis@6381.service cannot reload (Redis re-reads its config only on restart)",
        ),
        (
            "/api/rollback",
            serde_json::json!({"instance": "socketserver-dev1", "to": "../../etc"}),
            "no release `../../etc` is kept in /opt/hhl/socketserver/dev1/app/releases",
        ),
        (
            "/api/rollback",
            serde_json::json!({"instance": "socketserver-dev1", "to": v1}),
            "is the live release already",
        ),
        (
            "/api/rollback",
            serde_json::json!({"instance": "redis-dev1"}),
            "no OpenResty instance `redis-dev1`",
        ),
    ];
    for (path, body, want) in bad {
        let r = b.post(path, body.clone());
        assert_eq!(r[0], 400, "{path} {body}: {r}");
        assert!(r[1].as_str().unwrap().contains(want), "{path} {body}: {r}");
    }

    // A reload that fails (a config nginx refuses) shows why, from the journal; the
    // instance keeps running what it had.
    let conf = "/opt/hhl/socketserver/dev1/conf/nginx.conf";
    c.ok(&format!(
        "cp {conf} /tmp/nginx.conf.good && echo 'no_such_directive on;' >> {conf}"
    ));
    b.click(&format!("{ss1} button.reload"));
    b.wait_for(
        "const r = document.getElementById('result'); return r.classList.contains('fail') && r.innerText.includes('reloading openresty@socketserver-dev1.service failed') && r.innerText.includes('unknown directive \"no_such_directive\"')",
        "the failed reload and its journal lines",
    );
    assert_eq!(c.get_hhl(1081), "dev1-v1\n");
    b.script("window.scrollTo(0, 0)");
    shot(&b, "console-failure.png");
    c.ok(&format!("cp /tmp/nginx.conf.good {conf}"));
    b.click(&format!("{ss1} button.reload"));
    b.wait_for(
        "const r = document.getElementById('result'); return r.classList.contains('ok') && r.innerText.includes('✓ reloaded openresty@socketserver-dev1.service')",
        "the reload once the config is good",
    );

    // The phone-sized page.
    b.resize(390, 844);
    b.wait_for("return document.querySelectorAll('.card').length == 3", "the console");
    shot(&b, "console-phone.png");
    b.resize(1280, 900);

    // "Restart all of mine", by keyboard: focus the button, Enter.
    b.script("document.querySelector('button.restart-all').focus()");
    b.press("\u{E007}");
    b.wait_for(
        "const t = document.getElementById('result').innerText; return t.includes('restarted openresty@socketserver-dev1.service') && t.includes('restarted redis@') && t.includes('restarted openresty@dtserver-dev1.service')",
        "all of dev1's restarted",
    );

    // An admin: every owner, grouped; acts on dev2's; sees the last apply and the plan.
    b.click("header form button");
    b.wait_for("return location.pathname == '/login'", "sign-out");
    // A serverctrl push, so there is an apply to show.
    c.ok(&format!(
        "cd /root/lead && git clone -q --config user.name=lead --config user.email=lead@pc --config core.sshCommand='{}' hhl@127.0.0.1:serverctrl \
         && cd serverctrl && printf '\\n# reviewed by lead\\n' >> hhl.yaml && git commit -qam 'a comment from lead' && git push -q origin HEAD:master 2>&1",
        ssh_cmd("lead")
    ));
    sign_in(&b, "lead");
    b.wait_for(
        "return [...document.querySelectorAll('section.group')].map(s => s.dataset.owner).join(' ') == 'master dev1 dev2 dev3 dev4'",
        "every owner's group",
    );
    let ss2 = card("socketserver-dev2");
    b.click(&format!("{ss2} button.restart"));
    b.wait_for(
        "return document.getElementById('result').innerText.includes('restarted openresty@socketserver-dev2.service')",
        "the admin's restart",
    );
    assert_ne!(c.main_pid("openresty@socketserver-dev2.service"), dev2_pid);
    shot(&b, "console-admin-home.png");
    b.click("#nav-admin");
    b.wait_for(
        "const r = document.querySelector('.apply-result'); return !!r && r.textContent == 'succeeded' && document.getElementById('apply').innerText.includes('a comment from lead')",
        "the last apply",
    );
    b.click("#run-plan");
    b.wait_for(
        "const p = document.getElementById('plan').textContent; return p.length > 0 && !p.startsWith('running')",
        "the plan",
    );
    let plan = text(&b, "#plan");
    assert!(!plan.contains("error"), "{plan}");
    shot(&b, "console-admin.png");
}
