//! hhlctl against a real systemd (an ephemeral container of this machine's root):
//! apply, status, start/stop/restart/reload, logs, and what apply changes or leaves
//! alone. Every test boots its own container.

mod support;

use std::collections::BTreeMap;

use support::container::{Container, CFG};
use support::{example_yaml, repo};

fn applied(yaml: &str) -> Container {
    Container::applied(yaml)
}

/// unit → (MainPID, NRestarts) for every hhl unit.
fn pids(c: &Container) -> BTreeMap<String, (String, String)> {
    let out = c.ok("systemctl show -p Id,MainPID,NRestarts 'openresty@*' 'redis@*'");
    out.split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(|block| {
            let get = |k: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(&format!("{k}=")))
                    .unwrap_or("")
                    .to_string()
            };
            (get("Id"), (get("MainPID"), get("NRestarts")))
        })
        .collect()
}

const NGINX_PORTS: [(u16, &str); 11] = [
    (1080, "socketserver-master"),
    (1081, "socketserver-dev1"),
    (1082, "socketserver-dev2"),
    (1083, "socketserver-dev3"),
    (1084, "socketserver-dev4"),
    (1090, "dtserver-master"),
    (1091, "dtserver-dev1"),
    (1092, "dtserver-dev2"),
    (1093, "dtserver-dev3"),
    (1094, "dtserver-dev4"),
    (1100, "httpserver-master"),
];
const REDIS_PORTS: [u16; 5] = [6379, 6381, 6382, 6383, 6384];

#[test]
fn apply_runs_every_instance_and_a_second_apply_touches_nothing() {
    let c = applied(&example_yaml());

    let active = c.ok("systemctl list-units --no-legend --plain --state=active 'openresty@*' 'redis@*' | wc -l");
    assert_eq!(active.trim(), "16");
    for (port, name) in NGINX_PORTS {
        assert_eq!(c.get_hhl(port), format!("hhl {name} ok\n"), "GET /hhl on {port}");
    }
    for port in REDIS_PORTS {
        assert_eq!(c.ping(port), "PONG", "redis on {port}");
    }
    // Each developer's processes are grouped in their slice.
    assert_eq!(
        c.ok("systemctl show -p Slice --value openresty@socketserver-dev1.service")
            .trim(),
        "hhl-dev1.slice"
    );
    assert_eq!(
        c.ok("systemctl show -p Slice --value redis@6379.service").trim(),
        "hhl-master.slice"
    );
    assert_eq!(
        c.ok("systemctl is-enabled openresty@dtserver-dev3.service").trim(),
        "enabled"
    );

    let status = c.hhlctl(CFG, "status");
    assert_eq!(status.code, 0, "{}\n{}", status.stdout, status.stderr);
    assert!(status.stdout.starts_with("INSTANCE "), "{}", status.stdout);
    assert!(
        status
            .stdout
            .contains("socketserver-dev1    dev1       socketserver  1081  active/running"),
        "{}",
        status.stdout
    );
    let json: serde_json::Value = serde_json::from_str(&c.hhlctl(CFG, "status --json").stdout).unwrap();
    let rows = json.as_array().unwrap();
    assert_eq!(rows.len(), 16);
    for r in rows {
        assert_eq!(r["healthy"], true, "{r}");
        assert!(r["main_pid"].as_u64().unwrap() > 1, "{r}");
        assert!(r["memory"].as_u64().unwrap_or(0) > 0 || r["memory"].is_null(), "{r}");
    }
    // status agrees with systemctl on the main PID.
    let mainpid = c.ok("systemctl show -p MainPID --value redis@6382.service");
    let row = rows.iter().find(|r| r["unit"] == "redis@6382.service").unwrap();
    assert_eq!(row["main_pid"].to_string(), mainpid.trim());

    let before = pids(&c);
    let again = c.hhlctl(CFG, "apply");
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.stdout.trim(), "nothing to do: 16 instances up to date");
    assert_eq!(pids(&c), before, "the second apply restarted something");

    // An edit of hhl.yaml that changes no generated file (a comment) leaves every unit
    // as systemd loaded it: no NeedDaemonReload ("unit file changed on disk").
    c.write(CFG, &format!("# a comment\n{}", example_yaml()));
    let again = c.hhlctl(CFG, "apply");
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.stdout.trim(), "nothing to do: 16 instances up to date");
    let flagged =
        c.ok("systemctl show -p Id,NeedDaemonReload 'openresty@*' 'redis@*' | grep -B1 NeedDaemonReload=yes || true");
    assert_eq!(flagged.trim(), "", "units flagged after a no-op edit of hhl.yaml");
    assert_eq!(pids(&c), before, "a no-op edit restarted something");

    // Type=forking: systemd knows the master without a PID file (that would be on a
    // file system the instance can fill), and a master started by systemd daemonized
    // (its parent is systemd, not the process ExecStart ran).
    let unit = "openresty@socketserver-dev1.service";
    assert_eq!(
        c.ok(&format!("systemctl show -p Type --value {unit}")).trim(),
        "forking"
    );
    let pid = c.main_pid(unit);
    assert!(
        c.ok(&format!("ps -o args= -p {pid}")).contains("nginx: master process"),
        "MainPID {pid} is not the nginx master"
    );
    assert_eq!(c.ok("ls -A /opt/hhl/socketserver/dev1/logs").trim(), "", "on the disk");
    assert_eq!(c.ok(&format!("ps -o ppid= -p {pid}")).trim(), "1");
    assert_eq!(
        c.ok(&format!("ps -o comm= --ppid {pid} | sort -u")).trim(),
        "nginx",
        "workers are the master's children"
    );

    // Every unit and drop-in passes systemd-analyze verify (the man page it names comes with the .deb).
    let verify = c.sh(
        "systemd-analyze verify --man=no /usr/lib/systemd/system/openresty@.service /usr/lib/systemd/system/redis@.service \
         /usr/lib/systemd/system/hhl.target /usr/lib/systemd/system/hhl.slice \
         openresty@socketserver-dev1.service redis@6381.service hhl-dev1.slice 2>&1",
    );
    assert_eq!((verify.code, verify.stdout.as_str()), (0, ""), "systemd-analyze verify");
}

