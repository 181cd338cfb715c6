//! Several hosts, for real: three systemd hosts and a developer's laptop on a bridge in
//! network namespaces this test makes (10.77.0.0/24, no route out; see
//! support/multihost.rs), real sshd with pinned host keys, real git over ssh. One
//! hhl.yaml places dev2 on hhl2 and dev3 on hhl3; hhl1 is the primary.
//!
//! Cases, in one boot (serial, bounded by the harness's watchdog): steady state
//! across hosts; authority (a developer cannot act on another's host, directly or
//! through the primary; the peer key works from the primary's address only; a
//! developer cannot send the peer's verbs); a push forwarded to its owner's host; a
//! partition primary↔hhl3 (status marks it, the other hosts are unaffected, a push
//! for dev3 is refused before any ref moves, hhl3 keeps serving and answers
//! directly); an apply while hhl3 is cut off (named, exit 1, owed) converging by the
//! retry after healing; a frozen host (status and pushes bounded); the link cut in the
//! middle of a deploy (queued, then deployed exactly once). Each fault's time to
//! detection and to convergence is printed.

mod support;

use std::time::{Duration, Instant};

use support::multihost::{Hosts, LAPTOP};
use support::{example_yaml, Run};

const IDS: [&str; 4] = ["dev1", "dev2", "dev3", "lead"];

fn on_laptop(hs: &Hosts, id: &str, host: usize, command: &str) -> Run {
    hs.laptop.ssh(id, host, command)
}

