//! Instances as system users, in a real systemd with real polkit: who may control what,
//! what an instance can read, and how far one developer's runaway code reaches.

mod support;

use std::time::Duration;

use support::container::{Container, CFG};
use support::example_yaml;

#[test]
fn instances_run_as_system_users_and_only_the_entry_account_controls_units() {
    let yaml = example_yaml().replace("admins: []", "admins: [lead]");
    let c = Container::boot();
    c.write(CFG, &yaml);
    let r = c.hhlctl(CFG, "apply");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    for user in ["hhl-dev1", "hhl-master", "hhl"] {
        assert!(r.stdout.contains(&format!("created unix user {user}")), "{}", r.stdout);
    }
    // Developers and admins are identities, not accounts.
    for nobody in ["dev1", "lead"] {
        assert_eq!(
            c.sh(&format!("getent passwd {nobody}")).code,
            2,
            "{nobody} got an account"
        );
    }
    c.deploy_lua();

    // Each instance runs as its owner's system user.
    for (unit, user) in [
        ("openresty@socketserver-dev1.service", "hhl-dev1"),
        ("redis@6382.service", "hhl-dev2"),
        ("openresty@socketserver-master.service", "hhl-master"),
        ("openresty@httpserver-master.service", "hhl-master"),
    ] {
        let pid = c.main_pid(unit);
        assert_eq!(c.ok(&format!("ps -o user= -p {pid}")).trim(), user, "{unit}");
    }
    // Hardened: systemd's own exposure score is at most 2.0 for every instance.
    let units = c.ok("systemctl list-units --no-legend --plain 'openresty@*' 'redis@*' | cut -d' ' -f1");
    let mut scores = Vec::new();
    for unit in units.split_whitespace() {
        let out = c.ok(&format!("systemd-analyze security --no-pager {unit} | tail -1"));
        let score: f64 = out
            .split("exposure level for")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no score in {out:?}"));
        scores.push(format!("{unit} {score}"));
        assert!(score <= 2.0, "{unit}: exposure {score}");
    }
    assert_eq!(scores.len(), 16);
    eprintln!("systemd-analyze security:\n  {}", scores.join("\n  "));

    // Instance users cannot log in; the entry account's only program is the forced
    // command (sshd needs a shell to run it), its password is locked.
    assert_eq!(c.ok("getent passwd hhl-dev1 | cut -d: -f7").trim(), "/usr/sbin/nologin");
    assert_eq!(c.ok("getent passwd hhl | cut -d: -f7").trim(), "/bin/sh");
    assert!(c.ok("passwd -S hhl").split_whitespace().nth(1) == Some("L"));

    // polkit: the entry account (what `hhlctl ssh` runs as) may start, stop, restart
    // and reload hhl units, signal the OpenResty ones (a deploy's reload is a SIGHUP),
    // and nothing more.
    let dev2 = c.main_pid("openresty@socketserver-dev2.service");
    let r = c.sh_as("hhl", "systemctl restart openresty@socketserver-dev1.service");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = c.sh_as(
        "hhl",
        "systemctl kill --kill-whom=main -s HUP openresty@socketserver-dev1.service",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    for cmd in [
        "systemctl kill -s HUP redis@6381.service",
        "systemctl kill hhl.target",
        "systemctl kill -s HUP systemd-journald.service",
        "systemctl kill -s HUP ssh.service",
        "systemctl set-property --runtime openresty@socketserver-dev1.service CPUQuota=",
        "systemctl daemon-reload",
        "systemctl restart ssh.service",
        "systemctl start hhl-web.service",
    ] {
        let r = c.sh_as("hhl", cmd);
        assert_ne!(r.code, 0, "`{cmd}` was allowed to the entry account");
        if cmd.contains(" kill ") {
            assert!(
                r.stderr.contains("Interactive authentication required"),
                "{cmd}: {}",
                r.stderr
            );
        }
    }
    // An instance user (say dev2's code got a shell) and any other local account get
    // nothing: not their own units, not with another job mode.
    c.ok("useradd --create-home mallory");
    for user in ["hhl-dev2", "mallory"] {
        for cmd in [
            "systemctl restart openresty@socketserver-dev2.service",
            "systemctl --job-mode=flush start openresty@socketserver-dev2.service",
            "systemctl --job-mode=replace-irreversibly stop redis@6382.service",
            "systemctl start hhl-apply.service",
            "systemctl kill -s HUP openresty@socketserver-dev2.service",
            "systemctl kill -s KILL redis@6382.service",
        ] {
            let r = c.sh_as(user, cmd);
            assert_ne!(r.code, 0, "`{cmd}` was allowed to {user}");
            assert!(
                r.stderr.contains("Interactive authentication required"),
                "{user}: {cmd}: {}",
                r.stderr
            );
        }
        // hhlctl as that user says why, and what to do.
        let r = c.sh_as(user, &format!("{} -c {CFG} restart socketserver-dev2", support::BIN));
        assert_eq!(r.code, 1, "{}", r.stdout);
        assert!(
            r.stderr.contains(&format!(
                "only root and the entry account `hhl` may restart instances here, and you are unix user `{user}`"
            )) && r
                .stderr
                .contains("hint: developers and admins use their ssh key: `ssh hhl@<server> restart …`"),
            "{}",
            r.stderr
        );
    }
    assert_eq!(c.main_pid("openresty@socketserver-dev2.service"), dev2);
    assert_eq!(c.ping(6382), "PONG");
    assert_eq!(c.get_hhl(1081), "hhl socketserver-dev1 ok\n");
}

/// dev1's Lua reports what it can open: `GET /hhl?path=P&mode=r` answers `ok` or the error.
const PROBE: &str = r#"
local f, err = io.open(ngx.var.arg_path, ngx.var.arg_mode or "r")
if not f then
    ngx.say("denied: ", err)
    return
end
if (ngx.var.arg_mode or "r") == "r" and not f:read(1) then
    ngx.say("denied: unreadable")
    return
end
f:close()
ngx.say("ok")
"#;

#[test]
fn an_instance_cannot_reach_another_developers_files() {
    let c = Container::applied(&example_yaml());
    c.write("/opt/hhl/socketserver/dev1/src/main.lua", PROBE);
    // Data on disk: Redis saves when it stops (SAVE itself is refused to clients).
    c.ok("redis-cli --no-auth-warning -p 6382 -a $(cat /var/lib/hhl/redis/dev2.secret) set k v && systemctl restart redis@6382.service && test -s /opt/redis/var/6382/6382.rdb");
    let probe = |path: &str, mode: &str| {
        c.sh(&format!(
            "curl -s -m 5 'http://127.0.0.1:1081/hhl?path={path}&mode={mode}'"
        ))
        .stdout
        .trim()
        .to_string()
    };
    // Its own code: readable, but not writable (the file system is read-only to it).
    assert_eq!(probe("/opt/hhl/socketserver/dev1/src/main.lua", "r"), "ok");
    assert!(
        probe("/opt/hhl/socketserver/dev1/src/new.lua", "w").starts_with("denied"),
        "an instance could write its own code"
    );
    assert_eq!(probe("/opt/hhl/socketserver/dev1/logs/probe.txt", "w"), "ok");
    for theirs in [
        "/opt/hhl/socketserver/dev2/src/main.lua",
        "/opt/hhl/dtserver/dev2/src/main.lua",
        "/opt/hhl/socketserver/master/src/main.lua",
        "/opt/hhl/socketserver/dev2/logs/nginx.pid",
        "/opt/hhl/socketserver/dev2/conf/nginx.conf",
        "/opt/redis/var/6382/6382.rdb",
        "/opt/redis/etc/6382.conf",
        "/var/lib/hhl/redis/dev2.secret",
        "/var/lib/hhl/redis/master.secret",
        "/var/lib/hhl/redis/6382.acl",
        "/root/.bashrc",
    ] {
        let got = probe(theirs, "r");
        assert!(got.starts_with("denied"), "dev1's Lua opened {theirs}: {got}");
    }
    // And nothing outside its own writable paths takes a write.
    for elsewhere in [
        "/opt/hhl/socketserver/dev2/logs/x",
        "/opt/hhl/lib/x",
        "/opt/redis/var/6381/x",
        "/etc/x",
    ] {
        assert!(probe(elsewhere, "w").starts_with("denied"), "wrote {elsewhere}");
    }
}

#[test]
fn a_runaway_loop_is_held_to_its_cpu_limit_and_others_keep_answering() {
    // dev1 gets 20% of one CPU and two workers to spin on; dev2 is untouched.
    let yaml = example_yaml().replace("dev1: {cpu: 150%}", "dev1: {cpu: 20%}").replace(
        "      dev1: {port: 1081}",
        "      dev1: {port: 1081, worker_processes: 2}",
    );
    assert!(yaml.contains("dev1: {cpu: 20%}") && yaml.contains("worker_processes: 2}"));
    let c = Container::applied(&yaml);
    c.write(
        "/opt/hhl/socketserver/dev1/src/main.lua",
        "local stop = ngx.now() + 6\nwhile ngx.now() < stop do ngx.update_time() end\nngx.say('done')\n",
    );
    // CPU seconds of dev1's processes, from /proc (cgroup v1 hosts have no CPUUsageNSec).
    let usage = || -> f64 {
        let ticks = c
            .ok("for p in $(pgrep -u hhl-dev1); do cat /proc/$p/stat; done | awk '{s += $14 + $15} END {print s + 0}'");
        ticks.trim().parse::<f64>().expect("clock ticks") / 100.0
    };
    // Four spinning requests, bounded by curl's own timeout.
    let idle = usage();
    c.ok("for i in 1 2 3 4; do curl -s -m 10 -o /dev/null http://127.0.0.1:1081/hhl >/dev/null 2>&1 & done; true");
    // Measure from the moment the loop burns CPU, not after a guess at it.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut t0 = usage();
    while t0 < idle + 0.05 {
        assert!(std::time::Instant::now() < deadline, "dev1's loop never started");
        std::thread::sleep(Duration::from_millis(50));
        t0 = usage();
    }
    let wall = std::time::Instant::now();
    // dev2 answers throughout: 20 requests while dev1 spins.
    let times = c.ok(
        "for i in $(seq 20); do curl -s -o /dev/null -m 5 -w '%{time_total}\\n' http://127.0.0.1:1082/hhl; sleep 0.1; done",
    );
    let cpu = usage() - t0;
    let secs = wall.elapsed().as_secs_f64();
    let mut ms: Vec<f64> = times
        .lines()
        .map(|l| l.trim().parse::<f64>().unwrap() * 1000.0)
        .collect();
    ms.sort_by(f64::total_cmp);
    assert_eq!(ms.len(), 20, "dev2 did not answer every request: {times}");
    eprintln!(
        "dev1 used {cpu:.2} s of CPU in {secs:.2} s (limit 20%); dev2 median {:.1} ms, max {:.1} ms",
        ms[10], ms[19]
    );
    // Two spinning workers would burn up to 2 CPU-seconds per second without the limit.
    assert!(
        cpu <= secs * 0.2 * 1.5,
        "dev1's slice used {cpu:.2} s of CPU in {secs:.2} s, over its 20% quota"
    );
    assert!(ms[10] < 100.0 && ms[19] < 1000.0, "dev2 starved: {ms:?}");
    // And the loop really ran (else the quota check above proves nothing).
    assert!(
        cpu >= secs * 0.1,
        "dev1's loop used only {cpu:.2} s of CPU in {secs:.2} s"
    );
    // Its own code still gets its 20%: the loop is slowed, not killed.
    assert_eq!(
        c.ok("systemctl is-active openresty@socketserver-dev1.service").trim(),
        "active"
    );
}

/// dev1's Lua talks to Redis through `hhl.redis`: `port`, `secret` (`own` for its
/// owner's, `none` for no AUTH at all) and a command of words.
const REDIS_PROBE: &str = r#"local redis = require "hhl.redis"
local args = ngx.req.get_uri_args()
local port = tonumber(args.port) or redis.port()
local words = {}
for w in (args.cmd or "PING"):gmatch("%S+") do words[#words + 1] = w end
local red, err
if args.secret == "none" then
    local sock = ngx.socket.tcp()
    sock:settimeouts(1000, 1000, 1000)
    local ok, e = sock:connect("127.0.0.1", port)
    if not ok then ngx.say("err ", e) return end
    sock:send(table.concat(words, " ") .. "\r\n")
    local line = sock:receive("*l")
    ngx.say("raw ", line)
    return
end
red, err = redis.connect(port, args.secret ~= "own" and args.secret or nil)
if not red then ngx.say("err ", err) return end
local v, e = red:call(unpack(words))
red:close()
if v == false or v == nil then ngx.say("err ", e) else ngx.say("ok ", tostring(v)) end
"#;

#[test]
fn each_redis_answers_its_owner_only_refuses_admin_commands_and_comes_back() {
    let c = Container::applied(&example_yaml());
    // The secret: made once, root:<instance user> 0640, kept across applies.
    let secret = |owner: &str| {
        c.ok(&format!("cat /var/lib/hhl/redis/{owner}.secret"))
            .trim()
            .to_string()
    };
    let (s1, s2) = (secret("dev1"), secret("dev2"));
    assert_eq!(s1.len(), 64);
    assert_ne!(s1, s2);
    assert_eq!(
        c.ok("stat -c '%a %U:%G' /var/lib/hhl/redis/dev1.secret /var/lib/hhl/redis/6381.acl"),
        "640 root:hhl-dev1\n640 root:hhl-dev1\n"
    );
    let r = c.hhlctl(CFG, "apply");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(secret("dev1"), s1, "a second apply changed the secret");

    // A plain TCP client (root in a shell, here): no AUTH, no data.
    let cli = |args: &str| {
        c.sh(&format!("timeout 5 redis-cli --no-auth-warning {args} 2>&1"))
            .stdout
    };
    for port in [6379, 6381, 6382] {
        let out = cli(&format!("-p {port} get k"));
        assert!(out.contains("NOAUTH Authentication required"), "{port}: {out}");
        let out = cli(&format!("-p {port} shutdown"));
        assert!(out.contains("NOAUTH"), "{port}: {out}");
    }
    // dev1's secret opens dev1's Redis only.
    let out = cli(&format!("-p 6382 -a {s1} get k"));
    assert!(out.contains("WRONGPASS"), "{out}");
    let out = cli(&format!("-p 6379 -a {s1} get k"));
    assert!(out.contains("WRONGPASS"), "{out}");
    assert_eq!(cli(&format!("-p 6381 -a {s1} set k v")).trim(), "OK");
    // Even the owner: nothing that stops, re-points, reconfigures or watches the server.
    for cmd in [
        "shutdown",
        "shutdown nosave",
        "flushall",
        "monitor",
        "replicaof 127.0.0.1 6382",
        "slaveof 127.0.0.1 6382",
        "config set dir /tmp",
        "acl setuser mallory on nopass +@all",
        "acl save",
        "debug sleep 0",
        "module load /tmp/x.so",
        "save",
        "bgsave",
        "client kill type normal",
        "failover",
        "swapdb 0 1",
    ] {
        let out = cli(&format!("-p 6381 -a {s1} {cmd}"));
        // DEBUG and MODULE: Redis 7 refuses them to every client before the ACL does.
        let refused = out.contains("NOPERM")
            || ((cmd.starts_with("debug") || cmd.starts_with("module")) && out.contains("command not allowed"));
        assert!(refused, "`{cmd}` on dev1's own Redis: {out}");
    }
    assert_eq!(cli(&format!("-p 6381 -a {s1} get k")).trim(), "v");

    // From dev1's Lua: its own Redis works; dev2's and master's do not.
    c.write("/opt/hhl/socketserver/dev1/src/main.lua", REDIS_PROBE);
    let lua = |q: &str| {
        c.sh(&format!("curl -s -m 5 'http://127.0.0.1:1081/hhl?{q}'"))
            .stdout
            .trim()
            .to_string()
    };
    assert_eq!(lua("secret=own&cmd=SET+lua+yes"), "ok OK");
    assert_eq!(lua("secret=own&cmd=GET+lua"), "ok yes");
    let out = lua("secret=own&cmd=SHUTDOWN");
    assert!(out.starts_with("err NOPERM"), "{out}");
    let out = lua("secret=own&cmd=FLUSHALL");
    assert!(out.starts_with("err NOPERM"), "{out}");
    let out = lua("secret=own&cmd=CONFIG+GET+requirepass");
    assert!(out.starts_with("err NOPERM"), "{out}");
    for port in [6382, 6379] {
        let out = lua(&format!("port={port}&secret=own&cmd=GET+k"));
        assert!(out.starts_with("err Redis AUTH: WRONGPASS"), "{port}: {out}");
        let out = lua(&format!("port={port}&secret=none&cmd=FLUSHALL"));
        assert!(out.starts_with("raw -NOAUTH"), "{port}: {out}");
        let out = lua(&format!("port={port}&secret=none&cmd=SHUTDOWN"));
        assert!(out.starts_with("raw -NOAUTH"), "{port}: {out}");
    }
    assert_eq!(
        cli(&format!("-p 6382 -a {s2} ping")).trim(),
        "PONG",
        "dev2's Redis went down"
    );

    // A Redis that exits, even cleanly (SIGTERM: exit 0), comes back.
    for signal in ["SIGTERM", "SIGKILL"] {
        let before = c.main_pid("redis@6381.service");
        c.ok(&format!("systemctl kill -s {signal} redis@6381.service"));
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let now = c
                .sh("systemctl show -P MainPID redis@6381.service")
                .stdout
                .trim()
                .to_string();
            if now != before && now != "0" && cli(&format!("-p 6381 -a {s1} ping")).trim() == "PONG" {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "redis@6381 did not come back after {signal}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
