//! An apply killed at any step is finished by the next one. In a real systemd (an
//! ephemeral container of this machine's root), with real rsyslog: `HHL_FAULT=<step>`
//! makes hhlctl SIGKILL itself at that step (the test hook in `src/host/fault.rs`), and the
//! next plain apply must leave every change live, no leftovers, and say `nothing to do`
//! only after that. Also: a damaged generated.list, a stuck systemd (one deadline for
//! a batch of units), a hung `nginx -t` (killed at its deadline), and `repo init`
//! killed midway.

mod support;

use std::time::{Duration, Instant};

use support::container::{Container, CFG};
use support::example_yaml;

/// The apply steps a run can be killed at (`src/host/fault.rs`), in order.
fn apply_steps() -> Vec<&'static str> {
    hhlctl::host::fault::STEPS
        .iter()
        .copied()
        .filter(|s| s.starts_with("apply:"))
        .collect()
}

/// The example, changed in every way that needs systemd to act: dev1's socketserver
/// port (nginx reload), dev2's Redis databases (restart), dev1's slice tasks limit
/// (daemon-reload) and a new developer dev5 (users, units, an rsyslog rule: restart).
fn changed() -> String {
    example_yaml()
        .replace(
            "developers: [dev1, dev2, dev3, dev4]",
            "developers: [dev1, dev2, dev3, dev4, dev5]",
        )
        .replace("dev1: {port: 1081}", "dev1: {port: 1181}\n      dev5: {port: 1085}")
        .replace("dev4: {port: 1094}", "dev4: {port: 1094}\n      dev5: {port: 1095}")
        .replace("dev2: {port: 6382}", "dev2: {port: 6382, databases: 32}")
        .replace("dev4: {port: 6384}", "dev4: {port: 6384}\n    dev5: {port: 6385}")
        .replace("dev1: {cpu: 150%}", "dev1: {cpu: 150%, tasks: 256}")
}

/// Run hhlctl with `HHL_FAULT=step`; it must die by SIGKILL.
fn killed_at(c: &Container, step: &str, args: &str) {
    let r = c.sh(&format!(
        "HHL_FAULT={step} hhlctl -c {CFG} {args} >/tmp/killed.out 2>&1; echo \"exit=$?\""
    ));
    assert_eq!(
        r.stdout.trim(),
        "exit=137",
        "`hhlctl {args}` was not killed at {step}:\n{}",
        c.sh("cat /tmp/killed.out").stdout
    );
}

