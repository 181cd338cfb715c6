//! The multi-host harness itself (tests/support/multihost.rs): three real systemd
//! hosts and a laptop on one bridge, each reaching the others on TCP 22 and nothing
//! else; ssh from the laptop checks each host's own key; each fault bites and its
//! inverse heals; after the drop nothing is left. Prints how long each step took.

mod support;

use std::time::{Duration, Instant};

use support::multihost::{node_name, until, Hosts, LAPTOP};

/// Every ordered pair of nodes that may talk: hosts among themselves, the laptop to
/// each host.
const ALL: [(usize, usize); 9] = [
    (1, 2),
    (1, 3),
    (2, 1),
    (2, 3),
    (3, 1),
    (3, 2),
    (LAPTOP, 1),
    (LAPTOP, 2),
    (LAPTOP, 3),
];

fn pair(p: (usize, usize)) -> String {
    format!("{} -> {}", node_name(p.0), node_name(p.1))
}

/// Connect on TCP 22 for every pair at once; each must be as `expect` says.
#[track_caller]
fn assert_reach(hosts: &Hosts, expect: &[((usize, usize), bool)], when: &str) {
    let pairs: Vec<(usize, usize)> = expect.iter().map(|e| e.0).collect();
    let got = hosts.reaches(&pairs, 22);
    let wrong: Vec<String> = expect
        .iter()
        .zip(&got)
        .filter(|((_, want), got)| want != *got)
        .map(|((p, want), _)| format!("{} {}", pair(*p), if *want { "failed" } else { "connected" }))
        .collect();
    assert!(wrong.is_empty(), "{when}: {}", wrong.join(", "));
}

/// All pairs of `ALL` connect.
fn all_reach(hosts: &Hosts) -> bool {
    hosts.reaches(&ALL, 22).iter().all(|&ok| ok)
}

fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

