//! The console across hosts, for real: three systemd hosts on a bridge (see
//! support/multihost.rs), one hhl.yaml placing dev2 on hhl2 and dev3 on hhl3, and the
//! real hhl-web.service on the primary, hhl1, driven over HTTP with curl there (as a
//! page would: a session cookie, JSON, the live view open).
//!
//! Cases, in one boot: the admin sees the instances of all three hosts, each with its
//! HOST; dev1 sees only their own and cannot act on dev3's instance on hhl3 (refused,
//! nothing moved there); the admin restarts it through the console (its MainPID
//! changes, and the console shows the new one) and lists its releases; requests
//! without a session, from another site, or with a word that is no release id are
//! refused and nothing is sent to hhl3; with hhl1 and hhl3 cut apart, the console marks
//! hhl3 unreachable while hhl2's rows stay live (a restart there shows), and an action
//! on hhl3 says which host did not answer and does nothing; healed, hhl3 answers again.
//! Times printed: the readings behind the listing (this host's, each other host's) and
//! how long the cut took to show.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::browser::Browser;
use support::multihost::{until, Host, Hosts};

const URL: &str = "http://127.0.0.1:8080";
const DEV3: &str = "openresty@socketserver-dev3.service";
const DEV2: &str = "openresty@socketserver-dev2.service";

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Sign `id` in with a one-time link (as `ssh hhl@server web` gives one): its cookies
/// in /root/<id>.jar on the primary.
fn sign_in(h1: &Host, id: &str) {
    let link = h1.ok(&format!("hhlctl web link {id}")).trim().to_string();
    let path = link.split_once("/link?").map(|(_, q)| format!("/link?{q}")).unwrap();
    let code = h1.ok(&format!(
        "curl -s -c /root/{id}.jar -o /dev/null -w '%{{http_code}}' '{URL}{path}'"
    ));
    assert_eq!(code, "303", "{id}'s sign-in link");
}

/// An HTTP answer: status and body.
struct Answer {
    status: u16,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// `curl` on the primary with `args` (a session's jar, a method, a body…).
fn curl(h1: &Host, args: &str, path: &str) -> Answer {
    let out = h1.ok(&format!("curl -s -m 60 -w '\\n%{{http_code}}' {args} '{URL}{path}'"));
    let (body, status) = out.rsplit_once('\n').unwrap();
    Answer {
        status: status.trim().parse().unwrap(),
        body: body.to_string(),
    }
}

fn get(h1: &Host, id: &str, path: &str) -> Answer {
    curl(h1, &format!("-b /root/{id}.jar"), path)
}

/// A JSON POST as `id` (`None`: no session at all).
fn post(h1: &Host, id: Option<&str>, path: &str, body: &str) -> Answer {
    let jar = id.map(|id| format!("-b /root/{id}.jar")).unwrap_or_default();
    h1.write("/root/body.json", body);
    curl(
        h1,
        &format!("{jar} -H 'Content-Type: application/json' --data-binary @/root/body.json"),
        path,
    )
}

/// The instances `id` sees in the console: (host, instance, the view).
fn views(overview: &Value) -> Vec<(String, String, Value)> {
    overview["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["instances"].as_array().unwrap().clone())
        .map(|v| {
            (
                v["host"].as_str().unwrap_or("").to_string(),
                v["instance"].as_str().unwrap().to_string(),
                v,
            )
        })
        .collect()
}

fn view<'a>(all: &'a [(String, String, Value)], instance: &str) -> &'a Value {
    &all.iter()
        .find(|(_, i, _)| i == instance)
        .unwrap_or_else(|| panic!("no {instance} in the console"))
        .2
}

fn host_state<'a>(overview: &'a Value, host: &str) -> &'a Value {
    overview["hosts"]
        .as_array()
        .and_then(|a| a.iter().find(|h| h["name"] == host))
        .unwrap_or_else(|| panic!("no host {host} in {overview}"))
}

/// How many actions the console has sent to another host (its journal says each).
fn sent(h1: &Host) -> usize {
    h1.sh("journalctl -q -u hhl-web.service -o cat | grep -c ' sent to host '")
        .stdout
        .trim()
        .parse()
        .unwrap_or(0)
}