/// Wait (bounded) for `script` to succeed inside.
#[track_caller]
fn wait_until(c: &Container, what: &str, script: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = c.sh(script);
        if r.code == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not so after 15 s: {}{}",
            r.stdout,
            r.stderr
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn port_answers(c: &Container, port: u16) -> bool {
    c.sh(&format!("curl -s -o /dev/null -m 2 http://127.0.0.1:{port}/hhl"))
        .code
        == 0
}

/// The running system is `changed()` (when `on`) or the example (when not).
fn check_live(c: &Container, on: bool, step: &str) {
    let ctx = format!(
        "after a run killed at {step}, then a plain apply (target: {})",
        if on { "changed" } else { "example" }
    );
    // nginx re-read its config: the new port answers at once (apply waited for it); the
    // old one closes once the old workers finished their graceful exit.
    let (new, old) = if on { (1181, 1081) } else { (1081, 1181) };
    assert!(port_answers(c, new), "{ctx}: port {new} does not answer");
    wait_until(
        c,
        &format!("{ctx}: port {old} closed"),
        &format!("! curl -s -o /dev/null -m 2 http://127.0.0.1:{old}/hhl"),
    );
    // Redis was restarted with its new config.
    // (CONFIG is refused to clients: database 31 exists only with 32 databases.)
    let db31 = c.ok(&support::redis_cli(6382, "-n 31 dbsize"));
    if on {
        assert_eq!(db31.trim(), "0", "{ctx}: redis 6382 databases");
    } else {
        assert!(db31.contains("out of range"), "{ctx}: redis 6382 databases: {db31}");
    }
    // systemd re-read the slice, and the kernel holds the limit.
    let tasks = c.ok("systemctl show -p TasksMax --value hhl-dev1.slice");
    assert_eq!(tasks.trim(), if on { "256" } else { "512" }, "{ctx}: TasksMax");
    let cg = c.ok("systemctl show -p ControlGroup --value hhl-dev1.slice");
    wait_until(
        c,
        &format!("{ctx}: pids.max of hhl-dev1.slice"),
        &format!(
            "m=$(cat /sys/fs/cgroup/pids{cg}/pids.max 2>/dev/null || cat /sys/fs/cgroup{cg}/pids.max); test \"$m\" = {want}",
            cg = cg.trim(),
            want = if on { "256" } else { "512" }
        ),
    );
    for unit in ["openresty@socketserver-dev5.service", "redis@6385.service"] {
        let state = c.sh(&format!("systemctl is-active {unit}")).stdout;
        assert_eq!(state.trim(), if on { "active" } else { "inactive" }, "{ctx}: {unit}");
    }
    if on {
        // rsyslog took up the new developer's rule: their lines reach their file
        // (lines of dev5's unit: a tag alone routes nothing).
        let mark = step.replace(':', "-");
        c.write(
            "/opt/hhl/socketserver/dev5/src/main.lua",
            &format!("ngx.log(ngx.ERR, 'converge-{mark}')\nngx.say('ok')\n"),
        );
        c.ok("curl -s -m 5 http://127.0.0.1:1085/hhl");
        wait_until(
            c,
            &format!("{ctx}: dev5's line in /var/log/hhl/dev5/socketserver-dev5.log"),
            &format!("grep -q converge-{mark} /var/log/hhl/dev5/socketserver-dev5.log"),
        );
        assert!(
            c.sh(&format!("grep -q converge-{mark} /var/log/syslog")).code != 0,
            "{ctx}: dev5's line reached the shared syslog"
        );
    } else {
        assert!(
            c.sh("test -e /etc/systemd/system/redis@6385.service.d/50-hhl.conf")
                .code
                != 0,
            "{ctx}: dev5's drop-in left"
        );
    }
    // Nothing of the killed run is left, and nothing is owed.
    let left = c.ok(
        "find /etc/systemd/system /opt/hhl /opt/redis /var/lib/hhl /etc/rsyslog.d /etc/polkit-1 \
         -name '*.hhl-tmp.*' -o -name apply.pending",
    );
    assert_eq!(left, "", "{ctx}: leftovers");
    // Only now is there nothing to do.
    let again = c.hhlctl(CFG, "apply");
    let n = if on { 19 } else { 16 };
    assert_eq!(
        (again.code, again.stdout.trim(), again.stderr.as_str()),
        (0, format!("nothing to do: {n} instances up to date").as_str(), ""),
        "{ctx}: a further apply"
    );
    assert_eq!(c.hhlctl(CFG, "status").code, 0, "{ctx}: status");
}

#[test]
fn an_apply_killed_at_any_step_is_finished_by_the_next() {
    let c = Container::applied(&example_yaml());
    c.start_rsyslog();
    let steps = apply_steps();
    for step in steps.iter().copied() {
        for (yaml, on) in [(changed(), true), (example_yaml(), false)] {
            c.write(CFG, &yaml);
            killed_at(&c, step, "apply");
            if step == "apply:temp-written" {
                let temps = c.ok("find /etc/systemd/system /opt/hhl /opt/redis /etc/rsyslog.d /etc/polkit-1 -name '*.hhl-tmp.*' | wc -l");
                assert_eq!(temps.trim(), "1", "the killed run left no temp file");
            }
            let r = c.hhlctl(CFG, "apply");
            assert_eq!(r.code, 0, "apply after a kill at {step}:\n{}\n{}", r.stdout, r.stderr);
            if step == "apply:temp-written" {
                assert!(
                    r.stdout.contains("cleared 1 leftover(s) of an interrupted run"),
                    "{}",
                    r.stdout
                );
            }
            // From the intent record on, the next run says what it finishes.
            let owes = steps.iter().position(|s| *s == step) >= steps.iter().position(|s| *s == "apply:intent");
            assert_eq!(
                r.stdout.contains("finishing an interrupted run: "),
                owes,
                "after a kill at {step}:\n{}",
                r.stdout
            );
            check_live(&c, on, step);
        }
    }
}

#[test]
fn a_damaged_generated_list_is_reported_by_line_and_never_removes_other_files() {
    let c = Container::applied(&example_yaml());
    c.ok("echo keep > /etc/canary.conf && mkdir -p /opt/redis/etc/6399.conf && echo keep > /opt/redis/etc/6399.conf/x");
    let lines_before = c.ok("wc -l < /var/lib/hhl/generated.list");
    let first_bad = lines_before.trim().parse::<usize>().unwrap() + 1;
    c.ok("printf '%s\\n' garbage etc/relative.conf /etc/canary.conf /opt/redis/etc/6399.conf /opt/hhl/../../etc/canary.conf >> /var/lib/hhl/generated.list");
    let r = c.hhlctl(CFG, "apply");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let list = "/var/lib/hhl/generated.list";
    let tail = "; ignored, and dropped from the list by the next apply";
    let expect = [
        format!("warning: {list}:{}: `garbage` is not an absolute path{tail}", first_bad),
        format!("warning: {list}:{}: `etc/relative.conf` is not an absolute path{tail}", first_bad + 1),
        format!("warning: {list}:{}: /etc/canary.conf is not a file hhlctl generates under the paths in hhl.yaml (if it is a leftover of an older layout, delete it by hand){tail}", first_bad + 2),
        format!("warning: {list}:{}: /opt/redis/etc/6399.conf is a directory, and hhlctl never removes directories{tail}", first_bad + 3),
        format!("warning: {list}:{}: /opt/hhl/../../etc/canary.conf is not a file hhlctl generates under the paths in hhl.yaml (if it is a leftover of an older layout, delete it by hand){tail}", first_bad + 4),
    ];
    assert_eq!(r.stderr.lines().collect::<Vec<_>>(), expect, "{}", r.stderr);
    assert_eq!(r.stdout.trim(), "nothing to do: 16 instances up to date");
    c.ok("test -f /etc/canary.conf && test -f /opt/redis/etc/6399.conf/x");
    // The list was rewritten without them: the next apply is quiet.
    let again = c.hhlctl(CFG, "apply");
    assert_eq!((again.code, again.stderr.as_str()), (0, ""), "{}", again.stdout);
    assert_eq!(c.ok("wc -l < /var/lib/hhl/generated.list"), lines_before);

    // A damaged intent record is an error naming its line, and changes nothing.
    c.ok("printf 'daemon-reload\\nstop everything\\n' > /var/lib/hhl/apply.pending");
    let r = c.hhlctl(CFG, "apply");
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stderr.starts_with(
            "error: /var/lib/hhl/apply.pending:2: `stop everything` is not a job hhlctl records\n  hint: hhlctl writes this file itself"
        ),
        "{}",
        r.stderr
    );
}

