//! `hhlctl move`, for real: three systemd hosts and a laptop (support/multihost.rs),
//! hhl1 the primary, dev2 placed on hhl2 and dev3 on hhl3.
//!
//! Cases, in one boot: the refusals that change nothing (unknown owner or host, already
//! there, not the primary, a host that does not answer); dev2 moved from hhl2 to hhl3
//! with 1001 keys in its Redis and its code (the same port, the same secret, its
//! instances running on hhl3 and none on hhl2, its old data left there and named);
//! a move of dev1 off the primary killed right after its placement commit, during which
//! the primary refuses to restart dev1, then rerun: it resumes at `apply` and the
//! commit is made once; dev3 coming to the primary, killed after its import, given up
//! (running on hhl3 again), killed there again, then rerun: it takes the data again
//! and finds it in place. Each move's step times are
//! printed.

mod support;

use std::time::{Duration, Instant};

use support::multihost::{Host, Hosts};
use support::{example_yaml, Run};

const IDS: [&str; 4] = ["dev1", "dev2", "dev3", "lead"];

fn on_laptop(hs: &Hosts, id: &str, host: usize, command: &str) -> Run {
    hs.laptop.ssh(id, host, command)
}

/// `id` pushes main.lua saying `text` to their branch through the primary.
fn push(hs: &Hosts, id: &str, text: &str) -> Run {
    hs.laptop.push_lua(id, 1, id, text)
}

/// `n` keys `key:1`..`key:n` with values `value-1`.. in the Redis on `port` of
/// `owner`, with its secret, on `h`.
fn fill(h: &Host, owner: &str, port: u16, n: usize) {
    h.ok(&format!(
        "s=$(cat /var/lib/hhl/redis/{owner}.secret); i=1; while [ $i -le {n} ]; do echo \"SET key:$i value-$i\"; i=$((i+1)); done \
         | REDISCLI_AUTH=$s redis-cli -p {port} >/dev/null && REDISCLI_AUTH=$s redis-cli -p {port} DBSIZE | grep -qx {n}"
    ));
}

fn commits(h: &Host) -> usize {
    h.ok("git --git-dir=/srv/git/serverctrl.git rev-list --count master")
        .trim()
        .parse()
        .unwrap()
}

fn active(h: &Host, unit: &str) -> String {
    h.sh(&format!("systemctl is-active {unit}")).stdout.trim().to_string()
}

