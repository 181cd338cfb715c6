//! Shared resources one developer must not exhaust, played by that developer through
//! the only door (real sshd, real git over ssh, real keys, in a real systemd): pushes
//! that would cost the disk, /tmp or inodes are refused from git's own listing before
//! anything is written, naming the limit and its hhl.yaml key; with sshd passing
//! GIT_PROTOCOL (protocol v2), another developer's commit cannot be fetched by its id;
//! and dev2 is served throughout.

mod support;

use std::time::Instant;

use support::container::{Container, CFG};
use support::entry;
use support::{example_yaml, Run};

const IDS: [&str; 3] = ["dev1", "dev2", "lead"];

/// The example with keys, small size limits (the file count keeps its default), sshd
/// passing GIT_PROTOCOL as the usual advice for protocol v2 says, clones made.
fn server() -> Container {
    let c = Container::boot();
    let yaml = example_yaml().replace("admins: []", "admins: [lead]")
        + &entry::keys_yaml(&c, &IDS)
        + "git: {max_object_size: 64K, max_unpacked_size: 96K, max_branch_size: 256K}\n";
    c.write(CFG, &yaml);
    let r = c.sh("hhlctl apply && hhlctl repo init");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    c.deploy_lua();
    c.ok("echo 'AcceptEnv GIT_PROTOCOL' >> /etc/ssh/sshd_config");
    entry::start_sshd(&c);
    let accepted = c.ok("sshd -T | grep -i '^acceptenv'");
    assert!(accepted.contains("GIT_PROTOCOL"), "sshd: {accepted}");
    for id in IDS {
        let r = entry::in_clone(&c, id, "socketserver", "git config protocol.version 2");
        assert_eq!(r.code, 0, "{}", r.stdout);
    }
    c
}

fn git(c: &Container, id: &str, script: &str) -> Run {
    entry::in_clone(c, id, "socketserver", script)
}

fn push_lua(c: &Container, id: &str, branch: &str, text: &str) -> Run {
    git(
        c,
        id,
        &format!("printf 'ngx.say(\"{text}\")\\n' > main.lua && git add -A && git commit -qm {text} && git push origin HEAD:{branch}"),
    )
}

#[track_caller]
fn refused(r: &Run, want: &str) {
    let all = format!("{}{}", r.stdout, r.stderr);
    assert_ne!(r.code, 0, "not refused:\n{all}");
    assert!(all.contains(want), "wanted `{want}` in:\n{all}");
}

/// Everything in /tmp (and /var/tmp), with sizes: what a push must not touch (the
/// instances' private tmp directories are theirs).
fn tmp_listing(c: &Container) -> String {
    c.ok("find /tmp /var/tmp -xdev -printf '%p %s\\n' | grep -v systemd-private- | sort")
}