#[test]
fn a_stuck_systemd_is_reported_not_waited_for() {
    let c = Container::applied(&example_yaml());
    // SIGSTOP to the container's systemd, from outside its PID namespace: the bus
    // still takes calls, systemd answers none.
    let stop = std::process::Command::new("kill")
        .args(["-STOP", &c.leader.to_string()])
        .status()
        .unwrap();
    assert!(stop.success());
    let t = Instant::now();
    let r = c.sh(&format!(
        "HHL_DBUS_TIMEOUT=2 timeout 60 hhlctl -c {CFG} restart socketserver-dev1"
    ));
    let took = t.elapsed();
    // Every unit's reset-failed in one batch under one deadline: 16 units cost one
    // 2 s wait, not 16 (they were serial calls, each up to the call timeout).
    let t = Instant::now();
    let all = c.sh(&format!("HHL_DBUS_TIMEOUT=2 timeout 60 hhlctl -c {CFG} restart --all"));
    let all_took = t.elapsed();
    // status as root talks to systemd's private socket: bounded there too, and not
    // waited for again on the bus.
    let t = Instant::now();
    let s = c.sh(&format!("HHL_DBUS_TIMEOUT=2 timeout 60 hhlctl -c {CFG} status"));
    let status_took = t.elapsed();
    let cont = std::process::Command::new("kill")
        .args(["-CONT", &c.leader.to_string()])
        .status()
        .unwrap();
    assert!(cont.success());
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(
            "asking systemd to reset-failed the units before starting them: no answer to ResetFailedUnit openresty@socketserver-dev1.service within 2.0 s: systemd (or the bus) is stuck or overloaded"
        ),
        "{}",
        r.stderr
    );
    assert!(took < Duration::from_secs(30), "took {took:?}");
    assert_eq!(all.code, 1, "{}\n{}", all.stdout, all.stderr);
    assert!(
        all.stderr.contains(
            "asking systemd to reset-failed the units before starting them: no answer to ResetFailedUnit of 16 units ("
        ) && all
            .stderr
            .contains("within 2.0 s: systemd (or the bus) is stuck or overloaded"),
        "{}",
        all.stderr
    );
    // Connecting (2 s at most) and the batch (2 s): well under 16 × 2 s.
    assert!(all_took < Duration::from_secs(10), "restart --all took {all_took:?}");
    assert_eq!(s.code, 1, "{}\n{}", s.stdout, s.stderr);
    assert!(
        s.stderr
            .contains("no answer from systemd within 2.0 s: systemd is stuck or overloaded"),
        "{}",
        s.stderr
    );
    assert!(status_took < Duration::from_secs(10), "status took {status_took:?}");
    // Once systemd runs again, so does hhlctl.
    let r = c.hhlctl(CFG, "restart socketserver-dev1");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(c.hhlctl(CFG, "status socketserver-dev1").code, 0);
}