#[test]
fn systemd_restarts_a_killed_nginx_master() {
    let c = applied(&example_yaml());
    let unit = "openresty@socketserver-dev2.service";
    let pid = c.ok(&format!("systemctl show -p MainPID --value {unit}"));
    c.ok(&format!("kill -9 {}", pid.trim()));
    // Restart=on-failure, RestartSec=1s: bounded wait of 15 s.
    let restarted = c.sh(&format!(
        "for i in $(seq 150); do p=$(systemctl show -p MainPID --value {unit}); \
         if [ \"$p\" != 0 ] && [ \"$p\" != {pid} ] && curl -sf -m 1 http://127.0.0.1:1082/hhl >/dev/null; then echo ok; exit 0; fi; sleep 0.1; done; exit 1",
        pid = pid.trim()
    ));
    assert_eq!(
        restarted.stdout.trim(),
        "ok",
        "not restarted: {}",
        c.sh(&format!("systemctl status {unit}")).stdout
    );
    assert_eq!(c.ok(&format!("systemctl show -p NRestarts --value {unit}")).trim(), "1");
    let json: serde_json::Value =
        serde_json::from_str(&c.hhlctl(CFG, "status --json socketserver-dev2").stdout).unwrap();
    assert_eq!(json[0]["restarts"], 1);
}

