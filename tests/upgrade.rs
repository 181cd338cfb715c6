//! The upgrade from the previous release to this one, on clean Debian 12 and 13 hosts
//! (see `support/cleanhost.rs`). The previous release is the commit in
//! `packaging/previous-release`, built once by `scripts/build-previous-deb.sh` (cached
//! under target/), installed by its own README's quickstart, with dev1's code deployed
//! and a key written (never saved) in each Redis. Then `apt-get install` of this
//! package, a Redis restarted and the log page restarted before the next apply, and
//! the steps of docs/ops/upgrading.md. Asserted: nothing stops during the package
//! upgrade, the Redis restarted in between comes back, every key reads back after the
//! first apply, dev1's code is still served and dev1's next push (now through the
//! entry account) deploys.

mod support;

#[path = "support/cleanhost.rs"]
mod cleanhost;

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use cleanhost::Host;
use support::repo;

/// The shipped example's ports, the same in both releases.
const OPENRESTY: [u16; 11] = [1080, 1081, 1082, 1083, 1084, 1090, 1091, 1092, 1093, 1094, 1100];
const REDIS: [u16; 5] = [6379, 6381, 6382, 6383, 6384];
const INSTALL: &str = "cd /root && apt-get install -y -q -o Dpkg::Use-Pty=0";