fn push(hs: &Hosts, id: &str, host: usize, branch: &str, text: &str) -> Run {
    hs.laptop.push_lua(id, host, branch, text)
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Day one, as docs/ops/hosts.md says (`Hosts::day_one` runs its `sh tested` blocks):
/// one hhl.yaml, dev2 on hhl2 and dev3 on hhl3, applied by each host itself; the
/// developers' keys on the laptop.
fn day_one(hs: &Hosts) {
    let base = example_yaml().replace("admins: []", "admins: [lead]");
    hs.day_one(&base, &IDS, "placement:\n  dev2: hhl2\n  dev3: hhl3\n");
}

#[test]
fn three_hosts_one_config() {
    let t0 = Instant::now();
    let hs = Hosts::boot(3);
    println!("booted 3 hosts and the laptop in {}", secs(hs.boot_time));
    let (h1, h2, h3) = (hs.host(1), hs.host(2), hs.host(3));
    day_one(&hs);
    println!("applied on 3 hosts at {}", secs(t0.elapsed()));
    // Each host runs only its owners' instances.
    assert_eq!(
        h1.ok("systemctl is-active openresty@socketserver-dev1.service").trim(),
        "active"
    );
    assert_eq!(
        h2.ok("systemctl is-active openresty@socketserver-dev2.service").trim(),
        "active"
    );
    assert_eq!(
        h3.ok("systemctl is-active openresty@socketserver-dev3.service redis@6383.service")
            .trim(),
        "active\nactive"
    );
    assert_ne!(
        h1.sh("systemctl is-active openresty@socketserver-dev2.service")
            .stdout
            .trim(),
        "active"
    );
    assert_ne!(
        h2.sh("systemctl is-active openresty@socketserver-master.service")
            .stdout
            .trim(),
        "active"
    );

    // Steady state: every host answers; status across hosts has a HOST column.
    let hosts = h1.sh("hhlctl hosts");
    assert_eq!(hosts.code, 0, "{}{}", hosts.stdout, hosts.stderr);
    assert_eq!(hosts.stdout.matches("answers").count(), 3, "{}", hosts.stdout);
    let st = on_laptop(&hs, "lead", 1, "status");
    assert_eq!(st.code, 0, "{}{}", st.stdout, st.stderr);
    assert!(st.stdout.starts_with("HOST"), "{}", st.stdout);
    for (host, inst) in [
        ("hhl1", "socketserver-dev1"),
        ("hhl2", "socketserver-dev2"),
        ("hhl3", "socketserver-dev3"),
    ] {
        assert!(
            st.stdout
                .lines()
                .any(|l| l.starts_with(host) && l.contains(inst) && l.contains("active/running")),
            "{host} {inst}:\n{}",
            st.stdout
        );
    }
    // Status across three hosts against one host's (the same rows' share), same run.
    let time = |script: &str| -> Duration {
        let mut v: Vec<Duration> = (0..5)
            .map(|_| {
                let t = Instant::now();
                h1.sh(script);
                t.elapsed()
            })
            .collect();
        v.sort();
        v[2]
    };
    let across = time("hhlctl status >/dev/null");
    let one = time("hhlctl status --dev dev1 >/dev/null");
    println!(
        "status, median of 5: across 3 hosts {} ms; one host's own (dev1's rows, no peer asked) {} ms",
        across.as_millis(),
        one.as_millis()
    );

    // A push to the primary for dev2 deploys on hhl2, its output streamed back.
    let r = push(&hs, "dev2", 1, "dev2", "v2 on hhl2");
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("socketserver-dev2"), "{}", r.stdout);
    assert_eq!(h2.get_hhl(1082), "v2 on hhl2\n");
    let head = |h: &support::multihost::Host, b: &str| {
        h.sh(&format!(
            "git --git-dir=/srv/git/socketserver.git rev-parse refs/heads/{b}"
        ))
        .stdout
    };
    assert_eq!(head(h1, "dev2"), head(h2, "dev2"));
    // ... and the developer's own host answers directly.
    let st = on_laptop(&hs, "dev2", 2, "status");
    assert_eq!(st.code, 0, "{}{}", st.stdout, st.stderr);
    assert!(st.stdout.contains("socketserver-dev2"), "{}", st.stdout);

    // Their own Redis through the primary: the command runs on hhl2, where it is.
    let r = on_laptop(&hs, "dev2", 1, "redis SET moved-with-me yes");
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        on_laptop(&hs, "dev2", 2, "redis GET moved-with-me").stdout.trim(),
        "\"yes\""
    );

    // Authority. dev1 on dev3's instance, through the primary and directly on hhl3.
    let pid3 = h3.main_pid("openresty@socketserver-dev3.service");
    for host in [1, 3] {
        let r = on_laptop(&hs, "dev1", host, "restart socketserver-dev3");
        assert_ne!(r.code, 0, "{}", r.stdout);
        assert!(r.stderr.contains("not yours"), "host {host}: {}", r.stderr);
    }
    // The peer's verbs are not a developer's.
    let r = on_laptop(&hs, "dev1", 1, "as dev3 restart socketserver-dev3");
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("refused"), "{}", r.stderr);
    // The peer key from anywhere but the primary's address: sshd refuses it.
    let stolen = h1.ok("cat /var/lib/hhl/peer/id_ed25519");
    std::fs::write(hs.laptop.home.join("keys/stolen"), stolen).unwrap();
    hs.laptop.ok("chmod 600 keys/stolen");
    let r = on_laptop(&hs, "stolen", 3, "as lead restart socketserver-dev3");
    assert_eq!(r.code, 255, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("Permission denied"), "{}", r.stderr);
    // A push straight to a host that is not the primary.
    let r = push(&hs, "dev2", 2, "dev2", "sideways");
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(r.stdout.contains("pushes go to the primary, hhl1"), "{}", r.stdout);
    assert_eq!(
        h3.main_pid("openresty@socketserver-dev3.service"),
        pid3,
        "nothing moved on hhl3"
    );
    assert_eq!(h2.get_hhl(1082), "v2 on hhl2\n");

    // Partition primary↔hhl3.
    hs.cut(1, 3);
    let cut_at = Instant::now();
    let st = on_laptop(&hs, "lead", 1, "status");
    let detected = cut_at.elapsed();
    assert_eq!(st.code, 1, "{}{}", st.stdout, st.stderr);
    assert!(
        st.stdout
            .lines()
            .any(|l| l.starts_with("hhl3 UNREACHABLE") && l.contains("socketserver-dev3")),
        "{}",
        st.stdout
    );
    assert!(
        st.stdout
            .lines()
            .any(|l| l.starts_with("hhl2 ") && l.contains("active/running")),
        "{}",
        st.stdout
    );
    println!(
        "partition hhl1-hhl3: status marked hhl3 unreachable in {}",
        secs(detected)
    );
    // The other hosts are unaffected: dev2 restarts through the primary.
    let t = Instant::now();
    let r = on_laptop(&hs, "dev2", 1, "restart");
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    println!(
        "during the partition, dev2's restart through the primary took {}",
        secs(t.elapsed())
    );
    // A push for dev3 is refused before any ref moves, naming the host.
    let before = head(h1, "dev3");
    let t = Instant::now();
    let r = push(&hs, "dev3", 1, "dev3", "v3 while cut off");
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(
        r.stdout.contains("host hhl3 (10.77.0.3)") && r.stdout.contains("cannot be reached"),
        "{}",
        r.stdout
    );
    assert_eq!(head(h1, "dev3"), before, "the primary's ref did not move");
    println!("during the partition, dev3's push was refused in {}", secs(t.elapsed()));
    // hhl3 keeps serving and answers its developer directly.
    assert_eq!(h3.main_pid("openresty@socketserver-dev3.service"), pid3);
    let st = on_laptop(&hs, "dev3", 3, "status");
    assert_eq!(st.code, 0, "{}{}", st.stdout, st.stderr);

    // plan names the host it could not ask.
    let r = h1.sh("hhlctl plan");
    assert!(r.stdout.contains("host hhl2: answers"), "{}", r.stdout);
    assert!(r.stdout.contains("host hhl3: could not be asked"), "{}", r.stdout);

    // An apply while hhl3 is cut off: hhl2 applies, hhl3 is named and owed.
    let r = h1.sh("systemctl start hhl-apply.service; cat /run/hhl-apply.log");
    assert!(r.stdout.contains("host hhl2: applied"), "{}", r.stdout);
    assert!(r.stdout.contains("host hhl3: NOT applied"), "{}", r.stdout);
    assert_eq!(h1.sh("systemctl is-failed hhl-apply.service").stdout.trim(), "failed");
    let list = h1.sh("hhlctl hosts");
    assert_eq!(list.code, 1, "{}", list.stdout);
    assert!(
        list.stdout
            .lines()
            .any(|l| l.starts_with("hhl3") && l.contains("DOWN") && l.contains("(owed ")),
        "{}",
        list.stdout
    );

    // Healing: status is whole again, and the retry applies hhl3.
    hs.heal(1, 3);
    let healed = Instant::now();
    support::multihost::eventually("status across hosts is whole again", 60, || {
        on_laptop(&hs, "lead", 1, "status")
    });
    println!("after healing, status was whole again in {}", secs(healed.elapsed()));
    let r = h1.sh("hhlctl hosts sync --now");
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("host hhl3: applied"), "{}", r.stdout);
    println!(
        "after healing, hhl3's owed apply converged in {}",
        secs(healed.elapsed())
    );

    // A frozen host (every process stopped, its kernel still answering TCP): status
    // and a push for its owner end within their deadlines, naming it.
    hs.freeze(3);
    let t = Instant::now();
    let st = on_laptop(&hs, "lead", 1, "status");
    let took = t.elapsed();
    assert_eq!(st.code, 1, "{}{}", st.stdout, st.stderr);
    assert!(
        st.stdout.lines().any(|l| l.starts_with("hhl3 UNREACHABLE")),
        "{}",
        st.stdout
    );
    assert!(took < Duration::from_secs(15), "status took {took:?} with hhl3 frozen");
    println!("hhl3 frozen: status marked it in {}", secs(took));
    let t = Instant::now();
    let r = push(&hs, "dev3", 1, "dev3", "v3 while frozen");
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(r.stdout.contains("host hhl3 (10.77.0.3)"), "{}", r.stdout);
    println!("hhl3 frozen: dev3's push was refused in {}", secs(t.elapsed()));
    hs.thaw(3);
    let thawed = Instant::now();
    support::multihost::eventually("status is whole after the thaw", 60, || {
        on_laptop(&hs, "lead", 1, "status")
    });
    println!("hhl3 thawed: status whole again in {}", secs(thawed.elapsed()));

    // The link dies mid-deploy (after both refs moved): the push says queued, and the
    // retry deploys it once. hhl2's hhlctl is made to stop for good just after it
    // switched the release (a deploy cut off there), then the link is cut.
    h2.ok("mv /usr/bin/hhlctl /usr/bin/hhlctl.real && printf '#!/bin/sh\nexec env HHL_FAULT=release:switched:hang /usr/bin/hhlctl.real \"$@\"\n' > /usr/bin/hhlctl && chmod 755 /usr/bin/hhlctl");
    let before = h2.ok("readlink /opt/hhl/socketserver/dev2/app/current");
    let (r, detected) = std::thread::scope(|s| {
        let pushing = s.spawn(|| push(&hs, "dev2", 1, "dev2", "v3 across a cut"));
        support::multihost::until("hhl2 switched dev2's release and hangs there", 60, || {
            h2.sh("readlink /opt/hhl/socketserver/dev2/app/current").stdout != before
        });
        hs.cut(1, 2);
        let cut_at = Instant::now();
        let r = pushing.join().unwrap();
        (r, cut_at.elapsed())
    });
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(
        r.stdout
            .contains("queued: host hhl2 (10.77.0.2) was lost during the deploy of socketserver-dev2"),
        "{}",
        r.stdout
    );
    println!(
        "link cut mid-deploy: the push said queued {} after the cut",
        secs(detected)
    );
    h2.ok("pkill -f '^/usr/bin/hhlctl.real peer' ; mv /usr/bin/hhlctl.real /usr/bin/hhlctl");
    hs.heal(1, 2);
    let healed = Instant::now();
    let r = h1.sh("hhlctl hosts sync --now");
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("host hhl2: queued deploy of socketserver-dev2 done"),
        "{}",
        r.stdout
    );
    assert_eq!(h2.get_hhl(1082), "v3 across a cut\n");
    println!(
        "after healing, the queued deploy was live in {}",
        secs(healed.elapsed())
    );
    let commit = head(h1, "dev2");
    let releases = on_laptop(&hs, "dev2", 2, "releases socketserver-dev2");
    assert_eq!(releases.code, 0, "{}", releases.stderr);
    let short = &commit.trim()[..10];
    assert_eq!(
        releases.stdout.lines().filter(|l| l.contains(short)).count(),
        1,
        "one release of {short}:\n{}",
        releases.stdout
    );
    assert!(
        releases.stdout.contains("v3 across a cut (pushed by dev2)"),
        "{}",
        releases.stdout
    );
    let again = h1.ok("hhlctl hosts sync --now");
    assert!(!again.contains("queued deploy"), "{again}");

    // An admin's serverctrl push while hhl3's apply dies midway (killed as it wrote
    // its files): hhl2 applies, hhl3 is named and owed; the retry converges it.
    h3.ok("mv /usr/bin/hhlctl /usr/bin/hhlctl.real && printf '#!/bin/sh\\nexec env HHL_FAULT=apply:files /usr/bin/hhlctl.real \\\"$@\\\"\\n' > /usr/bin/hhlctl && chmod 755 /usr/bin/hhlctl");
    let r = hs.laptop.sh(&format!(
        "cd /root && git clone -q --config core.sshCommand='{s}' hhl@10.77.0.1:serverctrl 2>&1 && cd serverctrl && \
         git config user.name lead && git config user.email lead@pc && printf '# touched\\n' >> hhl.yaml && \
         git commit -qam touched && git push origin HEAD:master 2>&1",
        s = support::multihost::ssh_as("lead")
    ));
    assert!(r.stdout.contains("host hhl2: applied"), "{}", r.stdout);
    assert!(r.stdout.contains("host hhl3: NOT applied"), "{}", r.stdout);
    h3.ok("mv /usr/bin/hhlctl.real /usr/bin/hhlctl");
    let t = Instant::now();
    let r = h1.sh("hhlctl hosts sync --now");
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("host hhl3: applied"), "{}", r.stdout);
    println!(
        "hhl3's apply killed midway: converged by the retry in {}",
        secs(t.elapsed())
    );
    assert_eq!(
        h3.ok("systemctl is-active openresty@socketserver-dev3.service").trim(),
        "active"
    );

    // The retry runs as the entry account, and takes from its queue only what names
    // hhl.yaml's hosts, identities and instances: an entry planted there (by whoever
    // could write as that account) runs nothing, as root or otherwise.
    h1.ok(
        "printf '%s' '{\"k\":{\"host\":\"hhl2\",\"identity\":\"x$(touch /tmp/planted)\",\"instance\":\"lualib\"}}' \
           > /var/lib/hhl-entry/.peer/queued.json && chown hhl /var/lib/hhl-entry/.peer/queued.json",
    );
    let r = h1.sh("hhlctl hosts sync --now");
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("dropped a queued deploy"), "{}", r.stderr);
    assert_ne!(h1.sh("test -e /tmp/planted").code, 0, "the planted command ran");
    assert_eq!(h1.ok("stat -c %U /var/lib/hhl-entry/.peer/queued.json").trim(), "hhl");

    let applied: Vec<String> = hs
        .hosts()
        .iter()
        .map(|h| h.ok("cat /var/lib/hhl/serverctrl.applied"))
        .collect();
    assert!(applied.iter().all(|a| *a == applied[0]), "{applied:?}");
    assert_eq!(hs.on(LAPTOP, "true").code, 0);
    println!("whole test: {}", secs(t0.elapsed()));
    // Teardown leaves nothing: namespaces, containers, cgroups.
    let trace = hs.trace();
    drop(hs);
    assert_eq!(trace.leftovers(), Vec::<String>::new());
}

