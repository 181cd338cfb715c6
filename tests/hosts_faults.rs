//! Two faults of several hosts that tests/hosts.rs does not have, each on its own
//! three hosts and a laptop (support/multihost.rs; one hhl.yaml placing dev2 on hhl2
//! and dev3 on hhl3, hhl1 the primary, set up as docs/ops/hosts.md says):
//!
//! - A host that loses its power in the middle of an apply and boots again: hhl3 is a
//!   persistent host (its writes outlive its container), its apply of an admin's
//!   serverctrl push is made to stop for good right after it wrote its files, and then
//!   it is power-cut (cable dark, every process killed at once). The push names it NOT
//!   applied, the primary shows it down and owed; booted again on what it had written,
//!   it runs its instances by itself, the retry applies the owed commit, a second
//!   apply there has nothing to do, and dev3's code deploys and answers.
//! - A slow host: hhl3's link limited to a few kbit/s both ways. Status through the
//!   primary, a push for dev3 and dev2's restart on hhl2 all end within their bounds;
//!   after the link is back, status is whole again.
//!
//! Each prints its time to detection and to convergence.

mod support;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use support::multihost::{eventually, ssh_as, until, Host, Hosts};
use support::{example_yaml, Run};

const IDS: [&str; 4] = ["dev1", "dev2", "dev3", "lead"];

/// One harness at a time: each boots three hosts, and two side by side on a loaded
/// machine would stretch each other's timings.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Day one as docs/ops/hosts.md says: dev2 on hhl2, dev3 on hhl3, lead an admin.
fn day_one(hs: &Hosts) {
    let base = example_yaml().replace("admins: []", "admins: [lead]");
    hs.day_one(&base, &IDS, "placement:\n  dev2: hhl2\n  dev3: hhl3\n");
}

/// `status` through the primary, as lead.
fn status(hs: &Hosts) -> Run {
    hs.laptop.ssh("lead", 1, "status")
}

/// The rows of `host` in a status across hosts.
fn rows<'a>(st: &'a Run, host: &str) -> Vec<&'a str> {
    st.stdout
        .lines()
        .filter(|l| l.split_whitespace().next() == Some(host))
        .collect()
}

/// The serverctrl commit `h` last applied; "" before its first (day one applies by
/// hand).
fn applied(h: &Host) -> String {
    h.ok("cat /var/lib/hhl/serverctrl.applied 2>/dev/null || true")
        .trim()
        .to_string()
}

/// hhlctl on `h` made to stop for good at fault step `step` (src/host/fault.rs): the
/// real binary kept beside it as hhlctl.real.
fn hang_at(h: &Host, step: &str) {
    h.ok(&format!(
        "mv /usr/bin/hhlctl /usr/bin/hhlctl.real && \
         printf '#!/bin/sh\\nexec env HHL_FAULT={step}:hang /usr/bin/hhlctl.real \"$@\"\\n' > /usr/bin/hhlctl && \
         chmod 755 /usr/bin/hhlctl"
    ));
}

/// The HTTP status dev3's socketserver on `h` answers a 1.5 MB body with: 413 while
/// its client_max_body_size is the example's 1m.
fn post_1_5m(h: &Host) -> String {
    h.sh(
        "head -c 1500000 /dev/zero | curl -s -o /dev/null -w '%{http_code}' -m 10 --data-binary @- http://127.0.0.1:1083/hhl",
    )
    .stdout
}