#[test]
fn changes_touch_only_what_changed() {
    let c = applied(&example_yaml());
    let before = pids(&c);

    // dev1's socketserver moves to another port: only it is reloaded (same master PID).
    c.write(CFG, &example_yaml().replace("dev1: {port: 1081}", "dev1: {port: 1181}"));
    let r = c.hhlctl(CFG, "apply");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("reloaded openresty@socketserver-dev1.service"),
        "{}",
        r.stdout
    );
    assert_eq!(
        r.stdout.matches("reloaded ").count()
            + r.stdout.matches("restarted ").count()
            + r.stdout.matches("started ").count(),
        1,
        "{}",
        r.stdout
    );
    let after = pids(&c);
    assert_eq!(after, before, "a reload keeps every main PID");
    c.ok("for i in $(seq 50); do curl -sf -m 1 http://127.0.0.1:1181/hhl && exit 0; sleep 0.1; done; exit 1");

    // dev2's Redis moves: its old unit is stopped and the new one started.
    c.write(
        CFG,
        &example_yaml()
            .replace("dev1: {port: 1081}", "dev1: {port: 1181}")
            .replace("dev2: {port: 6382}", "dev2: {port: 6392}"),
    );
    let r = c.hhlctl(CFG, "apply");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("stopped redis@6382.service"), "{}", r.stdout);
    assert!(r.stdout.contains("started redis@6392.service"), "{}", r.stdout);
    assert_eq!(c.ping(6392), "PONG");
    assert_ne!(c.ping(6382), "PONG");
    let now = pids(&c);
    for (unit, p) in &before {
        if unit != "redis@6382.service" {
            assert_eq!(now.get(unit), Some(p), "{unit} was touched");
        }
    }

    // dev4 leaves: their units are stopped, disabled, and their files removed.
    let without_dev4: String = example_yaml()
        .replace("developers: [dev1, dev2, dev3, dev4]", "developers: [dev1, dev2, dev3]")
        .lines()
        .filter(|l| !l.trim_start().starts_with("dev4:"))
        .map(|l| format!("{l}\n"))
        .collect();
    c.write(CFG, &without_dev4);
    let r = c.hhlctl(CFG, "apply");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    for unit in [
        "openresty@socketserver-dev4.service",
        "openresty@dtserver-dev4.service",
        "redis@6384.service",
    ] {
        assert!(r.stdout.contains(&format!("stopped {unit}")), "{}", r.stdout);
        assert_eq!(c.sh(&format!("systemctl is-active {unit}")).stdout.trim(), "inactive");
        assert!(
            c.sh(&format!("test -e /etc/systemd/system/{unit}.d/50-hhl.conf")).code != 0,
            "{unit}: drop-in left"
        );
        assert!(
            c.sh(&format!("test -L /etc/systemd/system/hhl.target.wants/{unit}"))
                .code
                != 0,
            "{unit}: still enabled"
        );
    }
    assert_eq!(
        c.ok("systemctl list-units --no-legend --plain --state=active 'openresty@*' 'redis@*' | wc -l")
            .trim(),
        "13"
    );
}

