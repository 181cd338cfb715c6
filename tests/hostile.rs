//! A hostile developer, through the only door there is: real sshd, real ssh and git
//! clients holding real keys, in a real systemd. dev1 tries everything against dev2,
//! master and root; each attempt asserts hhlctl's exact refusal AND that nothing moved
//! (refs, files, PIDs). Then dev1's own work and an admin's succeed through the same door.

mod support;

use support::container::{Container, CFG};
use support::entry::{self, ssh, ssh_cmd};
use support::{example_yaml, Run};

const IDS: [&str; 3] = ["dev1", "dev2", "lead"];

/// The example with keys for dev1, dev2 and lead (admin), small push limits, applied,
/// the repositories made, sshd running, and each identity's clone set up.
fn server() -> Container {
    let c = Container::boot();
    let yaml = example_yaml().replace("admins: []", "admins: [lead]")
        + &entry::keys_yaml(&c, &IDS)
        + "git: {max_object_size: 64K, max_push_size: 1M}\n";
    c.write(CFG, &yaml);
    let r = c.sh("hhlctl apply && hhlctl repo init");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    c.deploy_lua();
    entry::start_sshd(&c);
    for id in IDS {
        let r = entry::in_clone(&c, id, "socketserver", "true");
        assert_eq!(r.code, 0, "{}", r.stdout);
    }
    c
}

/// In `id`'s clone of socketserver.
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

fn refs(c: &Container) -> String {
    c.ok("runuser -u hhl -- git --git-dir=/srv/git/socketserver.git for-each-ref; runuser -u hhl -- git --git-dir=/srv/git/serverctrl.git for-each-ref")
}

/// What must not move: refs, hooks and config of every repository, releases, PIDs.
fn snapshot(c: &Container) -> String {
    refs(c)
        + &c.ok("cd /srv/git && find . -path '*/hooks/*' -o -name config | sort | xargs sha256sum")
        + &c.ok("readlink /opt/hhl/socketserver/*/app/current")
        + &c.ok("for u in openresty@socketserver-dev2 openresty@socketserver-master redis@6382; do systemctl show -p MainPID --value $u; done")
        + &c.ok("sha256sum /etc/hhl/hhl.yaml /etc/passwd /etc/polkit-1/rules.d/50-hhl.rules")
}

#[track_caller]
fn refused(r: &Run, want: &str) {
    let all = format!("{}{}", r.stdout, r.stderr);
    assert_ne!(r.code, 0, "not refused:\n{all}");
    assert!(all.contains(want), "wanted `{want}` in:\n{all}");
}

