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
//! retry after healing. Each fault's time to detection and to convergence is printed.

mod support;

use std::time::{Duration, Instant};

use support::container::CFG;
use support::multihost::{Hosts, LAPTOP};
use support::{example_yaml, Run};

const IDS: [&str; 4] = ["dev1", "dev2", "dev3", "lead"];

/// The laptop's ssh as `id`, host keys pinned (the harness's known_hosts).
fn ssh(id: &str) -> String {
    format!(
        "ssh -i /root/keys/{id} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes \
         -o UserKnownHostsFile=/root/known_hosts -o ConnectTimeout=5 -o LogLevel=ERROR"
    )
}

fn on_laptop(hs: &Hosts, id: &str, host: usize, command: &str) -> Run {
    hs.laptop.sh(&format!("{} hhl@10.77.0.{host} {command}", ssh(id)))
}

/// In `id`'s clone of socketserver on the laptop (cloned from the primary): make
/// main.lua say `text`, commit, push HEAD to `branch` on `host`.
fn push(hs: &Hosts, id: &str, host: usize, branch: &str, text: &str) -> Run {
    hs.laptop.sh(&format!(
        "mkdir -p /root/{id} && cd /root/{id} && \
         {{ [ -d socketserver ] || git clone -q --config core.sshCommand='{s}' hhl@10.77.0.1:socketserver 2>&1; }} && \
         cd socketserver && git config user.name {id} && git config user.email {id}@pc && \
         printf 'ngx.say(\"{text}\")\\n' > main.lua && git add -A && git commit -qm '{text}' && \
         git push hhl@10.77.0.{host}:socketserver HEAD:{branch} 2>&1",
        s = ssh(id)
    ))
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

#[test]
fn three_hosts_one_config() {
    let t0 = Instant::now();
    let hs = Hosts::boot(3);
    println!("booted 3 hosts and the laptop in {}", secs(hs.boot_time));
    let (h1, h2, h3) = (hs.host(1), hs.host(2), hs.host(3));

    // Day one: the developers' keys (on the laptop), the primary's peer key, one
    // hhl.yaml for all three, applied by each host itself.
    hs.laptop.ok(&format!(
        "mkdir -p keys && for id in {}; do ssh-keygen -q -t ed25519 -N '' -C $id@pc -f keys/$id; done",
        IDS.join(" ")
    ));
    std::fs::write(hs.laptop.home.join("known_hosts"), hs.known_hosts()).unwrap();
    let mut keys = String::from("keys:\n");
    for id in IDS {
        let public = hs.laptop.ok(&format!("cat keys/{id}.pub"));
        keys.push_str(&format!("  {id}: [\"{}\"]\n", public.trim()));
    }
    h1.write(CFG, "developers: []\nservers: {}\n");
    let peer_key = h1.ok("hhlctl hosts key").trim().to_string();
    assert!(peer_key.starts_with("ssh-ed25519 "), "{peer_key}");
    let mut yaml = example_yaml().replace("admins: []", "admins: [lead]") + &keys + "hosts:\n";
    for h in hs.hosts() {
        yaml.push_str(&format!(
            "  - name: {}\n    address: {}\n    host_key: {}\n",
            h.name, h.addr, h.host_key
        ));
        if h.node == 1 {
            yaml.push_str(&format!("    primary: true\n    peer_key: {peer_key}\n"));
        }
    }
    yaml.push_str("placement:\n  dev2: hhl2\n  dev3: hhl3\n");
    std::thread::scope(|s| {
        for h in hs.hosts() {
            let yaml = &yaml;
            s.spawn(move || {
                h.write(CFG, yaml);
                let r = h.sh("hhlctl apply && hhlctl repo init");
                assert_eq!(r.code, 0, "{}: apply, repo init:\n{}\n{}", h.name, r.stdout, r.stderr);
            });
        }
    });
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

    // An apply while hhl3 is cut off: hhl2 applies, hhl3 is named and owed.
    let r = h1.sh("systemctl start hhl-apply.service; cat /run/hhl-apply.log");
    assert!(r.stdout.contains("host hhl2: applied"), "{}", r.stdout);
    assert!(r.stdout.contains("host hhl3: NOT applied"), "{}", r.stdout);
    assert_eq!(h1.sh("systemctl is-failed hhl-apply.service").stdout.trim(), "failed");
    assert!(h1.ok("cat /var/lib/hhl/peer/owed.json").contains("hhl3"));

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
    let applied: Vec<String> = hs
        .hosts()
        .iter()
        .map(|h| h.ok("cat /var/lib/hhl/serverctrl.applied"))
        .collect();
    assert!(applied.iter().all(|a| *a == applied[0]), "{applied:?}");
    assert_eq!(hs.on(LAPTOP, "true").code, 0);
    println!("whole test: {}", secs(t0.elapsed()));
}