#[test]
fn a_config_that_fails_nginx_t_is_refused_and_nothing_changes() {
    let c = applied(&example_yaml());
    let before = pids(&c);
    let tree = "cd / && find opt/hhl opt/redis etc/systemd/system var/lib/hhl -type f | sort | xargs md5sum && \
                find opt/hhl opt/redis etc/systemd/system var/lib/hhl -type l -printf '%p -> %l\\n' | sort";
    let files = c.ok(tree);

    // A value nginx rejects, for one instance and for all dtserver instances.
    c.write(
        CFG,
        &example_yaml()
            .replace("dev3: {port: 1083}", "dev3: {port: 1083, worker_processes: lots}")
            .replace("dev2: {port: 1092}", "dev2: {port: 1095}")
            .replace("port: 1090\n        worker_processes: 1\n        worker_connections: 16384\n        error_log_level: info", "port: 1090\n        worker_processes: 1\n        worker_connections: 16384\n        error_log_level: shouting"),
    );
    let r = c.hhlctl(CFG, "apply");
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("error: openresty@socketserver-dev3.service: nginx -t refused the rendered /opt/hhl/socketserver/dev3/conf/nginx.conf:"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("\"worker_processes\" directive invalid value in /opt/hhl/socketserver/dev3/conf/nginx.conf:"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("invalid log level \"shouting\""), "{}", r.stderr);
    assert!(
        r.stderr.contains("openresty@dtserver-master.service: nginx -t refused"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("6 config(s) failed nginx -t; nothing was written and no instance was touched."),
        "{}",
        r.stderr
    );
    assert_eq!(c.ok(tree), files, "files changed despite the refusal");
    assert_eq!(pids(&c), before, "a unit was touched despite the refusal");
    assert_eq!(c.get_hhl(1083), "hhl socketserver-dev3 ok\n");
    assert_eq!(c.get_hhl(1092), "hhl dtserver-dev2 ok\n");
}

#[test]
fn start_stop_restart_reload_and_logs() {
    let c = applied(&example_yaml());
    let r = c.hhlctl(CFG, "stop socketserver-dev1");
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "stopped openresty@socketserver-dev1.service\n"),
        "{}",
        r.stderr
    );
    assert_eq!(
        c.sh("systemctl is-active openresty@socketserver-dev1.service")
            .stdout
            .trim(),
        "inactive"
    );
    let s = c.hhlctl(CFG, "status --dev dev1");
    assert_eq!(s.code, 1, "status must fail when an instance is down");
    assert!(
        s.stdout
            .contains("socketserver-dev1  dev1       socketserver  1081  inactive/dead"),
        "{}",
        s.stdout
    );
    assert!(s.stdout.contains("1 of 3 instances unhealthy"), "{}", s.stdout);

    let r = c.hhlctl(CFG, "start socketserver-dev1");
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "started openresty@socketserver-dev1.service\n"),
        "{}",
        r.stderr
    );
    assert_eq!(c.hhlctl(CFG, "status --dev dev1").code, 0);

    let r = c.hhlctl(CFG, "restart --dev dev2");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.lines().count(), 3, "{}", r.stdout);
    assert!(r.stdout.contains("restarted redis@6382.service"), "{}", r.stdout);

    // A unit that crashed into its start limit starts again when root asks, as it does
    // over ssh and from the console: every restart clears the limit first.
    c.ok("mkdir -p /run/systemd/system/openresty@socketserver-dev2.service.d && \
          printf '[Unit]\\nStartLimitIntervalSec=600\\nStartLimitBurst=2\\n' \
            > /run/systemd/system/openresty@socketserver-dev2.service.d/limit.conf && \
          systemctl daemon-reload");
    // Bounded: at most 10 tries to reach the limit (2 starts in 600 s).
    c.ok("u=openresty@socketserver-dev2.service; \
          for i in $(seq 10); do systemctl restart $u 2>/dev/null || break; done; \
          r=$(systemctl show -p Result --value $u); \
          [ \"$r\" = start-limit-hit ] || { echo \"after $i restarts: Result=$r\"; \
            systemctl status --no-pager $u; journalctl -q --no-pager -u $u | tail -40; exit 1; }");
    let r = c.hhlctl(CFG, "restart socketserver-dev2");
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "restarted openresty@socketserver-dev2.service\n"),
        "a restart past the start limit:\n{}",
        r.stderr
    );
    assert_eq!(c.get_hhl(1082), "hhl socketserver-dev2 ok\n");
    c.ok("rm -r /run/systemd/system/openresty@socketserver-dev2.service.d && systemctl daemon-reload");

    let r = c.hhlctl(CFG, "reload --server dtserver");
    assert_eq!((r.code, r.stdout.lines().count()), (0, 5), "{}\n{}", r.stdout, r.stderr);

    let r = c.hhlctl(CFG, "reload 6381");
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("error: redis@6381.service cannot reload (Redis re-reads its config only on restart); use `hhlctl restart 6381`"), "{}", r.stderr);

    let r = c.hhlctl(CFG, "restart nosuchthing");
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("error: no instance `nosuchthing` in hhl.yaml"),
        "{}",
        r.stderr
    );
    assert_eq!(c.hhlctl(CFG, "restart").code, 1);

    // A broken config on disk: the reload fails visibly and the running master keeps
    // the old config; a restart fails and shows the unit's journal.
    c.ok("echo 'this is not nginx;' >> /opt/hhl/dtserver/dev4/conf/nginx.conf");
    let pid = c.main_pid("openresty@dtserver-dev4.service");
    let r = c.hhlctl(CFG, "reload dtserver-dev4");
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stderr
            .contains("error: reloading openresty@dtserver-dev4.service failed"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("unknown directive \"this\""), "{}", r.stderr);
    assert_eq!(c.main_pid("openresty@dtserver-dev4.service"), pid);
    assert_eq!(c.get_hhl(1094), "hhl dtserver-dev4 ok\n");
    let r = c.hhlctl(CFG, "restart dtserver-dev4");
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stderr
            .contains("error: restarting openresty@dtserver-dev4.service failed (systemd job: failed; unit now: "),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("last lines of its journal"), "{}", r.stderr);
    assert!(r.stderr.contains("unknown directive \"this\""), "{}", r.stderr);

    // logs: the instance's own journal under its own identifier.
    c.ok("curl -s http://127.0.0.1:1081/nothing-here >/dev/null");
    // journald stores the line a moment after nginx wrote it: wait for it, bounded.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let logs = loop {
        let logs = c.hhlctl(CFG, "logs socketserver-dev1 -n 20");
        if logs.stdout.contains("/nothing-here") || std::time::Instant::now() > deadline {
            break logs;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(logs.code, 0, "{}", logs.stderr);
    assert!(logs.stdout.contains("socketserver-dev1["), "{}", logs.stdout);
    assert!(logs.stdout.contains("/nothing-here"), "{}", logs.stdout);
}