/// The previous release's package: $HHL_PREVIOUS_DEB, else built (once, cached) by
/// scripts/build-previous-deb.sh.
fn previous_deb() -> PathBuf {
    if let Ok(p) = std::env::var("HHL_PREVIOUS_DEB") {
        return PathBuf::from(p);
    }
    let out = Command::new("bash")
        .arg(repo().join("scripts/build-previous-deb.sh"))
        .output()
        .expect("running scripts/build-previous-deb.sh");
    assert!(
        out.status.success(),
        "scripts/build-previous-deb.sh failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    PathBuf::from(stdout.lines().last().unwrap_or_default().trim())
}

fn this_deb() -> PathBuf {
    PathBuf::from(
        std::env::var("HHL_DEB")
            .expect("HHL_DEB must name the .deb: run `bash scripts/test.sh`, which builds it (scripts/build-deb.sh)"),
    )
}

/// Every OpenResty instance answers HTTP, every Redis PING (`auth`: with the owner's
/// secret, as from this release on; else without, as before).
fn every_instance_answers(h: &Host, auth: bool) {
    for port in OPENRESTY {
        h.assert_http_answers(port);
    }
    for port in REDIS {
        assert_eq!(redis(h, port, "ping", auth), "PONG", "[{}] {port}", h.suite);
    }
}

fn redis(h: &Host, port: u16, args: &str, auth: bool) -> String {
    let cmd = if auth {
        support::redis_cli(port, args)
    } else {
        format!("redis-cli -p {port} {args}")
    };
    h.ok(&cmd).trim().to_string()
}

/// `port` answers `body` on /hhl within 30 s (a unit just restarted may not listen yet).
fn served(h: &Host, port: u16, body: &str) {
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let r = h.curl(&[&format!("http://127.0.0.1:{port}/hhl")]);
        if r.stdout == body {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "[{}] {port} answers {:?}, not {body:?}",
            h.suite,
            r.stdout
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Each instance's main PID, by unit.
fn main_pids(h: &Host) -> Vec<(String, String)> {
    let units =
        h.ok("systemctl list-units --no-legend --plain --state=active 'openresty@*' 'redis@*' | awk '{print $1}'");
    units
        .lines()
        .map(|u| {
            (
                u.to_string(),
                h.ok(&format!("systemctl show -P MainPID {u}")).trim().to_string(),
            )
        })
        .collect()
}

/// The previous release's README quickstart, then dev1's code and the Redis keys.
fn previous_release(h: &Host, deb: &str) {
    let r = h.sh(&format!("{INSTALL} ./{deb} 2>&1"));
    assert_eq!(
        r.code, 0,
        "[{}] apt-get install the previous release:\n{}\n{}",
        h.suite, r.stdout, r.stderr
    );
    // That release depended on redis-server, whose own Redis takes 6379 at install;
    // its apply then failed master's Redis on that port. What its operators did:
    h.ok("systemctl disable --now redis-server.service");
    h.ok("hhlctl plan");
    let r = h.sh("hhlctl apply");
    assert_eq!(
        r.code, 0,
        "[{}] the previous release's apply:\n{}\n{}",
        h.suite, r.stdout, r.stderr
    );
    let r = h.sh("hhlctl status");
    assert_eq!(
        r.code, 0,
        "[{}] the previous release's status:\n{}\n{}",
        h.suite, r.stdout, r.stderr
    );
    h.ok("hhlctl repo init");
    h.ok("printf '%s\\n' 'dev1 long secret' | hhlctl web passwd dev1");
    h.ok("systemctl enable --now hhl-web");
    every_instance_answers(h, false);
    // dev1 deploys as unix user dev1, as that release had developers do.
    let push = h.sh_as(
        "dev1",
        "git config --global user.email dev1@hhl && git config --global user.name dev1 \
         && git clone -q /srv/git/socketserver.git socketserver 2>&1 && cd socketserver \
         && printf 'ngx.say(\"dev1 before the upgrade\")\\n' > main.lua && git add -A && git commit -qm before \
         && git push origin HEAD:dev1 2>&1",
    );
    assert_eq!(
        push.code, 0,
        "[{}] dev1's push on the previous release:\n{}\n{}",
        h.suite, push.stdout, push.stderr
    );
    assert_eq!(
        h.curl(&["http://127.0.0.1:1081/hhl"]).stdout,
        "dev1 before the upgrade\n"
    );
    // One key per Redis, written just before the upgrade: never saved to disk.
    for port in REDIS {
        assert_eq!(redis(h, port, &format!("set upgrade-key kept-{port}"), false), "OK");
    }
}

/// `keep_config`: ops edited hhl.yaml on the previous release and keep their file at
/// the upgrade (dpkg's conffile question, answered "keep"); else the unedited file is
/// replaced by this release's example. The kept file is read with a warning per key
/// that changed; then the package is downgraded again, and every Redis keeps its ACL.
fn upgrade(suite: &str, keep_config: bool) {
    let started = Instant::now();
    let (old, new) = (previous_deb(), this_deb());
    let mut h = Host::prepare_debs(suite, true, &[new, old.clone()]);
    h.boot();
    let old_name = old.file_name().unwrap().to_string_lossy().into_owned();
    previous_release(&h, &old_name);
    if keep_config {
        h.ok("printf '# edited by ops\\n' >> /etc/hhl/hhl.yaml");
    }
    let keep = if keep_config {
        " -o Dpkg::Options::=--force-confold"
    } else {
        ""
    };
    let before = main_pids(&h);
    assert_eq!(before.len(), OPENRESTY.len() + REDIS.len(), "[{suite}] {before:?}");

    // The package upgrade stops and restarts nothing.
    let r = h.sh(&format!("{INSTALL}{keep} ./{} 2>&1", h.deb));
    assert_eq!(
        r.code, 0,
        "[{suite}] apt-get install (upgrade):\n{}\n{}",
        r.stdout, r.stderr
    );
    let version = h.ok("hhlctl --version");
    assert!(
        version.starts_with("hhlctl 0.2.0 (commit ") && !version.contains("unknown"),
        "[{suite}] {version}"
    );
    // The kept file, before any apply: status reads it, each changed key said.
    if keep_config {
        let r = h.sh("hhlctl status");
        assert_eq!(
            r.code, 0,
            "[{suite}] status on the kept hhl.yaml:\n{}\n{}",
            r.stdout, r.stderr
        );
        for want in [
            "warning: users.shell (/usr/bin/git-shell) is hhlctl 0.1.0's and is ignored",
            "warning: users.master `hhl` is the ssh entry account (users.entry) since hhlctl 0.2.0; read as `hhl-master`",
            "  = hint: write `master: hhl-master` under `users:`",
        ] {
            assert!(r.stderr.contains(want), "[{suite}] wanted {want:?} in:\n{}", r.stderr);
        }
    }
    assert!(
        r.stdout.contains("Unpacking hhlctl (0.2.0-1) over (0.1.0-1)"),
        "[{suite}] {}",
        r.stdout
    );
    assert_eq!(
        main_pids(&h),
        before,
        "[{suite}] an instance restarted during the package upgrade"
    );
    every_instance_answers(&h, false);

    // Before the next apply: a Redis restarted (it saves, and comes back with its data)
    // and the log page restarted.
    h.ok("systemctl restart redis@6381.service");
    h.eventually(
        "systemctl is-active -q redis@6381.service",
        "redis@6381 back after a restart",
        30,
    );
    assert_eq!(redis(&h, 6381, "get upgrade-key", false), "kept-6381");
    h.ok("systemctl restart hhl-web.service");
    h.eventually(
        "systemctl is-active -q hhl-web.service",
        "hhl-web back after a restart",
        30,
    );
    h.ok("systemctl restart openresty@socketserver-dev1.service");
    served(&h, 1081, "dev1 before the upgrade\n");
    // The repositories wait for the entry account, which apply makes.
    let r = h.sh("hhlctl repo init");
    assert_eq!(
        r.code, 1,
        "[{suite}] repo init before apply:\n{}\n{}",
        r.stdout, r.stderr
    );
    assert!(
        r.stderr.contains(
            "unix user `hhl` is not the entry account yet (an older hhlctl made it for another role); run `hhlctl apply` first: it converts it"
        ),
        "[{suite}] {}",
        r.stderr
    );

    // The next step: dev1's key for the entry account, then apply.
    h.ok("mkdir -p -m 700 /root/.ssh && ssh-keygen -q -t ed25519 -N '' -C dev1@laptop -f /root/.ssh/id_ed25519");
    h.ok("printf 'keys:\\n  dev1: [\"%s\"]\\n' \"$(cat /root/.ssh/id_ed25519.pub)\" >> /etc/hhl/hhl.yaml");
    let r = h.sh("hhlctl apply");
    assert_eq!(r.code, 0, "[{suite}] the first apply:\n{}\n{}", r.stdout, r.stderr);
    eprintln!("[{suite}] the first apply:\n{}{}", r.stdout, r.stderr);
    for port in REDIS {
        assert_eq!(
            redis(&h, port, "get upgrade-key", true),
            format!("kept-{port}"),
            "[{suite}] {port}"
        );
    }
    every_instance_answers(&h, true);
    assert_eq!(
        h.curl(&["http://127.0.0.1:1081/hhl"]).stdout,
        "dev1 before the upgrade\n"
    );
    let r = h.sh("hhlctl status");
    assert_eq!(r.code, 0, "[{suite}] status:\n{}\n{}", r.stdout, r.stderr);

    // dev1 pushes through the entry account to the repository made before.
    let r = h.sh("hhlctl repo init");
    assert_eq!(r.code, 0, "[{suite}] repo init:\n{}\n{}", r.stdout, r.stderr);
    h.ok("printf 'Host hhl\\n    HostName 127.0.0.1\\n    User hhl\\n    IdentityFile ~/.ssh/id_ed25519\\n    StrictHostKeyChecking accept-new\\n    BatchMode yes\\n' > /root/.ssh/config");
    let push = h.sh(
        "cd /root && git config --global user.email dev1@hhl && git config --global user.name dev1 \
         && git clone -q hhl:socketserver 2>&1 && cd socketserver && git log --oneline -1 origin/dev1 \
         && git checkout -q dev1 && printf 'ngx.say(\"dev1 after the upgrade\")\\n' > main.lua \
         && git commit -qam after && git push origin HEAD:dev1 2>&1",
    );
    assert_eq!(
        push.code, 0,
        "[{suite}] dev1's push after the upgrade:\n{}\n{}",
        push.stdout, push.stderr
    );
    assert!(
        push.stdout.contains(" before\n"),
        "[{suite}] dev1's branch lost its history:\n{}",
        push.stdout
    );
    assert_eq!(
        h.curl(&["http://127.0.0.1:1081/hhl"]).stdout,
        "dev1 after the upgrade\n"
    );

    if keep_config {
        // Back to the previous release: dpkg cannot be stopped (the older package's
        // `prerm failed-upgrade` succeeds), so the package says what follows; every
        // Redis keeps its ACL, across a restart too.
        let r = h.sh(&format!("{INSTALL}{keep} --allow-downgrades ./{old_name} 2>&1"));
        assert_eq!(r.code, 0, "[{suite}] the downgrade:\n{}\n{}", r.stdout, r.stderr);
        assert!(
            r.stdout
                .contains("hhlctl: warning: downgrading to 0.1.0-1, older than 0.2.0."),
            "[{suite}] {}",
            r.stdout
        );
        h.ok("systemctl restart redis@6381.service");
        h.eventually(
            "systemctl is-active -q redis@6381.service",
            "redis@6381 after the downgrade",
            30,
        );
        for port in REDIS {
            let open = h.sh(&format!("redis-cli -p {port} get upgrade-key 2>&1")).stdout;
            assert!(
                open.contains("NOAUTH"),
                "[{suite}] {port} without its ACL after the downgrade: {open}"
            );
            assert_eq!(
                redis(&h, port, "get upgrade-key", true),
                format!("kept-{port}"),
                "[{suite}] {port}"
            );
        }
    }
    eprintln!(
        "[{suite}] upgrade from the previous release: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn debian12_upgrade_from_the_previous_release_loses_nothing() {
    upgrade("bookworm", false);
}

#[test]
fn debian13_upgrade_from_the_previous_release_keeping_its_hhl_yaml_then_downgrade() {
    upgrade("trixie", true);
}