#[test]
fn repo_init_killed_midway_is_finished_by_the_next() {
    let c = Container::applied(&example_yaml());
    killed_at(&c, "repo:created", "repo init");
    // It died after making the first repository, before its hooks.
    c.ok("test -f /srv/git/socketserver.git/HEAD");
    let r = c.hhlctl(CFG, "repo init");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("seeded /srv/git/serverctrl.git with hhl.yaml"),
        "{}",
        r.stdout
    );
    for repo in ["socketserver", "dtserver", "httpserver", "serverctrl", "lualib"] {
        c.ok(&format!(
            "test -x /srv/git/{repo}.git/hooks/pre-receive && test -x /srv/git/{repo}.git/hooks/post-receive"
        ));
    }
    c.ok("git --git-dir=/srv/git/serverctrl.git rev-parse --verify -q refs/heads/master");
}

#[test]
fn render_clears_the_staging_trees_of_killed_renders() {
    let sb = support::Sandbox::new();
    sb.write("hhl.yaml", &example_yaml());
    // A dead writer's tree (no PID is that high) goes; a live one's (ours) stays.
    let dead = sb.write(".hhl-render.4194999/etc/x.conf", "half\n");
    let live = sb.write(&format!(".hhl-render.{}/etc/x.conf", std::process::id()), "busy\n");
    let r = sb.run(&["render", "--out", "out"]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""), "{}", r.stdout);
    assert!(
        !dead.parent().unwrap().parent().unwrap().exists(),
        "a killed render's tree is left"
    );
    assert!(live.exists(), "a running render's tree was removed");
    assert!(sb.path().join("out/opt/redis/etc/6381.conf").is_file());
}