#[test]
fn hundreds_of_jobs_at_once() {
    // More jobs than the system bus allows pending replies per connection (128): apply
    // and restart --all must pipeline within that limit and still see every job end.
    let yaml = std::process::Command::new("bash")
        .arg(repo().join("benches/gen-config.sh"))
        .arg("40")
        .output()
        .unwrap();
    let yaml = String::from_utf8(yaml.stdout).unwrap();
    let c = Container::boot();
    c.write(CFG, &yaml);
    let r = c.hhlctl(CFG, "apply");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let started = r.stdout.lines().filter(|l| l.starts_with("started ")).count();
    assert_eq!(started, 164 + 1, "{}", r.stdout); // + hhl.target
    let r = c.hhlctl(CFG, "restart --all");
    assert_eq!((r.code, r.stdout.lines().count()), (0, 164), "{}", r.stderr);
    assert_eq!(c.hhlctl(CFG, "status").code, 0);
}

#[test]
fn a_template_that_keeps_nginx_in_the_foreground_is_refused() {
    // The unit runs nginx Type=forking (`-g "daemon on;"`): a template's own
    // `daemon off;` would hang the start job, so apply's nginx -t refuses it.
    let c = Container::boot();
    c.ok(&format!(
        "mkdir -p /etc/hhl/templates && sed 's/^{{{{> hhl_main}}}}$/&\\ndaemon off;/' {} > /etc/hhl/templates/ss.hbs",
        repo().join("templates/socketserver.conf.hbs").display()
    ));
    c.write(
        CFG,
        &example_yaml().replace("template: builtin:socketserver", "template: templates/ss.hbs"),
    );
    let r = c.hhlctl(CFG, "apply");
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("openresty@socketserver-dev1.service: nginx -t refused the rendered"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("\"daemon\" directive is duplicate"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("5 config(s) failed nginx -t; nothing was written and no instance was touched."),
        "{}",
        r.stderr
    );
}

/// What an apply may change on the host: unix users and groups, and every path (with
/// the content of every file) under the trees it writes. The apply lock
/// (`/var/lib/hhl/.lock`, and its directory) is left out: it is made before anything
/// is read, so that two applies never interleave.
const HOST_STATE: &str = "getent passwd | sort; getent group | sort; cd / && \
    find etc/hhl opt/hhl opt/redis var/lib/hhl etc/systemd/system etc/polkit-1/rules.d etc/rsyslog.d srv \
         -xdev 2>/dev/null | grep -vx 'var/lib/hhl\\|var/lib/hhl/.lock' | sort; \
    find etc/hhl opt/hhl opt/redis var/lib/hhl etc/systemd/system -xdev -type f 2>/dev/null \
         | grep -vx var/lib/hhl/.lock | sort | xargs -r md5sum";

#[test]
fn a_refused_apply_writes_nothing() {
    // A fresh host: no instance user exists yet. Each refusal below used to come after
    // apply had made the users, the Redis secrets and the log page's key.
    let c = Container::boot();
    let broken_template = || {
        c.ok(&format!(
            "mkdir -p /etc/hhl/templates && sed 's/^{{{{> hhl_main}}}}$/&\\ndaemon off;/' {} > /etc/hhl/templates/ss.hbs",
            repo().join("templates/socketserver.conf.hbs").display()
        ));
    };
    broken_template();
    let broken = example_yaml().replace("template: builtin:socketserver", "template: templates/ss.hbs");
    c.write(CFG, &broken);
    let fresh = c.ok(HOST_STATE);
    assert!(!fresh.contains("hhl-dev1"), "{fresh}");

    // 1. A config nginx -t refuses, of users not made yet: tested in a scratch copy,
    //    reported with the live paths.
    let r = c.hhlctl(CFG, "apply");
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(
            "openresty@socketserver-dev1.service: nginx -t refused the rendered /opt/hhl/socketserver/dev1/conf/nginx.conf:"
        ),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("\"daemon\" directive is duplicate"), "{}", r.stderr);
    assert!(
        !r.stderr.contains("/tmp/"),
        "a scratch path in the report: {}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("5 config(s) failed nginx -t; nothing was written and no instance was touched."),
        "{}",
        r.stderr
    );
    assert!(!r.stdout.contains("created unix user"), "{}", r.stdout);
    assert_eq!(c.ok(HOST_STATE), fresh, "the refused apply changed the host");

    // 2. A developer's user that is a system account of this host (one that hhlctl did
    //    not make).
    let uid = c.ok("useradd --system --no-create-home squatter && id -u squatter");
    let yaml = example_yaml().replace("map: {}", "map: {dev2: squatter}");
    assert_ne!(yaml, example_yaml());
    c.write(CFG, &yaml);
    let state = c.ok(HOST_STATE);
    let r = c.hhlctl(CFG, "apply");
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "unix user `squatter` of `dev2` is a system account (uid {}) on this host",
            uid.trim()
        )),
        "{}",
        r.stderr
    );
    assert_eq!(r.stdout, "");
    assert_eq!(c.ok(HOST_STATE), state, "the refused apply changed the host");

    // 3. A port another process listens on.
    c.write(CFG, &example_yaml());
    c.ok("systemd-run --unit=squatter python3 -m http.server --bind 127.0.0.1 1082");
    c.ok("for i in $(seq 100); do ss -Hltn 'sport = :1082' | grep -q . && exit 0; sleep 0.05; done; exit 1");
    let state = c.ok(HOST_STATE);
    let r = c.hhlctl(CFG, "apply");
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("port 1082 of openresty@socketserver-dev2.service is already in use by pid"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stdout, "");
    assert_eq!(c.ok(HOST_STATE), state, "the refused apply changed the host");
    c.ok("systemctl stop squatter.service");

    // Applied, then 4. a refused change on a running host (users exist: tested in
    //    place, as each instance's user): nothing changes, nothing restarts.
    let r = c.hhlctl(CFG, "apply");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("created unix user hhl-dev1"), "{}", r.stdout);
    let before = pids(&c);
    c.write(CFG, &broken);
    let state = c.ok(HOST_STATE);
    let r = c.hhlctl(CFG, "apply");
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("5 config(s) failed nginx -t; nothing was written and no instance was touched."),
        "{}",
        r.stderr
    );
    assert_eq!(c.ok(HOST_STATE), state, "the refused apply changed the host");
    assert_eq!(pids(&c), before, "a unit was touched despite the refusal");
}