/// Wait until the console's journal has said `n` sends, then that it has said no
/// more: its lines come in order, so any send before the last one awaited is counted.
#[track_caller]
fn sends_are(h1: &Host, n: usize, what: &str) {
    until(what, 30, || sent(h1) >= n);
    assert_eq!(sent(h1), n, "{what}: more was sent to another host than asked");
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort();
    v[v.len() / 2]
}

#[test]
fn the_console_across_three_hosts() {
    let t0 = Instant::now();
    let (hs, _) = Hosts::with_config(
        3,
        &["dev1", "dev2", "dev3", "lead"],
        &["lead"],
        &[("dev2", 2), ("dev3", 3)],
        Duration::from_secs(420),
    );
    println!("3 hosts booted and applied in {}", secs(t0.elapsed()));
    let (h1, h2, h3) = (hs.host(1), hs.host(2), hs.host(3));

    // The console on the primary, as the entry account (its peer key is that account's).
    h1.ok("systemctl start hhl-web.service");
    until("hhl-web answering", 30, || {
        h1.sh(&format!("curl -s -o /dev/null {URL}/login")).code == 0
    });
    assert_eq!(h1.ok("systemctl show -p User --value hhl-web.service").trim(), "hhl");
    sign_in(h1, "lead");
    sign_in(h1, "dev1");

    // Cold: nobody watched yet, every host is asked (a kept connection made to each).
    let t = Instant::now();
    let o = get(h1, "lead", "/api/overview");
    let cold = t.elapsed();
    assert_eq!(o.status, 200, "{}", o.body);
    let o = o.json();
    println!(
        "first listing (nobody watching, a connection to each host made): {} ms",
        cold.as_millis()
    );
    // The page open from here on: the console keeps reading while someone watches.
    h1.ok(&format!(
        "nohup curl -s -N -b /root/lead.jar {URL}/api/events >/root/events.log 2>&1 &"
    ));

    // The admin sees all three hosts' instances, each with its host.
    assert_eq!(o["here"], "hhl1", "{o}");
    let all = views(&o);
    for (host, inst) in [
        ("hhl1", "socketserver-dev1"),
        ("hhl1", "socketserver-master"),
        ("hhl2", "socketserver-dev2"),
        ("hhl3", "socketserver-dev3"),
        ("hhl3", "6383"),
    ] {
        let v = view(&all, inst);
        assert_eq!(v["host"], host, "{inst}: {v}");
        assert_eq!(v["healthy"], true, "{inst}: {v}");
        assert!(v.get("unreachable").is_none(), "{inst}: {v}");
    }
    for host in ["hhl2", "hhl3"] {
        let s = host_state(&o, host);
        assert!(s["unreachable"].is_null() && s["pending"] == false, "{s}");
    }
    assert_eq!(
        view(&all, "socketserver-dev3")["main_pid"]
            .as_u64()
            .unwrap()
            .to_string(),
        h3.main_pid(DEV3),
        "hhl3's own PID"
    );
    // The readings behind each listing: this host's own, and each other host's (asked
    // side by side, so the listing across three hosts waits for the slowest).
    let (mut local, mut two, mut three) = (Vec::new(), Vec::new(), Vec::new());
    let mut at = 0;
    until("ten readings", 60, || {
        let o = get(h1, "lead", "/api/overview").json();
        if o["at"].as_u64() != Some(at) {
            at = o["at"].as_u64().unwrap();
            local.push(o["took_ms"].as_u64().unwrap());
            two.push(host_state(&o, "hhl2")["took_ms"].as_u64().unwrap());
            three.push(host_state(&o, "hhl3")["took_ms"].as_u64().unwrap());
        }
        local.len() >= 10
    });
    let (l, a, b) = (median(local), median(two), median(three));
    println!(
        "console reading, median of 10: hhl1's own instances (one host) {l} ms; hhl2's {a} ms and hhl3's {b} ms \
         over kept connections; across 3 hosts (in parallel) {} ms",
        l.max(a).max(b)
    );

    // dev1 sees only their own, on hhl1, and no other host.
    let o = get(h1, "dev1", "/api/overview").json();
    let mine = views(&o);
    assert!(mine.iter().all(|(h, _, v)| h == "hhl1" && v["owner"] == "dev1"), "{o}");
    assert!(o.get("hosts").is_none(), "{o}");
    // dev1 on dev3's instance on hhl3: refused here, nothing sent, nothing moved.
    let pid3 = h3.main_pid(DEV3);
    let before = sent(h1);
    for (path, body) in [
        ("/api/act", r#"{"verb":"restart","instances":["socketserver-dev3"]}"#),
        ("/api/act", r#"{"verb":"reload","owner":"dev3"}"#),
        ("/api/rollback", r#"{"instance":"socketserver-dev3"}"#),
    ] {
        let a = post(h1, Some("dev1"), path, body);
        assert_eq!(a.status, 403, "{path} {body}: {}", a.body);
        assert!(
            a.body
                .contains("refused: not yours: the instances of `dev3` belong to dev3"),
            "{}",
            a.body
        );
    }
    let a = get(h1, "dev1", "/api/releases?instance=socketserver-dev3");
    assert_eq!(a.status, 403, "{}", a.body);
    let a = get(h1, "dev1", "/api/logs?instance=socketserver-dev3");
    assert_eq!(a.status, 403, "{}", a.body);
    assert_eq!(h3.main_pid(DEV3), pid3, "nothing moved on hhl3");

    // Hostile: without a session, from another site, a word that is no release id.
    let a = post(
        h1,
        None,
        "/api/act",
        r#"{"verb":"restart","instances":["socketserver-dev3"]}"#,
    );
    assert_eq!(a.status, 401, "{}", a.body);
    let a = post(h1, None, "/api/rollback", r#"{"instance":"socketserver-dev3"}"#);
    assert_eq!(a.status, 401, "{}", a.body);
    let a = curl(
        h1,
        "-b /root/lead.jar -H 'Origin: https://evil.example' -H 'Content-Type: application/json' \
         -d '{\"verb\":\"restart\",\"instances\":[\"socketserver-dev3\"]}'",
        "/api/act",
    );
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(a.body.contains("cross-site"), "{}", a.body);
    let a = post(
        h1,
        Some("lead"),
        "/api/rollback",
        r#"{"instance":"socketserver-dev3","to":"x restart"}"#,
    );
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(h3.main_pid(DEV3), pid3, "nothing moved on hhl3");

    // The admin restarts dev3's instance on hhl3 through the console.
    let t = Instant::now();
    let a = post(
        h1,
        Some("lead"),
        "/api/act",
        r#"{"verb":"restart","instances":["socketserver-dev3"]}"#,
    );
    let took = t.elapsed();
    assert_eq!(a.status, 200, "{}", a.body);
    let j = a.json();
    assert_eq!(j["ok"], true, "{j}");
    assert_eq!(j["host"], "hhl3", "{j}");
    assert!(j["answer"].as_str().unwrap().contains(DEV3), "{j}");
    let new3 = h3.main_pid(DEV3);
    assert_ne!(new3, pid3, "dev3's instance restarted on hhl3");
    // Only the admin's: none of dev1's or the hostile requests went out before it.
    sends_are(h1, before + 1, "the admin's restart sent to hhl3");
    println!(
        "restart of dev3's instance on hhl3 through the console: {} ms",
        took.as_millis()
    );
    let t = Instant::now();
    until("the console shows hhl3's new PID", 30, || {
        let o = get(h1, "lead", "/api/overview").json();
        view(&views(&o), "socketserver-dev3")["main_pid"]
            .as_u64()
            .map(|p| p.to_string())
            == Some(new3.clone())
    });
    println!("the console showed the new PID {} ms later", t.elapsed().as_millis());
    // Its releases, as hhl3 keeps them.
    let a = get(h1, "lead", "/api/releases?instance=socketserver-dev3");
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.json().is_array(), "{}", a.body);
    // Its logs are on hhl3: the log page says where.
    let a = get(h1, "lead", "/api/logs?instance=socketserver-dev3");
    assert_eq!(a.status, 404, "{}", a.body);
    assert!(a.body.contains("runs on host hhl3"), "{}", a.body);

    // hhl1 and hhl3 cut apart: the console marks hhl3, hhl2 stays live.
    let before = sent(h1);
    hs.cut(1, 3);
    let cut = Instant::now();
    until("the console marks hhl3 unreachable", 60, || {
        let o = get(h1, "lead", "/api/overview").json();
        !host_state(&o, "hhl3")["unreachable"].is_null()
    });
    let detected = cut.elapsed();
    let o = get(h1, "lead", "/api/overview").json();
    let s3 = host_state(&o, "hhl3");
    println!(
        "partition hhl1-hhl3: the console marked hhl3 unreachable in {} ({})",
        secs(detected),
        s3["unreachable"]["error"].as_str().unwrap_or("").trim()
    );
    let all = views(&o);
    let v3 = view(&all, "socketserver-dev3");
    assert!(!v3["unreachable"]["error"].as_str().unwrap().is_empty(), "{v3}");
    assert!(v3["unreachable"]["since"].as_u64().unwrap() > 0, "{v3}");
    assert_eq!(v3["healthy"], false, "{v3}");
    assert_eq!(v3["main_pid"].as_u64().unwrap().to_string(), new3, "as last seen");
    let v2 = view(&all, "socketserver-dev2");
    assert!(v2.get("unreachable").is_none() && v2["healthy"] == true, "{v2}");
    assert!(host_state(&o, "hhl2")["unreachable"].is_null(), "{o}");
    until("ssh's own verdict on hhl3", 60, || {
        let o = get(h1, "lead", "/api/overview").json();
        host_state(&o, "hhl3")["unreachable"]["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("unreachable:"))
    });
    println!(
        "ssh gave up on hhl3 {} after the cut (a dead kept connection, then a new one tried)",
        secs(cut.elapsed())
    );
    // The page itself (headless Chromium on hhl1): each card names its host, hhl3's
    // are marked and say since when, its logs are not linked; the top names hhl3.
    let b = Browser::start(h1);
    b.go(h1.ok("hhlctl web link lead").trim());
    let card = |i: &str| format!("document.querySelector(\"article.card[data-instance='{i}']\")");
    b.wait_for(
        &format!(
            "const c3 = {}, c2 = {}, top = document.getElementById('hosts'); \
             return c3 !== null && c2 !== null && c3.classList.contains('unreachable') \
             && c3.querySelector('dd.host').textContent == 'hhl3' && c3.querySelector('.badge').textContent == 'unreachable' \
             && c3.querySelector('.away').textContent.includes('has not answered since') && c3.querySelector('a.logs') === null \
             && !c2.classList.contains('unreachable') && c2.querySelector('dd.host').textContent == 'hhl2' \
             && c2.querySelector('.badge').textContent == 'running' && !top.hidden && top.textContent.includes('Host hhl3')",
            card("socketserver-dev3"),
            card("socketserver-dev2")
        ),
        "the page marks hhl3's instances, and not hhl2's",
    );
    b.screenshot(
        &std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots/console-hosts-cut.png"),
    );
    // hhl2 stays live: a restart of dev2's instance shows.
    let pid2 = h2.main_pid(DEV2);
    let a = post(
        h1,
        Some("lead"),
        "/api/act",
        r#"{"verb":"restart","instances":["socketserver-dev2"]}"#,
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let new2 = h2.main_pid(DEV2);
    assert_ne!(new2, pid2);
    let t = Instant::now();
    until("the console shows hhl2's new PID during the cut", 30, || {
        let o = get(h1, "lead", "/api/overview").json();
        view(&views(&o), "socketserver-dev2")["main_pid"]
            .as_u64()
            .map(|p| p.to_string())
            == Some(new2.clone())
    });
    println!(
        "during the partition, hhl2's restart showed in the console {} ms later",
        t.elapsed().as_millis()
    );
    // An action on hhl3: the host is named, nothing is done there.
    let t = Instant::now();
    let a = post(
        h1,
        Some("lead"),
        "/api/act",
        r#"{"verb":"restart","instances":["socketserver-dev3"]}"#,
    );
    assert_eq!(a.status, 503, "{}", a.body);
    assert!(a.body.contains("host hhl3 (10.77.0.3) cannot be reached"), "{}", a.body);
    println!(
        "during the partition, a restart on hhl3 was refused in {}",
        secs(t.elapsed())
    );
    assert_eq!(h3.main_pid(DEV3), new3, "nothing moved on hhl3");
    sends_are(h1, before + 2, "the restarts on hhl2 and hhl3 sent");

    // Healed: hhl3 answers again.
    hs.heal(1, 3);
    let healed = Instant::now();
    until("the console hears from hhl3 again", 60, || {
        let o = get(h1, "lead", "/api/overview").json();
        host_state(&o, "hhl3")["unreachable"].is_null()
            && view(&views(&o), "socketserver-dev3").get("unreachable").is_none()
    });
    println!(
        "after healing, the console heard from hhl3 in {}",
        secs(healed.elapsed())
    );
    println!("whole test: {}", secs(t0.elapsed()));
}