/// An apply killed (SIGKILL) while it writes a secret leaves a temp copy of it; the
/// next apply removes every such copy in the secrets' directories (the owners'
/// secrets and Redis ACLs, the entry account's copies), even one named after a pid
/// that runs now (a pid reused since the kill), and the secrets still open Redis.
#[test]
fn an_apply_killed_while_writing_a_secret_leaves_no_copy() {
    let c = Container::applied(&example_yaml());
    let copies = "find /var/lib/hhl/redis -name '*.hhl-tmp.*' | sort";
    killed_at(&c, "secrets:temp-written", "apply");
    let left = c.ok(copies);
    assert_eq!(left.lines().count(), 1, "the killed run left no temp copy: {left}");
    assert!(
        left.starts_with("/var/lib/hhl/redis/.") && left.contains(".secret.hhl-tmp."),
        "{left}"
    );
    // What older runs left beside an ACL and an entry-account copy, under pid 1
    // (which runs, as a reused pid would).
    c.ok("cd /var/lib/hhl/redis && cp dev2.secret entry/.dev2.secret.hhl-tmp.1 && cp 6382.acl .6382.acl.hhl-tmp.1");
    assert_eq!(c.ok(copies).lines().count(), 3);
    let r = c.hhlctl(CFG, "apply");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("cleared 3 leftover(s) of an interrupted run"),
        "{}",
        r.stdout
    );
    assert_eq!(c.ok(copies), "", "secret copies left after the next apply");
    let secret = c.ok("cat /var/lib/hhl/redis/dev2.secret");
    assert_eq!(
        c.ok(&format!(
            "redis-cli --no-auth-warning -p 6382 -a {} ping",
            secret.trim()
        ))
        .trim(),
        "PONG"
    );
}

#[test]
fn a_hung_nginx_test_is_killed_at_its_deadline_and_nothing_moves() {
    let c = Container::applied(&example_yaml());
    // An nginx whose config test hangs (as an `init_by_lua` that waits on the network
    // would); everything else it does is the real one's.
    c.ok(
        "mv /usr/sbin/nginx /usr/sbin/nginx.real && \
         printf '#!/bin/sh\\ncase \" $* \" in *\" -t \"*) exec sleep 600;; esac\\nexec /usr/sbin/nginx.real \"$@\"\\n' > /usr/sbin/nginx && \
         chmod 755 /usr/sbin/nginx",
    );
    let sums = || c.ok("find /opt/hhl /etc/systemd/system -type f | sort | xargs md5sum");
    let before = sums();
    c.write(CFG, &example_yaml().replace("dev1: {port: 1081}", "dev1: {port: 1181}"));
    let t = Instant::now();
    let r = c.sh(&format!("HHL_CHILD_TIMEOUT=3 timeout 60 hhlctl -c {CFG} apply"));
    let took = t.elapsed();
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(
            "testing openresty@socketserver-dev1.service's config: `/usr/sbin/nginx -t -q -e stderr -p /opt/hhl/socketserver/dev1/"
        ) && r.stderr.contains(
            "did not finish within 3.0 s, so hhlctl killed it (and every process it started)\n  hint: the config's `init_by_lua*` code"
        ),
        "{}",
        r.stderr
    );
    // The deadline (3 s) and SIGTERM's effect, not 600 s.
    assert!(took < Duration::from_secs(20), "apply took {took:?}");
    // The hung test and its sleep are gone; nothing was written.
    assert_eq!(c.sh("pgrep -x sleep").code, 1, "{}", c.sh("ps -ef").stdout);
    assert_eq!(sums(), before, "an apply whose check hung changed files");
    assert_eq!(c.sh("curl -s -o /dev/null http://127.0.0.1:1181/").code, 7);
    // With a working nginx the same apply goes through.
    c.ok("mv -f /usr/sbin/nginx.real /usr/sbin/nginx");
    let r = c.hhlctl(CFG, "apply");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(c.get_hhl(1181), "hhl socketserver-dev1 ok\n");
}