#[test]
fn dev1_reaches_nothing_but_their_own() {
    let c = server();
    // dev2 has a deployed branch to attack.
    let r = push_lua(&c, "dev2", "dev2", "dev2-v1");
    assert_eq!(r.code, 0, "{}", r.stdout);
    let r = push_lua(&c, "lead", "master", "master-v1");
    assert_eq!(r.code, 0, "{}", r.stdout);
    git(&c, "dev1", "git fetch -q origin && git reset -q --hard origin/master");
    let before = snapshot(&c);

    // No shell, no other program, no forwarding.
    refused(&ssh(&c, "dev1", "sh"), "refused: `sh` is not a command here");
    refused(&ssh(&c, "dev1", "'sh -c id'"), "refused: `sh` is not a command here");
    refused(
        &ssh(&c, "dev1", "'git update-ref refs/heads/dev2 HEAD'"),
        "refused: `git` is not a command here",
    );
    refused(
        &ssh(&c, "dev1", "'status; sh'"),
        "refused: `status;` is not a command here",
    );
    let r = ssh(&c, "dev1", "");
    refused(&r, "there is no shell on this account");
    let r = c.sh(&format!(
        "{} -W 127.0.0.1:1082 hhl@127.0.0.1 </dev/null",
        ssh_cmd("dev1")
    ));
    refused(&r, "stdio forwarding failed");

    // One forward is allowed: to the console's loopback address, where the link `ssh
    // hhl web` prints opens. Any other target (dev2's instance and Redis, sshd, the
    // console by another name or family) is refused by sshd, and no remote forward
    // may listen on the server, on a free port or on the one `permitlisten` names.
    c.ok("systemctl start hhl-web.service");
    c.ok("for i in $(seq 300); do curl -s -o /dev/null http://127.0.0.1:8080/login && exit 0; sleep 0.1; done; exit 1");
    // The documented forward (`ssh -N -L`), here on port 18080, held by a control
    // socket so that it can be closed by name.
    let r = c.sh(&format!(
        "timeout 30 {} -f -N -o ExitOnForwardFailure=yes -o ControlMaster=yes -o ControlPath=/root/fwd.sock -L 18080:127.0.0.1:8080 hhl@127.0.0.1",
        ssh_cmd("dev1")
    ));
    assert_eq!(r.code, 0, "dev1's forward to the console:\n{}\n{}", r.stdout, r.stderr);
    let login = c.sh("curl -s -m 10 -o /dev/null -w '%{http_code}' http://127.0.0.1:18080/login");
    c.ok(&format!(
        "{} -o ControlPath=/root/fwd.sock -O exit hhl@127.0.0.1 2>/dev/null; true",
        ssh_cmd("dev1")
    ));
    assert_eq!(
        login.stdout, "200",
        "the console through dev1's forward: {}",
        login.stderr
    );
    for target in [
        "127.0.0.1:6382",
        "127.0.0.1:22",
        "127.0.0.1:8081",
        "localhost:8080",
        "[::1]:8080",
        "0.0.0.0:8080",
        "10.0.0.1:80",
    ] {
        // -v: the client then shows why the channel was not opened, which tells
        // sshd's permitopen refusal apart from a closed port.
        let r = c.sh(&format!(
            "timeout 20 {} -v -W {target} hhl@127.0.0.1 </dev/null",
            ssh_cmd("dev1")
        ));
        refused(&r, "stdio forwarding failed");
        refused(&r, "open failed: administratively prohibited");
    }
    for listen in ["127.0.0.1:9999", "9999", "127.0.0.1:1", "0.0.0.0:1082"] {
        let r = c.sh(&format!(
            "timeout 20 {} -N -o ExitOnForwardFailure=yes -R {listen}:127.0.0.1:22 hhl@127.0.0.1 </dev/null",
            ssh_cmd("dev1")
        ));
        refused(&r, "remote port forwarding failed");
    }
    let listening = c.ok("ss -Hltn");
    for port in [":9999 ", ":1 "] {
        assert!(!listening.contains(port), "a remote forward listens:\n{listening}");
    }
    assert_eq!(c.get_hhl(1082), "dev2-v1\n", "dev2's instance still serves");
    // Repositories outside git.root, traversal, several arguments.
    refused(
        &ssh(&c, "dev1", "\"git-upload-pack '/etc'\""),
        "refused: no repository `/etc` here",
    );
    refused(
        &ssh(&c, "dev1", "\"git-upload-pack '../../etc/shadow'\""),
        "refused: no repository `../../etc/shadow` here",
    );
    refused(
        &ssh(&c, "dev1", "\"git-receive-pack 'socketserver' x\""),
        "refused: git-receive-pack takes one repository",
    );
    // A client cannot hand its own identity to the hooks.
    let r = c.sh(&format!(
        "cd /root/dev1/socketserver && git commit -q --allow-empty -m e && HHL_IDENTITY=lead git -c core.sshCommand='{} -o SetEnv=HHL_IDENTITY=lead' push origin HEAD:master 2>&1; r=$?; git reset -q --hard HEAD~1; exit $r",
        ssh_cmd("dev1")
    ));
    refused(&r, "only admins push it");

    // Git: dev2's branch is hidden and not theirs to push; serverctrl is admins'.
    let seen = git(&c, "dev1", "git ls-remote origin");
    assert!(
        seen.stdout.contains("refs/heads/master") && !seen.stdout.contains("dev2"),
        "{}",
        seen.stdout
    );
    refused(&push_lua(&c, "dev1", "dev2", "evil"), "deny updating a hidden ref");
    refused(
        &push_lua(&c, "dev1", "master", "evil2"),
        "only admins push it (you are `dev1`)",
    );
    refused(
        &git(&c, "dev1", "git push origin HEAD:refs/tags/x"),
        "deny updating a hidden ref",
    );
    refused(
        &git(&c, "dev1", "git fetch origin refs/heads/dev2"),
        "couldn't find remote ref refs/heads/dev2",
    );
    refused(
        &c.sh(&format!(
            "cd /root && GIT_SSH_COMMAND='{}' git clone hhl@127.0.0.1:serverctrl sc 2>&1",
            ssh_cmd("dev1")
        )),
        "serverctrl: only admins read or push here (you are `dev1`)",
    );

    // Pushes that are too big, or that carry links and undeployable names.
    refused(
        &git(&c, "dev1", "head -c 100000 /dev/urandom > big.bin && git add big.bin && git commit -qm big && git push origin HEAD:dev1"),
        "is 100000 bytes; the limit is 64K (git.max_object_size)",
    );
    git(&c, "dev1", "git reset -q --hard HEAD~1");
    refused(
        &git(
            &c,
            "dev1",
            "ln -sf /etc/shadow main.lua && git add -A && git commit -qm link && git push origin HEAD:dev1",
        ),
        "`main.lua` is a symbolic link; commit the file itself",
    );
    git(&c, "dev1", "git reset -q --hard HEAD~1");
    refused(
        &git(
            &c,
            "dev1",
            "printf 'x' > \"$(printf 'a\\nb.lua')\" && git add -A && git commit -qm nl && git push origin HEAD:dev1",
        ),
        "contains a control character",
    );
    git(&c, "dev1", "git reset -q --hard HEAD~1");
    // Refused pushes leave no objects behind (git's quarantine).
    let loose = c.ok("find /srv/git/socketserver.git/objects -type f -newer /root/keys/dev1 -size +60k | wc -l");
    assert_eq!(loose.trim(), "0", "objects of refused pushes were kept");

    // dev2's and master's instances, and the admin commands.
    refused(
        &ssh(&c, "dev1", "restart socketserver-dev2"),
        "not yours: the instances of `dev2` belong to dev2",
    );
    refused(
        &ssh(&c, "dev1", "reload socketserver-master"),
        "not yours: the instances of `master`",
    );
    refused(&ssh(&c, "dev1", "restart 6382"), "not yours: the instances of `dev2`");
    refused(&ssh(&c, "dev1", "'status --all'"), "--all is for admins");
    refused(
        &ssh(&c, "dev1", "logs socketserver-dev2"),
        "may not read the logs of `dev2`",
    );
    refused(
        &ssh(&c, "dev1", "rollback socketserver-dev2"),
        "not yours: the instances of `dev2`",
    );
    refused(
        &ssh(&c, "dev1", "releases socketserver-dev2"),
        "not yours: the instances of `dev2`",
    );
    refused(
        &ssh(&c, "dev1", "apply"),
        "that is an admin command, and `dev1` is not an admin",
    );
    refused(&ssh(&c, "dev1", "stop socketserver-dev1"), "that is an admin command");
    refused(
        &ssh(&c, "dev1", "redis-secret dev2"),
        "not yours: the instances of `dev2` belong to dev2",
    );
    refused(
        &ssh(&c, "dev1", "redis-secret master"),
        "not yours: the instances of `master`",
    );

    // As the instance user (what dev1's Lua runs as): the code is not writable.
    refused(
        &c.sh("setpriv --reuid=hhl-dev1 --regid=hhl-dev1 --clear-groups sh -c 'echo x > /opt/hhl/socketserver/dev1/app/current/main.lua' 2>&1"),
        "Permission denied",
    );
    refused(
        &c.sh("setpriv --reuid=hhl-dev1 --regid=hhl-dev1 --clear-groups sh -c 'ls /srv/git' 2>&1"),
        "Permission denied",
    );
    refused(&c.sh("setpriv --reuid=hhl-dev1 --regid=hhl-dev1 --clear-groups sh -c 'systemctl restart openresty@socketserver-dev2' 2>&1"), "Interactive authentication required");

    assert_eq!(snapshot(&c), before, "something moved");

    // dev1's own work, through the same door.
    let r = push_lua(&c, "dev1", "dev1", "dev1-v1");
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(r.stdout.contains("remote: deployed "), "{}", r.stdout);
    assert_eq!(c.get_hhl(1081), "dev1-v1\n");
    let pid = c.main_pid("openresty@socketserver-dev1.service");
    let r = ssh(&c, "dev1", "restart socketserver-dev1");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_ne!(c.main_pid("openresty@socketserver-dev1.service"), pid);
    let r = ssh(&c, "dev1", "status");
    assert!(
        r.stdout.contains("socketserver-dev1") && !r.stdout.contains("socketserver-dev2"),
        "{}",
        r.stdout
    );
    let r = ssh(&c, "dev1", "'logs -n 5 socketserver-dev1'");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let r = ssh(&c, "dev1", "releases socketserver-dev1");
    assert!(r.stdout.lines().count() >= 2, "{}\n{}", r.stdout, r.stderr);
    let r = ssh(&c, "dev1", "rollback socketserver-dev1");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_ne!(c.get_hhl(1081), "dev1-v1\n");
    // Their own Redis secret, which opens their own Redis only.
    let r = ssh(&c, "dev1", "redis-secret");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let secret = r
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("secret "))
        .unwrap()
        .to_string();
    assert!(r.stdout.starts_with("port 6381\n"), "{}", r.stdout);
    assert_eq!(
        c.ok(&format!("redis-cli --no-auth-warning -p 6381 -a {secret} ping"))
            .trim(),
        "PONG"
    );
    assert!(c
        .ok(&format!("redis-cli --no-auth-warning -p 6382 -a {secret} ping 2>&1"))
        .contains("WRONGPASS"));
    let r = ssh(&c, "dev1", "help");
    assert!(
        r.stdout.contains("rollback INSTANCE") && !r.stdout.contains("admin commands"),
        "{}",
        r.stdout
    );

    // An admin: master's branch, anyone's instances.
    let r = push_lua(&c, "lead", "master", "master-v2");
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert_eq!(c.get_hhl(1080), "master-v2\n");
    let pid = c.main_pid("openresty@socketserver-dev2.service");
    let r = ssh(&c, "lead", "restart socketserver-dev2");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_ne!(c.main_pid("openresty@socketserver-dev2.service"), pid);
    let r = ssh(&c, "lead", "help");
    assert!(r.stdout.contains("admin commands"), "{}", r.stdout);

    // Links planted (as the entry account, the only non-root writer there) where
    // root works: root refuses or replaces them, never follows them.
    let issue = c.ok("sha256sum /etc/issue");
    c.ok("runuser -u hhl -- sh -c 'rm -f /opt/hhl/socketserver/dev1/app/.lock && ln -s /etc/issue /opt/hhl/socketserver/dev1/app/.lock'");
    refused(
        &c.sh("hhlctl rollback socketserver-dev1"),
        "a symbolic link there is refused",
    );
    c.ok("runuser -u hhl -- sh -c 'rm -f /srv/git/socketserver.git/hooks/pre-receive && ln -s /etc/issue /srv/git/socketserver.git/hooks/pre-receive'");
    c.ok("hhlctl repo init");
    c.ok(
        "test -f /srv/git/socketserver.git/hooks/pre-receive && ! test -L /srv/git/socketserver.git/hooks/pre-receive",
    );
    assert_eq!(c.ok("sha256sum /etc/issue"), issue, "/etc/issue changed");
    // apply: a link where the app's releases directory belongs is refused, and what
    // it points at is not chowned or chmodded.
    let app = "/opt/hhl/socketserver/dev2/app";
    c.ok(&format!(
        "runuser -u hhl -- sh -c 'cd {app} && mv releases r.bak && ln -s /etc releases'"
    ));
    let etc = c.ok("stat -c '%U:%G %a' /etc");
    refused(
        &c.sh("hhlctl apply"),
        "releases is a symbolic link, where hhlctl keeps a directory; a link there is refused, never followed",
    );
    assert_eq!(c.ok("stat -c '%U:%G %a' /etc"), etc, "/etc changed");
    c.ok(&format!(
        "runuser -u hhl -- sh -c 'cd {app} && rm releases && mv r.bak releases'"
    ));
    let r = c.sh("hhlctl apply");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
}