/// The benchmark `benches/hosts.sh` runs (not a timed test: ignored by `cargo test`):
/// on the primary, medians of RUNS runs of `hhlctl status` across the three hosts
/// against the same command for one host's own rows (`--dev dev1`: no peer asked) and
/// against systemd's own listing of the primary's units, all in the same run.
#[test]
#[ignore]
fn bench_status_across_hosts() {
    let runs: usize = std::env::var("RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(21);
    let hs = Hosts::boot(3);
    day_one(&hs);
    let h1 = hs.host(1);
    let median = |script: &str| -> f64 {
        assert_eq!(h1.sh(script).code, 0, "{script}");
        let mut v: Vec<f64> = (0..runs)
            .map(|_| {
                let t = Instant::now();
                h1.sh(script);
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        v.sort_by(|a, b| a.total_cmp(b));
        v[runs / 2]
    };
    let anchor = median("systemctl list-units --no-legend 'openresty@*' 'redis@*' >/dev/null");
    let one = median("hhlctl status --dev dev1 >/dev/null");
    let across = median("hhlctl status >/dev/null");
    let hosts = median("hhlctl hosts >/dev/null");
    let rows = |script: &str| h1.ok(script).lines().count() - 1;
    println!("medians of {runs} runs on the primary (ms), ratio to systemctl list-units:");
    println!("  systemctl list-units (anchor)      {anchor:7.1}  1.00");
    println!(
        "  hhlctl status --dev dev1 ({:2} rows) {one:7.1}  {:.2}",
        rows("hhlctl status --dev dev1"),
        one / anchor
    );
    println!(
        "  hhlctl status, 3 hosts ({:2} rows)  {across:7.1}  {:.2}",
        rows("hhlctl status"),
        across / anchor
    );
    println!(
        "  hhlctl hosts (ping 2 hosts)        {hosts:7.1}  {:.2}",
        hosts / anchor
    );
}