#[test]
fn a_developer_cannot_exhaust_disk_tmp_or_read_hidden_objects() {
    let c = server();
    let r = push_lua(&c, "lead", "master", "master-v1");
    assert_eq!(r.code, 0, "{}", r.stdout);
    git(&c, "dev2", "git fetch -q origin && git reset -q --hard origin/master");
    let r = push_lua(&c, "dev2", "dev2", "dev2-v1");
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert_eq!(c.get_hhl(1082), "dev2-v1\n");
    let dev2_commit = c.ok("runuser -u hhl -- git --git-dir=/srv/git/socketserver.git rev-parse refs/heads/dev2");
    let dev2_commit = dev2_commit.trim();
    let r = git(&c, "dev1", "git fetch -q origin && git reset -q --hard origin/master");
    assert_eq!(r.code, 0, "{}", r.stdout);
    let refs = c.ok("runuser -u hhl -- git --git-dir=/srv/git/socketserver.git for-each-ref");

    // Protocol v2 is what dev1's client asks for, and sshd passes it on: still, dev2's
    // commit is not dev1's to fetch by its id.
    let r = git(&c, "dev1", &format!("git fetch origin {dev2_commit}"));
    assert_ne!(r.code, 0, "dev1 fetched dev2's commit: {}", r.stdout);
    assert!(
        [
            "does not allow request for unadvertised object",
            "no matching remote head",
            "not our ref"
        ]
        .iter()
        .any(|m| r.stdout.contains(m)),
        "{}",
        r.stdout
    );
    let r = git(&c, "dev1", &format!("git cat-file -e {dev2_commit}"));
    assert_ne!(r.code, 0, "dev2's commit reached dev1's clone");

    // A million files in a few KB: one blob, a tree of 1000 entries naming it, and a
    // tree of 1000 entries naming that tree. Refused from git's listing, at once, with
    // /tmp untouched.
    let r = git(
        &c,
        "dev1",
        "b=$(echo x | git hash-object -w --stdin) && \
         t=$(for i in $(seq 1000); do printf '100644 blob %s\\tf%s\\n' $b $i; done | git mktree) && \
         top=$(for i in $(seq 1000); do printf '040000 tree %s\\td%s\\n' $t $i; done | git mktree) && \
         c=$(git commit-tree $top -p HEAD -m million) && git reset -q --soft $c && git count-objects -v | grep size",
    );
    assert_eq!(r.code, 0, "{}", r.stdout);
    let tmp_before = tmp_listing(&c);
    let started = Instant::now();
    let r = git(&c, "dev1", "git push origin HEAD:dev1");
    let took = started.elapsed();
    refused(
        &r,
        "the tree that would deploy holds more than 10000 files; the limit is 10000 (git.max_files in hhl.yaml)",
    );
    assert!(took.as_millis() < 1000, "the million-file push took {took:?} to refuse");
    assert_eq!(tmp_listing(&c), tmp_before, "the push touched /tmp");
    assert_eq!(
        c.ok("ls -A /srv/git/socketserver.git/hhl-scratch 2>/dev/null | wc -l")
            .trim(),
        "0",
        "the push left scratch files"
    );
    git(&c, "dev1", "git reset -q --hard origin/master");

    // Files within git.max_object_size each, but too much unpacked together.
    refused(
        &git(
            &c,
            "dev1",
            "head -c 60000 /dev/urandom > a.bin && head -c 60000 /dev/urandom > b.bin && git add -A && git commit -qm two && git push origin HEAD:dev1",
        ),
        "take more than 96K unpacked; the limit is 96K (git.max_unpacked_size in hhl.yaml)",
    );
    git(&c, "dev1", "git reset -q --hard origin/master");

    // History beyond master: each push fits, together they pass git.max_branch_size.
    let mut last = None;
    for n in 0..6 {
        let r = git(
            &c,
            "dev1",
            &format!(
                "head -c 60000 /dev/urandom > a.bin && git add -A && git commit -qm h{n} && git push origin HEAD:dev1"
            ),
        );
        let stop = r.code != 0;
        last = Some(r);
        if stop {
            break;
        }
    }
    refused(
        &last.unwrap(),
        "of history that master has not; the limit is 256K (git.max_branch_size in hhl.yaml)",
    );

    // Nobody else lost anything: dev2's branch and instance, master's; dev2 and an
    // admin push and deploy.
    let now = c.ok("runuser -u hhl -- git --git-dir=/srv/git/socketserver.git for-each-ref");
    let others = |refs: &str| {
        refs.lines()
            .filter(|l| !l.ends_with("refs/heads/dev1"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(others(&now), others(&refs), "other branches moved");
    assert_eq!(c.get_hhl(1082), "dev2-v1\n");
    let r = push_lua(&c, "dev2", "dev2", "dev2-v2");
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert_eq!(c.get_hhl(1082), "dev2-v2\n");
    let r = push_lua(&c, "lead", "master", "master-v2");
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert_eq!(c.get_hhl(1080), "master-v2\n");
    // dev1's own small push still deploys (a new Lua file: checked in the push's
    // private scratch) once the branch is back within its bound.
    let r = git(
        &c,
        "dev1",
        "git reset -q --hard origin/master && printf 'return 1\\n' > lib.lua && git add -A && git commit -qm small && git push -f origin HEAD:dev1",
    );
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(r.stdout.contains("remote: deployed "), "{}", r.stdout);
    assert_eq!(tmp_listing(&c), tmp_before, "a push touched /tmp");
}
