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
    assert!(msg.ends_with(" msg=\"structured marker-one\" player=42 room=\"lobby two\""), "{msg}");
    eventually(&c, "journalctl -u openresty@socketserver-dev1 --no-pager | grep -q 'plain ngx.log marker-one'");

    // rsyslog: dev1's file, root:dev1 0640, in a root:dev1 0750 directory.
    let file = "/var/log/hhl/dev1/socketserver-dev1.log";
    let text = eventually(&c, &format!("grep 'marker-one' {file}"));
    assert!(text.contains("warning socketserver-dev1"), "{text}");
    assert!(text.contains("plain ngx.log marker-one"), "{text}");
    assert_eq!(c.ok(&format!("stat -c '%U:%G %a' {file} /var/log/hhl/dev1")), "root:dev1 640\nroot:dev1 750\n");
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
        r.stderr.contains("not yours: you are unix user `dev1` and may not read the logs of socketserver-dev2"),
        "{}",
        r.stderr
    );
}