#[test]
fn harness_hosts_talk_and_faults_bite() {
    let hosts = Hosts::boot(3);
    println!("boot of 3 hosts side by side: {}", ms(hosts.boot_time));

    // Each host is itself: its name, and a host key of its own.
    for h in hosts.hosts() {
        assert_eq!(h.ok("hostname").trim(), h.name);
        assert!(h.host_key.starts_with("ssh-ed25519 "), "{}: {}", h.name, h.host_key);
    }
    let keys: std::collections::BTreeSet<&str> = hosts.hosts().iter().map(|h| h.host_key.as_str()).collect();
    assert_eq!(keys.len(), 3, "the hosts share a host key");

    // Everyone reaches everyone on port 22...
    let t = Instant::now();
    let all: Vec<_> = ALL.iter().map(|&p| (p, true)).collect();
    assert_reach(&hosts, &all, "freshly booted");
    println!("all 9 pairs connect: checked in {}", ms(t.elapsed()));
    // ...and nothing else: no default route anywhere.
    for node in [1, 2, 3, LAPTOP] {
        let r = hosts.on(node, "ip route get 1.1.1.1");
        assert_ne!(r.code, 0, "{} has a route out: {}", node_name(node), r.stdout);
        assert_eq!(
            hosts.on(node, "ip route show default").stdout,
            "",
            "{}",
            node_name(node)
        );
    }

    // Real ssh from the laptop, by name, checking each host's key against the
    // harness's known_hosts (strictly): the keys, names and the laptop's home work.
    let public = hosts.laptop.ok(
        "mkdir -p .ssh && ssh-keygen -q -t ed25519 -N '' -C me@laptop -f .ssh/id_ed25519 && cat .ssh/id_ed25519.pub",
    );
    std::fs::write(hosts.laptop.home.join(".ssh/known_hosts"), hosts.known_hosts()).unwrap();
    for h in hosts.hosts() {
        h.ok(&format!(
            "mkdir -p /root/.ssh && echo '{}' >> /root/.ssh/authorized_keys",
            public.trim()
        ));
        let r = hosts.laptop.sh(&format!(
            "ssh -o BatchMode=yes -o StrictHostKeyChecking=yes -o ConnectTimeout=5 root@{} hostname",
            h.name
        ));
        assert_eq!(r.stdout.trim(), h.name, "laptop: ssh root@{}: {}", h.name, r.stderr);
    }

    // cut(1, 2): 1 and 2 no longer hear each other, both still hear 3 and the laptop.
    let t = Instant::now();
    hosts.cut(1, 2);
    let applied = t.elapsed();
    assert_reach(
        &hosts,
        &ALL.iter()
            .map(|&p| (p, !matches!(p, (1, 2) | (2, 1))))
            .collect::<Vec<_>>(),
        "after cut(1, 2)",
    );
    println!(
        "cut(1, 2): applied in {}, seen (1<->2 silent both ways, the other 7 pairs answering) after {}",
        ms(applied),
        ms(t.elapsed())
    );
    let t = Instant::now();
    hosts.heal(1, 2);
    until("1<->2 after heal(1, 2)", 20, || all_reach(&hosts));
    println!("heal(1, 2): all 9 pairs connect again after {}", ms(t.elapsed()));

    // isolate(2): 2 hears nobody and nobody hears 2; the others still hear each other.
    let t = Instant::now();
    hosts.isolate(2);
    let applied = t.elapsed();
    assert_reach(
        &hosts,
        &ALL.iter().map(|&p| (p, p.0 != 2 && p.1 != 2)).collect::<Vec<_>>(),
        "after isolate(2)",
    );
    println!(
        "isolate(2): applied in {}, seen (5 pairs with 2 fail, 4 without answer) after {}",
        ms(applied),
        ms(t.elapsed())
    );
    let t = Instant::now();
    hosts.rejoin(2);
    until("all pairs after rejoin(2)", 20, || all_reach(&hosts));
    println!("rejoin(2): all 9 pairs connect again after {}", ms(t.elapsed()));

    // freeze(3): its kernel still completes a TCP handshake, but its sshd sends no
    // banner; 1 and 2 are unaffected.
    assert!(
        hosts.greets(1, 3) && hosts.greets(LAPTOP, 3),
        "sshd on 3 greets before the freeze"
    );
    let t = Instant::now();
    hosts.freeze(3);
    let applied = t.elapsed();
    let frozen: Vec<bool> = std::thread::scope(|s| {
        let hs = &hosts;
        [(1, 3), (2, 3), (LAPTOP, 3)]
            .map(|(from, to)| s.spawn(move || hs.greets(from, to)))
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(frozen, [false; 3], "a banner from frozen 3 (to 1, 2, laptop)");
    assert!(
        hosts.greets(1, 2) && hosts.greets(LAPTOP, 1),
        "frozen 3 froze others too"
    );
    println!(
        "freeze(3): applied (kernel: frozen) in {}, seen (no banner within 2 s from 1, 2, laptop) after {}",
        ms(applied),
        ms(t.elapsed())
    );
    assert_reach(&hosts, &[((1, 3), true)], "frozen 3's kernel completes a handshake");
    let t = Instant::now();
    hosts.thaw(3);
    until("a banner from 3 after thaw(3)", 20, || {
        hosts.greets(1, 3) && hosts.greets(LAPTOP, 3)
    });
    println!("thaw(3): banner back after {}", ms(t.elapsed()));

    // Nothing left after the drop.
    let trace = hosts.trace();
    assert_eq!(trace.containers.len(), 3);
    assert_eq!(trace.netns.len(), 5, "{:?}", trace.netns);
    let t = Instant::now();
    drop(hosts);
    println!("teardown: {}", ms(t.elapsed()));
    let left = trace.leftovers();
    assert!(left.is_empty(), "left after teardown: {left:#?}");
}

/// The watchdog: a test that hangs past its harness's bound (here a child process of
/// this binary running `hangs_past_its_bound`, bound 15 s) is torn down and aborted,
/// loudly, leaving nothing behind.
#[test]
fn watchdog_ends_a_hung_test() {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    use std::process::{Command, Stdio};

    let started = Instant::now();
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "hangs_past_its_bound", "--ignored", "--test-threads=1"])
        .env("HHL_MULTIHOST_HANG", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // The abort is expected: no core file in the source tree.
    // SAFETY: setrlimit is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            let none = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::setrlimit(libc::RLIMIT_CORE, &none) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let pid = child.id();
    let deadline = started + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the hung child still ran after 120 s: its watchdog did not end it");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("the hung child (bound 15 s) ended after {}", ms(took));
    for line in stderr.lines().filter(|l| l.contains("watchdog")) {
        println!("  child: {line}");
    }
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "the hung child was not aborted: {}\nstdout: {}\nstderr: {stderr}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr.contains("multihost watchdog"),
        "no word from the watchdog: {stderr}"
    );
    assert!(took >= Duration::from_secs(15), "aborted before its bound: {took:?}");
    let left = support::multihost::leftovers_of_process(pid);
    assert!(left.is_empty(), "left by the aborted child: {left:#?}");
}

/// Run only by `watchdog_ends_a_hung_test`, in a child process: boots a host, then
/// hangs past the harness's bound of 15 s.
#[test]
#[ignore = "run by watchdog_ends_a_hung_test in a process of its own"]
fn hangs_past_its_bound() {
    if std::env::var_os("HHL_MULTIHOST_HANG").is_none() {
        return;
    }
    let hosts = Hosts::boot_within(1, Duration::from_secs(15));
    hosts.host(1).ok("true");
    std::thread::sleep(Duration::from_secs(600));
}