#[test]
fn host_power_cut_mid_apply_converges_after_reboot() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let t0 = Instant::now();
    let mut hs = Hosts::boot_persistent(3, &[3], Duration::from_secs(480));
    println!("booted 3 hosts (hhl3 persistent) in {}", secs(hs.boot_time));
    day_one(&hs);
    let (h1, h3) = (hs.host(1), hs.host(3));
    assert_eq!(h3.ok("systemctl is-enabled hhl.target").trim(), "enabled");
    // dev3's code, deployed on hhl3 through the primary.
    let r = hs.laptop.push_lua("dev3", 1, "dev3", "v3 before the power cut");
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(h3.get_hhl(1083), "v3 before the power cut\n");
    let before = applied(h1);
    assert_eq!(applied(h3), before);

    // An admin's serverctrl push that changes dev3's socketserver on hhl3, whose
    // apply stops for good right after writing its files (before it stores what it
    // wrote or tells systemd): cut there, the host is caught halfway.
    hang_at(h3, "apply:files");
    let conf = "grep -rqs 'client_max_body_size 2m' /opt/hhl/socketserver/dev3/conf";
    assert_ne!(h3.sh(conf).code, 0, "dev3's config already says 2m");
    assert_eq!(post_1_5m(h3), "413");
    let (r, detected) = std::thread::scope(|s| {
        let pushing = s.spawn(|| {
            hs.laptop.sh(&format!(
                "cd /root && git clone -q --config core.sshCommand='{s}' hhl@10.77.0.1:serverctrl 2>&1 && cd serverctrl && \
                 git config user.name lead && git config user.email lead@pc && \
                 sed -i 's/^      dev3: {{port: 1083}}$/      dev3: {{port: 1083, client_max_body_size: 2m}}/' hhl.yaml && \
                 grep -q 'client_max_body_size: 2m' hhl.yaml && \
                 git commit -qam 'dev3: bodies up to 2m' && git push origin HEAD:master 2>&1",
                s = ssh_as("lead")
            ))
        });
        // Bounded; a push that ends first (it failed before reaching hhl3) ends the wait.
        let deadline = Instant::now() + Duration::from_secs(180);
        let inside = format!("{conf} && [ \"$(systemctl is-active hhl-apply.service)\" = activating ]");
        while h3.sh(&inside).code != 0 {
            if pushing.is_finished() {
                let r = pushing.join().unwrap();
                panic!("the push ended before hhl3's apply hung:\n{}{}", r.stdout, r.stderr);
            }
            assert!(
                Instant::now() < deadline,
                "hhl3 did not write its files and hang inside its apply in 180 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        hs.power_cut(3);
        let cut = Instant::now();
        let r = pushing.join().unwrap();
        (r, cut.elapsed())
    });
    assert!(r.stdout.contains("host hhl2: applied"), "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("host hhl3: NOT applied"), "{}{}", r.stdout, r.stderr);
    println!(
        "hhl3 power-cut inside its apply: the push said NOT applied {} after the cut",
        secs(detected)
    );
    let commit = applied(h1);
    assert!(
        commit.len() == 40 && commit != before,
        "the primary applied the push: {commit:?}"
    );
    // The primary: hhl3 down, and owed the commit.
    let hosts = h1.sh("hhlctl hosts");
    assert_eq!(hosts.code, 1, "{}{}", hosts.stdout, hosts.stderr);
    let line = hosts
        .stdout
        .lines()
        .find(|l| l.starts_with("hhl3 "))
        .unwrap_or_else(|| panic!("no hhl3 in\n{}", hosts.stdout));
    assert!(line.contains("DOWN"), "{}", hosts.stdout);
    assert!(line.contains(&format!("owed {}", &commit[..10])), "{}", hosts.stdout);

    // While it is off, its disk is fixed: the real hhlctl back in place, in the
    // directory that holds what it wrote.
    let upper = h3.upper().expect("hhl3 is persistent").join("upper/usr/bin");
    std::fs::rename(upper.join("hhlctl.real"), upper.join("hhlctl")).expect("restoring hhl3's hhlctl");

    // Power on: the same host, by itself.
    let back = hs.boot_again(3);
    let powered = Instant::now() - back;
    println!("hhl3 booted again: sshd answered {} after power on", secs(back));
    let (h1, h3) = (hs.host(1), hs.host(3));
    assert_eq!(
        h3.ok("cat /etc/ssh/ssh_host_ed25519_key.pub").trim(),
        h3.host_key,
        "hhl3 kept its host key"
    );
    assert_eq!(h3.ok("hostname").trim(), "hhl3");
    assert!(
        !h3.ok("cat /usr/bin/hhlctl | head -c 2").starts_with("#!"),
        "the real hhlctl"
    );
    // Its instances run again on their own (hhl.target), serving what they had.
    eventually("hhl3's instances are back", 60, || {
        h3.sh("systemctl is-active openresty@socketserver-dev3.service redis@6383.service")
    });
    assert_eq!(h3.get_hhl(1083), "v3 before the power cut\n");
    println!(
        "hhl3 booted again: its instances answered {} after power on",
        secs(powered.elapsed())
    );
    assert_eq!(applied(h3), before, "hhl3 never finished the commit it was cut in");

    // The retry applies the owed commit (unless the retry timer, 30 s after the
    // failure, was first: then its journal says so).
    let r = h1.sh("hhlctl hosts sync --now");
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let by = if r.stdout.contains("host hhl3: applied") {
        "hhlctl hosts sync --now"
    } else {
        let timer = h1.ok("journalctl -u hhl-hosts-sync.service --no-pager -o cat");
        assert!(
            timer.contains("host hhl3: applied"),
            "neither `hosts sync --now` nor the timer applied hhl3:\n{}\n{timer}",
            r.stdout
        );
        "the retry timer"
    };
    assert_eq!(applied(h3), commit);
    assert_eq!(h3.sh(conf).code, 0, "dev3's config says 2m");
    assert_eq!(post_1_5m(h3), "200", "dev3's socketserver takes 2m bodies");
    println!(
        "hhl3 converged ({by} applied the owed commit) {} after power on",
        secs(powered.elapsed())
    );
    for l in r.stdout.lines().filter(|l| l.starts_with("hhl3: ")) {
        println!("  {l}");
    }
    let hosts = h1.sh("hhlctl hosts");
    assert_eq!(hosts.code, 0, "{}{}", hosts.stdout, hosts.stderr);
    assert!(!hosts.stdout.contains("owed"), "{}", hosts.stdout);
    // Converged: a second apply there has nothing to do.
    let again = h3.sh("hhlctl apply");
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
    assert!(again.stdout.contains("nothing to do"), "{}", again.stdout);
    assert!(
        !again.stdout.contains("files:") && !again.stdout.contains("interrupted"),
        "{}",
        again.stdout
    );
    // dev3's instance answers, and takes a new deploy through the primary.
    let r = hs.laptop.push_lua("dev3", 1, "dev3", "v3 after the reboot");
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(h3.get_hhl(1083), "v3 after the reboot\n");
    let st = status(&hs);
    assert_eq!(st.code, 0, "{}{}", st.stdout, st.stderr);
    assert!(
        rows(&st, "hhl3")
            .iter()
            .any(|l| l.contains("socketserver-dev3") && l.contains("active/running")),
        "{}",
        st.stdout
    );
    println!("whole test: {}", secs(t0.elapsed()));

    let trace = hs.trace();
    assert!(
        trace.dirs.iter().any(|d| d.ends_with("hhl3-root")),
        "the trace knows hhl3's disk: {:?}",
        trace.dirs
    );
    drop(hs);
    assert_eq!(trace.leftovers(), Vec::<String>::new());
}

/// How long 4 KB take from the laptop to hhl3 and 4 KB back, over TCP: a listener on
/// hhl3 (perl, bounded by `timeout`) reads 4096 bytes and answers 4096.
fn exchange_4k(hs: &Hosts) -> Duration {
    let h3 = hs.host(3);
    h3.ok("timeout 60 perl -MIO::Socket::INET -e '\
         my $s = IO::Socket::INET->new(LocalPort => 9999, Listen => 1, ReuseAddr => 1) or die; \
         my $c = $s->accept; my ($n, $b) = (0, q()); \
         while ($n < 4096) { my $r = sysread($c, $b, 4096 - $n) or last; $n += $r } \
         syswrite($c, q(x) x 4096); close $c' </dev/null >/dev/null 2>&1 &");
    until("hhl3 listens on 9999", 20, || {
        h3.sh("ss -ltnH 'sport = :9999' | grep -q .").code == 0
    });
    let t = Instant::now();
    let got = hs.laptop.ok(
        "timeout 60 bash -c 'exec 3<>/dev/tcp/10.77.0.3/9999; head -c 4096 /dev/zero >&3; head -c 4096 <&3 | wc -c'",
    );
    let took = t.elapsed();
    assert_eq!(got.trim(), "4096");
    took
}

/// The primary's kept ssh connections (ControlMaster) to `host`, root's and the
/// entry account's, closed: the next request makes a new one.
fn drop_kept_connections(primary: &Host, host: &str) {
    primary.ok(&format!(
        "for s in ~hhl/.peer/{host} /run/hhl-peer/{host}; do \
           if [ -S $s ]; then ssh -O exit -o ControlPath=$s {host} 2>/dev/null; fi; \
           for i in $(seq 50); do [ -S $s ] || break; sleep 0.1; done; ! [ -S $s ] || exit 1; \
         done"
    ));
}

/// A status across hosts taken while hhl3 is slow: hhl2's rows live, hhl3's either
/// live (exit 0) or marked UNREACHABLE (exit 1). Whether hhl3 was late.
#[track_caller]
fn check_slow_status(st: &Run) -> bool {
    let h3rows = rows(st, "hhl3");
    assert!(!h3rows.is_empty(), "{}", st.stdout);
    let late = h3rows.iter().any(|l| l.starts_with("hhl3 UNREACHABLE"));
    if late {
        assert_eq!(st.code, 1, "{}{}", st.stdout, st.stderr);
    } else {
        assert_eq!(st.code, 0, "{}{}", st.stdout, st.stderr);
        assert!(
            h3rows
                .iter()
                .any(|l| l.contains("socketserver-dev3") && l.contains("active/running")),
            "{}",
            st.stdout
        );
    }
    assert!(
        rows(st, "hhl2").iter().any(|l| l.contains("active/running")),
        "{}",
        st.stdout
    );
    late
}

/// The link's rate while hhl3 is slow: 8 kbit/s, 1 KB a second each way.
const SLOW_KBIT: u32 = 8;

#[test]
fn slow_host_everything_bounded() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let t0 = Instant::now();
    let hs = Hosts::boot_within(3, Duration::from_secs(420));
    println!("booted 3 hosts in {}", secs(hs.boot_time));
    day_one(&hs);
    let st = status(&hs);
    assert_eq!(st.code, 0, "{}{}", st.stdout, st.stderr);

    let fast = exchange_4k(&hs);
    hs.slow(3, SLOW_KBIT);
    // The limit bites, both ways: at 1 KB/s (after a burst of 1600 bytes), 4 KB there
    // and 4 KB back need more than 4 s.
    let slow = exchange_4k(&hs);
    println!(
        "4 KB each way laptop <-> hhl3: {} ms, slowed {} ms",
        fast.as_millis(),
        slow.as_millis()
    );
    assert!(fast < Duration::from_secs(2), "fast link: {fast:?}");
    assert!(slow > Duration::from_secs(4), "slowed link: {slow:?}");

    // Status through the primary ends within its per-host deadline (8 s) and a
    // margin, whichever way hhl3's answer went: first over the primary's kept
    // connection to hhl3 (made before the link slowed), then over a new one.
    for kept in [true, false] {
        if !kept {
            drop_kept_connections(hs.host(1), "hhl3");
        }
        let t = Instant::now();
        let st = status(&hs);
        let took = t.elapsed();
        let how = if kept { "kept connection" } else { "new connection" };
        assert!(
            took < Duration::from_secs(15),
            "status ({how}) took {took:?} with hhl3 slow"
        );
        let late = check_slow_status(&st);
        println!(
            "hhl3 slow ({SLOW_KBIT} kbit/s), {how}: status ended in {}, hhl3 {}",
            secs(took),
            if late {
                "not answering in time (UNREACHABLE)"
            } else {
                "answering"
            }
        );
    }

    // dev2's restart on hhl2 through the primary: not held up by hhl3.
    let t = Instant::now();
    let r = hs.laptop.ssh("dev2", 1, "restart");
    let took = t.elapsed();
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(took < Duration::from_secs(10), "dev2's restart took {took:?}");
    println!("hhl3 slow: dev2's restart on hhl2 took {}", secs(took));

    // A push for dev3 ends, one way or the other, and says which: deployed on hhl3
    // (slowly), queued (the link lost after the ref moved), or refused naming hhl3
    // before any ref moves.
    let (h1, h3) = (hs.host(1), hs.host(3));
    let head = || {
        h1.ok("git --git-dir=/srv/git/socketserver.git rev-parse -q --verify refs/heads/dev3 || true")
            .trim()
            .to_string()
    };
    let before = head();
    let text = "v3 over a slow link";
    let t = Instant::now();
    let r = hs.laptop.push_lua("dev3", 1, "dev3", text);
    let took = t.elapsed();
    assert!(took < Duration::from_secs(60), "dev3's push took {took:?}");
    let outcome = if r.code != 0 {
        assert!(r.stdout.contains("host hhl3 (10.77.0.3)"), "{}{}", r.stdout, r.stderr);
        assert_eq!(head(), before, "the primary's ref did not move");
        "refused, naming hhl3"
    } else if r.stdout.contains("queued: host hhl3") {
        "queued"
    } else {
        assert!(
            r.stdout.contains("deployed") && r.stdout.contains("to socketserver-dev3"),
            "{}",
            r.stdout
        );
        assert_eq!(h3.get_hhl(1083), format!("{text}\n"));
        "deployed on hhl3"
    };
    println!("hhl3 slow: dev3's push ended in {}: {outcome}", secs(took));

    hs.unslow(3);
    let restored = Instant::now();
    eventually("status is whole again", 60, || status(&hs));
    println!("hhl3 fast again: status whole in {}", secs(restored.elapsed()));
    let again = exchange_4k(&hs);
    assert!(again < Duration::from_secs(2), "the link is fast again: {again:?}");
    if outcome == "queued" {
        // The retry deploys it (`hosts sync --now`, unless the retry timer was first).
        let r = h1.sh("hhlctl hosts sync --now");
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        assert_eq!(h3.get_hhl(1083), format!("{text}\n"), "{}", r.stdout);
        println!(
            "hhl3 fast again: the queued deploy was live in {}",
            secs(restored.elapsed())
        );
    }
    println!("whole test: {}", secs(t0.elapsed()));

    let trace = hs.trace();
    drop(hs);
    assert_eq!(trace.leftovers(), Vec::<String>::new());
}
