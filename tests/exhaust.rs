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

/// `r`'s output (a script that goes on after the refused command) says `want`.
#[track_caller]
fn refused_ok(r: &Run, want: &str) {
    assert!(r.stdout.contains(want), "wanted `{want}` in:\n{}", r.stdout);
}

#[track_caller]
fn refused(r: &Run, want: &str) {
    let all = format!("{}{}", r.stdout, r.stderr);
    assert_ne!(r.code, 0, "not refused:\n{all}");
    assert!(all.contains(want), "wanted `{want}` in:\n{all}");
}

/// Everything in /tmp, with sizes: what a push must not touch (the instances'
/// private tmp directories are theirs). (The container's /var/tmp is the host's,
/// where other tests come and go.)
fn tmp_listing(c: &Container) -> String {
    c.ok("find /tmp -xdev -printf '%p %s\\n' | grep -v systemd-private- | sort")
}

#[test]
fn a_developer_cannot_exhaust_disk_tmp_or_read_hidden_objects() {
    let c = server();
    let r = entry::push_lua(&c, "lead", "master", "master-v1", "");
    assert_eq!(r.code, 0, "{}", r.stdout);
    git(&c, "dev2", "git fetch -q origin && git reset -q --hard origin/master");
    let r = entry::push_lua(&c, "dev2", "dev2", "dev2-v1", "");
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

    // Nor by pushing a tree that names dev2's file by its id without bringing it (git's
    // own connectivity check counts dev2's branch), to fetch it back: a push crafted
    // by hand, since git's client will not send what it lacks.
    let blob = c.ok("runuser -u hhl -- git --git-dir=/srv/git/socketserver.git rev-parse dev2:main.lua");
    let r = git(
        &c,
        "dev1",
        &format!(
            "t=$(printf '100644 blob %s\tmain.lua\n' {blob} | git mktree --missing) && n=$(git commit-tree $t -p HEAD -m steal) && \
             printf '%s\n%s\n' $n $t | git pack-objects -q --stdout > /root/steal.pack && \
             {{ printf '%04x%s %s %s' 116 0000000000000000000000000000000000000000 $n refs/heads/dev1; printf '\\000report-status\\n0000'; cat /root/steal.pack; }} \
             | {} hhl@127.0.0.1 \"git-receive-pack 'socketserver'\"",
            entry::ssh_cmd("dev1"),
            blob = blob.trim()
        ),
    );
    assert!(
        r.stdout.contains("object(s) it does not bring and you may not read"),
        "{}",
        r.stdout
    );
    let dev1_refs = c.ok("runuser -u hhl -- git --git-dir=/srv/git/socketserver.git for-each-ref refs/heads/dev1");
    assert_eq!(dev1_refs.trim(), "", "the crafted push moved dev1's branch");

    // The anchor, in the same run: a one-file push the hook refuses (a symbolic link),
    // so ssh, git and the hook's start cost the same; the million files may add at
    // most a second to that.
    let anchor = git(
        &c,
        "dev1",
        "ln -s /etc/passwd l.lua && git add l.lua && git commit -qm l \
         && s=$(date +%s%N); git push origin HEAD:dev1; echo \"took=$(( ($(date +%s%N) - s) / 1000000 ))\"; git reset -q --hard origin/master",
    );
    refused_ok(&anchor, "`l.lua` is a symbolic link");
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
    let r = git(
        &c,
        "dev1",
        "s=$(date +%s%N); git push origin HEAD:dev1; echo \"took=$(( ($(date +%s%N) - s) / 1000000 ))\"",
    );
    let took = started.elapsed();
    assert!(
        r.stdout.contains(
            "the tree that would deploy holds more than 10000 files; the limit is 10000 (git.max_files in hhl.yaml)"
        ),
        "{}",
        r.stdout
    );
    let ms = |r: &Run| -> u64 {
        r.stdout
            .lines()
            .find_map(|l| l.strip_prefix("took="))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no time in {}", r.stdout))
    };
    let (million, one) = (ms(&r), ms(&anchor));
    println!("push refused: a million files {million} ms, one link {one} ms (whole call {took:?})");
    assert!(
        million < one + 1000,
        "the million-file push took {million} ms to refuse, a one-file refused push {one} ms"
    );
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
    let r = entry::push_lua(&c, "dev2", "dev2", "dev2-v2", "");
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert_eq!(c.get_hhl(1082), "dev2-v2\n");
    let r = entry::push_lua(&c, "lead", "master", "master-v2", "");
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

/// dev1's code writes as much as it can into nginx's logs/ and temp/, /tmp, /var/tmp
/// and /dev/shm: each is a tmpfs of limits.dev1.disk, so the writes stop there with
/// ENOSPC (which the code logs, and the journal keeps), the root file system and the
/// host's /dev/shm do not move, and dev2 is served throughout with its own scratch
/// space intact. And nothing else is writable: every read-write mount the instance
/// sees is a bounded tmpfs or a kernel interface.
#[test]
fn an_instance_fills_its_own_disk_bound_and_nothing_else() {
    let c = Container::applied(&example_yaml().replace("dev1: {cpu: 150%}", "dev1: {cpu: 150%, disk: 8M}"));
    let fill = r#"
if ngx.var.arg_mounts then
  local m = assert(io.open("/proc/self/mountinfo"))
  ngx.print(m:read("*a"))
  m:close()
  return
end
local dir = ngx.var.arg_dir
local f = assert(io.open(dir .. "/fill", "w"))
f:setvbuf("no")
local chunk, n, err = string.rep("x", 1024 * 1024), 0, nil
while n < 64 do
  local ok, e = f:write(chunk)
  if not ok then err = e break end
  n = n + 1
end
f:close()
ngx.log(ngx.ERR, "fill ", dir, ": ", n, " MiB, then ", tostring(err))
ngx.say(n, " ", tostring(err))
"#;
    for dev in ["dev1", "dev2"] {
        c.write(&format!("/opt/hhl/socketserver/{dev}/src/main.lua"), fill);
    }
    let root_before: u64 = c.ok("df --output=used -B1 / | tail -1").trim().parse().unwrap();
    let shm_before = c.ok("df --output=used -B1 /dev/shm | tail -1");
    let temp = "/opt/hhl/socketserver/dev1/temp";
    let logs = "/opt/hhl/socketserver/dev1/logs";
    for dir in ["/tmp", "/var/tmp", temp, logs, "/dev/shm"] {
        let out = c.ok(&format!("curl -s -m 20 'http://127.0.0.1:1081/hhl?dir={dir}'"));
        let Some((n, err)) = out.trim().split_once(' ').filter(|(n, _)| n.parse::<u64>().is_ok()) else {
            panic!(
                "{dir}: {out}\n{}\n{}",
                c.ok("journalctl -q -u openresty@socketserver-dev1.service --no-pager | tail -20"),
                c.ok("systemctl cat openresty@socketserver-dev1.service | grep -i -e tmp -e ReadWrite")
            );
        };
        let n: u64 = n.parse().unwrap();
        assert!(n <= 8, "dev1 wrote {n} MiB into {dir}, past its 8M bound: {out}");
        assert!(err.contains("No space left on device"), "{dir}: {out}");
        // dev2 is served while dev1's bound is full, and writes its own scratch.
        let own = dir.replace("/dev1/", "/dev2/");
        let theirs = c.ok(&format!("curl -s -m 20 'http://127.0.0.1:1082/hhl?dir={own}'"));
        assert!(
            theirs.trim().starts_with("64 nil") || theirs.contains("No space"),
            "{dir}: {theirs}\n{}",
            c.ok("journalctl -q -u openresty@socketserver-dev2.service --no-pager | tail -20")
        );
    }
    let root_after: u64 = c.ok("df --output=used -B1 / | tail -1").trim().parse().unwrap();
    assert!(
        root_after < root_before + (16 << 20),
        "the root file system grew by {} bytes",
        root_after - root_before
    );
    assert_eq!(
        c.ok("df --output=used -B1 /dev/shm | tail -1"),
        shm_before,
        "the host's /dev/shm grew"
    );
    // Nothing else the instance could write to: each read-write mount in its
    // namespace is a tmpfs of at most the bound, or a kernel interface.
    let mounts = c.ok("curl -s -m 20 'http://127.0.0.1:1081/hhl?mounts=1'");
    let unbounded = unbounded_writable_mounts(&mounts, 8 << 20);
    assert!(mounts.contains(" - tmpfs "), "{mounts}");
    assert!(
        unbounded.is_empty(),
        "writable beyond the bound: {unbounded:#?}\n{mounts}"
    );
    // The journal says where the bound was hit.
    let journal = c.ok("journalctl -q -u openresty@socketserver-dev1.service --no-pager | grep 'fill /tmp'");
    assert!(journal.contains("No space left on device"), "{journal}");
    // Nothing of it on the host's /tmp, or in dev1's temp/ as the host sees it.
    assert_eq!(c.ok("find /tmp /var/tmp -name fill | wc -l").trim(), "0");
    for dir in [temp, logs] {
        assert_eq!(c.ok(&format!("find {dir} -name fill | wc -l")).trim(), "0");
    }
    // Still as hardened by systemd's own measure (tests/access.rs holds every unit to 2.0).
    let out = c.ok("systemd-analyze security --no-pager openresty@socketserver-dev1.service | tail -1");
    let score: f64 = out
        .split("exposure level for")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no score in {out:?}"));
    println!("exposure of openresty@socketserver-dev1.service: {score}");
    assert!(score <= 2.0, "exposure {score}");
    // dev1 restarts (its tmpfs is new) and serves again.
    c.ok("systemctl restart openresty@socketserver-dev1.service");
    let out = c.ok("curl -s -m 20 'http://127.0.0.1:1081/hhl?dir=/tmp'");
    assert!(out.starts_with('7') || out.starts_with('8'), "{out}");
}

/// dev1's code fills its Redis: past limits.dev1.redis every write gets Redis's OOM
/// error (and the application user cannot raise the bound), so what Redis writes to
/// disk stays about that size, while dev2's Redis takes writes as before.
#[test]
fn a_developers_redis_holds_its_bound_and_says_so() {
    let c = Container::applied(&example_yaml().replace("dev1: {cpu: 150%}", "dev1: {cpu: 150%, redis: 16M}"));
    let cli = |owner: &str, port: u16, args: &str| {
        c.sh(&format!(
            "redis-cli --no-auth-warning -p {port} -a \"$(cat /var/lib/hhl/redis/{owner}.secret)\" {args} 2>&1"
        ))
        .stdout
    };
    // Random, so the RDB's compression keeps its size.
    c.ok("head -c 1048576 /dev/urandom | base64 -w0 | head -c 1048576 > /root/mib");
    let mut replies = Vec::new();
    for i in 0..40 {
        replies.push(cli("dev1", 6381, &format!("-x set k{i} < /root/mib")));
    }
    let oks = replies.iter().filter(|r| r.trim() == "OK").count();
    assert!(
        (8..=16).contains(&oks),
        "{oks} MiB written under a 16M bound: {replies:?}"
    );
    let refused = replies.last().unwrap();
    assert!(
        refused.contains("OOM command not allowed when used memory > 'maxmemory'"),
        "{refused}"
    );
    assert!(cli("dev1", 6381, "config set maxmemory 0").contains("NOPERM"));
    // Reads still work, and another owner's Redis is not bound by dev1's.
    assert_eq!(cli("dev1", 6381, "strlen k0").trim(), "1048576");
    assert_eq!(cli("dev2", 6382, "-x set big < /root/mib").trim(), "OK");
    for i in 0..40 {
        assert_eq!(cli("dev2", 6382, &format!("-x set k{i} < /root/mib")).trim(), "OK");
    }
    // What reaches the disk: the RDB written at the stop.
    c.ok("systemctl restart redis@6381.service");
    let bytes: u64 = c.ok("du -sb /opt/redis/var/6381 | cut -f1").trim().parse().unwrap();
    assert!(bytes > 4 << 20 && bytes < 20 << 20, "dev1's Redis wrote {bytes} bytes");
}

/// The read-write mounts of a /proc/PID/mountinfo that are neither a tmpfs of at most
/// `bound` bytes nor a kernel interface (proc, devpts, mqueue): `mountpoint fstype
/// options`.
fn unbounded_writable_mounts(mountinfo: &str, bound: u64) -> Vec<String> {
    let size = |opts: &str| -> Option<u64> {
        let v = opts.split(',').find_map(|o| o.strip_prefix("size="))?;
        let (n, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len()));
        let mult = match unit {
            "" => 1,
            "k" => 1 << 10,
            "m" => 1 << 20,
            "g" => 1 << 30,
            _ => return None,
        };
        Some(n.parse::<u64>().ok()? * mult)
    };
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let f: Vec<&str> = left.split(' ').collect();
            let (point, opts) = (*f.get(4)?, *f.get(5)?);
            let r: Vec<&str> = right.split(' ').collect();
            let (fstype, super_opts) = (*r.first()?, *r.get(2).unwrap_or(&""));
            if !opts.split(',').any(|o| o == "rw") || super_opts.split(',').any(|o| o == "ro") {
                return None;
            }
            // systemd-nspawn's own, under a read-only /run/host mounted over them (the
            // test's host is a container; a real host has no /run/host).
            if point.starts_with("/run/host/") {
                return None;
            }
            let bounded = match fstype {
                "proc" | "devpts" | "mqueue" => true,
                "tmpfs" => size(super_opts).is_some_and(|s| s <= bound),
                _ => false,
            };
            (!bounded).then(|| format!("{point} {fstype} {super_opts}"))
        })
        .collect()
}

#[test]
fn writable_mounts_are_read_from_mountinfo() {
    let info = "\
30 1 0:26 / / ro,relatime - overlay overlay rw,lowerdir=/a
31 30 0:5 / /dev rw,nosuid - tmpfs tmpfs rw,size=4096k,mode=755
32 31 0:28 / /dev/shm rw,nosuid,nodev - tmpfs tmpfs rw,size=1012348k
33 30 0:29 / /tmp rw,nosuid,nodev - tmpfs tmpfs rw,size=8192k,mode=1777
34 30 0:30 / /opt/x/logs rw - ext4 /dev/vda rw
35 30 0:31 / /proc rw,nosuid - proc proc rw
";
    assert_eq!(
        unbounded_writable_mounts(info, 8 << 20),
        ["/dev/shm tmpfs rw,size=1012348k", "/opt/x/logs ext4 rw"]
    );
}