/// The `step times:` block of a move's report.
fn step_times(out: &str) -> String {
    out.lines()
        .skip_while(|l| !l.starts_with("step times:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(", ")
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

#[test]
fn an_owner_moves_with_its_redis_and_a_killed_move_resumes() {
    let t0 = Instant::now();
    let hs = Hosts::boot_within(3, Duration::from_secs(600));
    println!("booted 3 hosts and the laptop in {}", secs(hs.boot_time));
    let (h1, h2, h3) = (hs.host(1), hs.host(2), hs.host(3));
    let base = example_yaml().replace("admins: []", "admins: [lead]");
    hs.day_one(&base, &IDS, "placement:\n  dev2: hhl2\n  dev3: hhl3\n");
    // What docs/ops/hosts.md's step 6 does: serverctrl's commit applied everywhere.
    let r = h1.sh("systemctl start hhl-apply.service; cat /run/hhl-apply.log");
    assert_eq!(r.stdout.matches(": applied in").count(), 2, "{}{}", r.stdout, r.stderr);
    println!("day one done at {}", secs(t0.elapsed()));

    // Refusals that change nothing.
    for (args, want) in [
        (
            "move dev9 --to hhl3",
            "`dev9` is not an owner in hhl.yaml (the owners are master, dev1, dev2, dev3, dev4)",
        ),
        (
            "move dev2 --to hhl9",
            "no host `hhl9` in hhl.yaml (the hosts are hhl1, hhl2, hhl3)",
        ),
        ("move dev2 --to hhl2", "dev2 already runs on hhl2"),
        ("move dev2 --abandon", "no move of dev2 is under way"),
    ] {
        let r = h1.sh(&format!("hhlctl {args}"));
        assert_eq!(r.code, 1, "{args}: {}{}", r.stdout, r.stderr);
        assert!(r.stderr.contains(want), "{args}: {}", r.stderr);
    }
    let r = h2.sh("hhlctl move dev2 --to hhl3");
    assert!(
        r.code == 1
            && r.stderr
                .contains("this is host hhl2; moves run on the primary, hhl1 (10.77.0.1)"),
        "{}",
        r.stderr
    );

    // dev2's Redis on hhl2: 1000 keys with its secret there, one through the primary.
    fill(h2, "dev2", 6382, 1000);
    let r = on_laptop(&hs, "dev2", 1, "'redis SET greeting \"hello from hhl2\"'");
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let r = push(&hs, "dev2", "dev2 code");
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(h2.get_hhl(1082), "dev2 code\n");
    let secret = h2.ok("cat /var/lib/hhl/redis/dev2.secret");
    assert_ne!(
        secret,
        h3.ok("cat /var/lib/hhl/redis/dev2.secret"),
        "each host made its own"
    );
    let before = commits(h1);

    // A host that does not answer: named, and nothing changed.
    hs.isolate(3);
    let t = Instant::now();
    let r = h1.sh("hhlctl move dev2 --to hhl3");
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("host hhl3 (10.77.0.3) does not answer"),
        "{}",
        r.stderr
    );
    println!("hhl3 cut off: the move was refused in {}", secs(t.elapsed()));
    hs.rejoin(3);
    assert_eq!(h1.sh("test -e /var/lib/hhl/peer/move-dev2.json").code, 1);
    assert_eq!(active(h2, "redis@6382.service"), "active");
    assert_eq!(commits(h1), before);

    // The move, as docs/ops/hosts.md says it.
    let step = support::blocks("docs/ops/hosts.md", "sh tested-move");
    assert_eq!(
        step,
        vec!["hhlctl move dev2 --to hhl3\n".to_string()],
        "the page's move step"
    );
    let t = Instant::now();
    let r = h1.sh(&step[0]);
    println!("{}", r.stdout);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    println!(
        "moved dev2 hhl2 -> hhl3 in {}; steps: {}",
        secs(t.elapsed()),
        step_times(&r.stdout)
    );
    for want in [
        "moved dev2 from hhl2 to hhl3",
        "the same out of hhl2 and into hhl3",
        "left on hhl2 (not deleted",
        "/opt/redis/var/6382  dev2's Redis data as it was",
        "/var/lib/hhl/move/dev2.bundle  the copy that moved",
        "/opt/hhl/socketserver/dev2  socketserver-dev2's releases and files",
        "dev2's Redis answers on hhl3 with 1001 keys (1001 on hhl2 before the move)",
    ] {
        assert!(r.stdout.contains(want), "no `{want}` in:\n{}", r.stdout);
    }
    // The data, on the same port, reached as before through the primary.
    let r = on_laptop(&hs, "dev2", 1, "redis DBSIZE");
    assert_eq!(r.stdout.trim(), "(integer) 1001", "{}", r.stderr);
    for (key, value) in [
        ("key:1", "value-1"),
        ("key:500", "value-500"),
        ("key:1000", "value-1000"),
    ] {
        let r = on_laptop(&hs, "dev2", 1, &format!("redis GET {key}"));
        assert_eq!(r.stdout.trim(), format!("\"{value}\""), "{key}: {}", r.stderr);
    }
    let r = on_laptop(&hs, "dev2", 1, "redis GET greeting");
    assert_eq!(r.stdout.trim(), "\"hello from hhl2\"");
    assert_eq!(h3.ok("cat /var/lib/hhl/redis/dev2.secret"), secret, "the secret moved");
    assert!(h3.ok("ss -Hltn 'sport = :6382'").contains("127.0.0.1:6382"));
    // Its instances run on hhl3 and answer; none runs on hhl2, nor starts with it.
    for unit in [
        "redis@6382.service",
        "openresty@socketserver-dev2.service",
        "openresty@dtserver-dev2.service",
    ] {
        assert_eq!(active(h3, unit), "active", "{unit} on hhl3");
        assert_ne!(active(h2, unit), "active", "{unit} on hhl2");
        assert_ne!(
            h2.sh(&format!("systemctl is-enabled {unit}")).stdout.trim(),
            "enabled",
            "{unit} on hhl2"
        );
    }
    assert_eq!(h3.get_hhl(1082), "dev2 code\n");
    // The old data is left, as reported.
    h2.ok("test -s /opt/redis/var/6382/6382.rdb && test -s /var/lib/hhl/move/dev2.bundle");
    // One commit, applied everywhere; the journal is gone.
    assert_eq!(commits(h1), before + 1);
    let applied: Vec<String> = hs
        .hosts()
        .iter()
        .map(|h| h.ok("cat /var/lib/hhl/serverctrl.applied"))
        .collect();
    assert!(applied.iter().all(|a| *a == applied[0]), "{applied:?}");
    for h in hs.hosts() {
        assert!(h.ok("cat /etc/hhl/hhl.yaml").contains("\n  dev2: hhl3\n"), "{}", h.name);
    }
    assert_eq!(h1.sh("test -e /var/lib/hhl/peer/move-dev2.json").code, 1);
    let r = h1.sh("hhlctl move dev2 --to hhl3");
    assert!(
        r.code == 1 && r.stderr.contains("dev2 already runs on hhl3"),
        "{}",
        r.stderr
    );

    // A move killed right after its placement commit, then run again. dev1 leaves the
    // primary: its data goes out of hhl1 itself and into hhl2 through the peer.
    fill(h1, "dev1", 6381, 100);
    let before = commits(h1);
    let t = Instant::now();
    let r = h1.sh("HHL_FAULT=move:commit hhlctl move dev1 --to hhl2");
    assert_ne!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let killed = t.elapsed();
    let journal = h1.ok("cat /var/lib/hhl/peer/move-dev1.json");
    assert!(journal.contains("\"step\": \"commit\""), "{journal}");
    assert_eq!(commits(h1), before + 1);
    // Meanwhile the primary leaves dev1's instances alone.
    let r = on_laptop(&hs, "dev1", 1, "restart");
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("dev1 is being moved from hhl1 to hhl2"),
        "{}",
        r.stderr
    );
    let t = Instant::now();
    let r = h1.sh("hhlctl move dev1 --to hhl2");
    println!("{}", r.stdout);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains(
            "resuming the move of dev1 from hhl1 to hhl2 (steps done: stop, export, import, commit) at `apply`"
        ),
        "{}",
        r.stdout
    );
    println!(
        "dev1 hhl1 -> hhl2: killed after its commit at {}, the rerun finished in {}; steps: {}",
        secs(killed),
        secs(t.elapsed()),
        step_times(&r.stdout)
    );
    assert_eq!(commits(h1), before + 1, "the placement commit was made once");
    let r = on_laptop(&hs, "dev1", 1, "redis DBSIZE");
    assert_eq!(r.stdout.trim(), "(integer) 100", "{}", r.stderr);
    assert_eq!(active(h2, "redis@6381.service"), "active");
    assert_ne!(active(h1, "redis@6381.service"), "active");
    assert!(r.stderr.is_empty(), "{}", r.stderr);

    // A move killed before its placement commit: the rerun takes the data again (the
    // old host may have run it meanwhile), finds it the same, already in place. dev3
    // comes to the primary: its data out of hhl3 through the peer, into hhl1 itself.
    fill(h3, "dev3", 6383, 10);
    let r = push(&hs, "dev3", "dev3 code");
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let before = commits(h1);
    let r = h1.sh("HHL_FAULT=move:import hhlctl move dev3 --to hhl1");
    assert_ne!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(active(h3, "redis@6383.service"), "inactive");
    // Another target is refused while it is under way; given up, dev3 runs on hhl3 again.
    let r = h1.sh("hhlctl move dev3 --to hhl2");
    assert!(
        r.code == 1
            && r.stderr
                .contains("a move of dev3 from hhl3 to hhl1 is under way (steps done: stop, export, import)")
            && r.stderr.contains("`hhlctl move dev3 --abandon`"),
        "{}",
        r.stderr
    );
    let r = h1.sh("hhlctl move dev3 --abandon");
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("gave up the move of dev3 to hhl1: its instances run on hhl3 again"),
        "{}",
        r.stdout
    );
    assert_eq!(active(h3, "redis@6383.service"), "active");
    assert_eq!(h1.sh("test -e /var/lib/hhl/peer/move-dev3.json").code, 1);
    let r = h1.sh("HHL_FAULT=move:import hhlctl move dev3 --to hhl1");
    assert_ne!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(commits(h1), before, "killed before its commit");
    let t = Instant::now();
    let r = h1.sh("hhlctl move dev3 --to hhl1");
    println!("{}", r.stdout);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    for want in [
        "(steps done: stop, export, import) at `stop`: the data is taken again",
        "already in place on hhl1",
        "dev3's Redis answers on hhl1 with 10 keys",
    ] {
        assert!(r.stdout.contains(want), "no `{want}` in:\n{}", r.stdout);
    }
    println!(
        "dev3 hhl3 -> hhl1: killed after its import, the rerun finished in {}; steps: {}",
        secs(t.elapsed()),
        step_times(&r.stdout)
    );
    assert_eq!(commits(h1), before + 1);
    assert_eq!(h1.get_hhl(1083), "dev3 code\n");
    assert_eq!(active(h1, "redis@6383.service"), "active");
    assert_ne!(active(h3, "redis@6383.service"), "active");
    println!("whole test: {}", secs(t0.elapsed()));
}
