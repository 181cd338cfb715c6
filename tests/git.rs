//! Deploying through git, in a real systemd with real polkit: real `git push` over real
//! ssh as the identities dev1, dev2 and lead (an admin), through the entry account,
//! into repositories made by `hhlctl repo init`.

mod support;

use std::time::{Duration, Instant};

use support::container::{Container, CFG};
use support::entry::{self, ssh};
use support::{example_yaml, Run};

/// The example with `lead` as admin, applied, and the repositories made.
fn with_repos() -> Container {
    let c = Container::boot();
    let keys = entry::keys_yaml(&c, &["dev1", "dev2", "lead"]);
    c.write(CFG, &(example_yaml().replace("admins: []", "admins: [lead]") + &keys));
    let r = c.sh("hhlctl apply");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let r = c.sh("hhlctl repo init");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("created /srv/git/socketserver.git"), "{}", r.stdout);
    assert!(
        r.stdout.contains("seeded /srv/git/serverctrl.git with hhl.yaml"),
        "{}",
        r.stdout
    );
    // A fresh server serves code: each logic server's new repository has the example
    // game on master, deployed to master's instance.
    for (server, port) in [("socketserver", 1080), ("dtserver", 1090), ("httpserver", 1100)] {
        assert!(
            r.stdout.contains(&format!(
                "seeded /srv/git/{server}.git with the example game (4 files) on master"
            )),
            "{}",
            r.stdout
        );
        assert_eq!(c.get_hhl(port), format!("hhl {server}-master ok\n"));
    }
    assert!(!r.stdout.contains("seeded /srv/git/lualib.git"), "{}", r.stdout);
    // A second run changes nothing and keeps history.
    let again = c.ok("hhlctl repo init");
    assert!(
        again.contains("updated /srv/git/serverctrl.git") && !again.contains("created") && !again.contains("seeded"),
        "{again}"
    );
    entry::start_sshd(&c);
    c
}

/// As identity `id`, in their clone of `repo` (made over ssh on first use): run `script`.
fn as_user(c: &Container, id: &str, repo: &str, script: &str) -> Run {
    entry::in_clone(c, id, repo, script)
}

/// What `hhlctl ssh <id>` does for `command`, run on the server as the entry account
/// with `env` added (a fault to inject: clients cannot pass environment through ssh).
fn entry_with_env(c: &Container, id: &str, env: &str, command: &str) -> Run {
    c.sh(&format!(
        "runuser -u hhl -- env {env} SSH_ORIGINAL_COMMAND='{command}' hhlctl ssh {id}"
    ))
}

/// Write main.lua answering `text`, commit, push to `branch` with `opts`.
/// A post-receive killed as it starts, before it could note that it began: the push
/// says its deploy was interrupted and exits 1, and nothing deploys behind the
/// developer's back. (`hhlctl ssh` used to read the silent report as "no ref moved"
/// and deploy the branch head itself, which could land after the developer's next
/// push and put the older code live.)
#[test]
fn a_post_receive_killed_as_it_starts_is_reported_and_nothing_deploys_behind_it() {
    let c = with_repos();
    let r = entry::push_lua(&c, "dev1", "dev1", "v1", "");
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert_eq!(c.get_hhl(1081), "v1\n");
    let hook = "/srv/git/socketserver.git/hooks/post-receive";
    c.ok(&format!(
        "sed -i 's/^exec /exec env HHL_FAULT=hook:post-receive /' {hook} && grep -q HHL_FAULT {hook}"
    ));
    let r = entry::push_lua(&c, "dev1", "dev1", "killed", "");
    let said = format!("{}{}", r.stdout, r.stderr);
    assert_eq!(r.code, 1, "{said}");
    assert!(
        said.contains("the push is stored, but its deploy was interrupted"),
        "{said}"
    );
    assert_eq!(c.get_hhl(1081), "v1\n", "something deployed the killed push's commit");
    // The next push (the hook whole again) deploys its own head, once.
    c.ok(&format!(
        "sed -i 's/^exec env HHL_FAULT=hook:post-receive /exec /' {hook}"
    ));
    let r = entry::push_lua(&c, "dev1", "dev1", "v2", "");
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(c.get_hhl(1081), "v2\n");
}

#[test]
fn a_push_deploys_only_your_own_branch_and_options_restart_only_yours() {
    let c = with_repos();
    let r = entry::push_lua(&c, "dev1", "dev1", "v1", "");
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(r.stdout.contains("remote: deployed "), "{}", r.stdout);
    // dev1's branch started from master's example game: main.lua changed, game/ kept.
    assert!(r.stdout.contains("to socketserver-dev1 (4 files,"), "{}", r.stdout);
    // The reload is a SIGHUP to the master (no sandboxed ExecReload), seen through.
    assert!(
        r.stdout
            .contains("remote: reloaded openresty@socketserver-dev1.service by SIGHUP to its master: new workers in "),
        "{}",
        r.stdout
    );
    assert_eq!(c.get_hhl(1081), "v1\n");
    // The release is a directory of its own; src points at it through app/current.
    let live = c.ok("readlink /opt/hhl/socketserver/dev1/app/current");
    assert!(live.starts_with("releases/1"), "{live}");

    // Someone else's branch: refused before any ref moves; nothing deployed.
    let before_dev2 = c.get_hhl(1082);
    // (dev2's branch is hidden from dev1, so git itself refuses the update.)
    let r = entry::push_lua(&c, "dev1", "dev2", "intruder", "");
    assert_ne!(r.code, 0);
    assert!(
        r.stdout
            .contains("[remote rejected] HEAD -> dev2 (deny updating a hidden ref)"),
        "{}",
        r.stdout
    );
    assert_eq!(c.get_hhl(1082), before_dev2);
    assert_eq!(
        c.sh("git --git-dir=/srv/git/socketserver.git rev-parse --verify -q refs/heads/dev2")
            .code,
        1,
        "the refused branch exists"
    );
    // The hook run without an identity (not through `hhlctl ssh`) deploys nothing;
    // with dev1's identity, nothing that is not dev1's.
    let line = "echo \"$(printf '0%.0s' $(seq 40)) $(git rev-parse dev1) refs/heads/dev2\"";
    let r = c.sh(&format!(
        "cd /srv/git/socketserver.git && {line} | runuser -u hhl -- hhlctl hook post-receive"
    ));
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(
            "pushes come through ssh (`git push <entry>@server:<repo>`); unix user `hhl` pushed without an identity"
        ),
        "{}",
        r.stderr
    );
    let r = c.sh(&format!(
        "cd /srv/git/socketserver.git && {line} | runuser -u hhl -- env HHL_IDENTITY=dev1 hhlctl hook post-receive"
    ));
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("not deployed: socketserver: branch `dev2` belongs to dev2"),
        "{}",
        r.stderr
    );
    assert_eq!(c.get_hhl(1082), before_dev2);
    // master is for admins; the shared httpserver has no per-developer branch.
    let r = entry::push_lua(&c, "dev1", "master", "nope", "");
    assert!(
        r.stdout.contains("only admins push it (you are `dev1`)"),
        "{}",
        r.stdout
    );
    let r = as_user(
        &c,
        "dev1",
        "httpserver",
        "git commit -q --allow-empty -m x && git push origin HEAD:dev1",
    );
    assert!(r.stdout.contains("httpserver is shared by everybody"), "{}", r.stdout);

    // A Lua syntax error is refused with its file and line; the live code stays.
    let r = as_user(
        &c,
        "dev1",
        "socketserver",
        "printf 'local x = \\nreturn {\\n' > broken.lua && git add -A && git commit -qm broken && git push origin HEAD:dev1",
    );
    assert_ne!(r.code, 0);
    assert!(r.stdout.contains("Lua syntax: broken.lua:2:"), "{}", r.stdout);
    assert_eq!(c.get_hhl(1081), "v1\n");
    as_user(&c, "dev1", "socketserver", "git reset -q --hard HEAD~1");
    // Only what a push changes is compiled, and a file that becomes `.lua` is a change:
    // a broken text file renamed into a module is refused with its path.
    let r = as_user(
        &c,
        "dev1",
        "socketserver",
        "mkdir -p lib && printf 'return {\\n' > lib/notes.txt && git add -A && git commit -qm notes && git push -q origin HEAD:dev1 && git mv lib/notes.txt lib/notes.lua && git commit -qm rename && git push origin HEAD:dev1",
    );
    assert_ne!(r.code, 0);
    assert!(r.stdout.contains("Lua syntax: lib/notes.lua:"), "{}", r.stdout);
    as_user(&c, "dev1", "socketserver", "git reset -q --hard HEAD~1");

    // An unknown push option is refused with the list of known ones.
    let r = entry::push_lua(&c, "dev1", "dev1", "v-bogus", "-o reboot");
    assert_ne!(r.code, 0);
    assert!(
        r.stdout
            .contains("unknown push option `reboot`; hhl knows: no-deploy, restart, restart=redis, restart=all"),
        "{}",
        r.stdout
    );
    as_user(&c, "dev1", "socketserver", "git reset -q --hard HEAD~1");

    // -o restart: dev1's nginx restarts; dev1's Redis and everything of dev2 do not.
    let units = [
        "openresty@socketserver-dev1.service",
        "redis@6381.service",
        "openresty@socketserver-dev2.service",
        "redis@6382.service",
    ];
    let pids: Vec<String> = units.iter().map(|u| c.main_pid(u)).collect();
    let r = entry::push_lua(&c, "dev1", "dev1", "v2", "-o restart");
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(
        r.stdout
            .contains("remote: restarted openresty@socketserver-dev1.service"),
        "{}",
        r.stdout
    );
    let after: Vec<String> = units.iter().map(|u| c.main_pid(u)).collect();
    assert_ne!(after[0], pids[0], "dev1's nginx was not restarted");
    assert_eq!(after[1..], pids[1..], "other units were touched");
    assert_eq!(c.get_hhl(1081), "v2\n");

    // -o restart=redis: dev1's Redis too.
    let r = entry::push_lua(&c, "dev1", "dev1", "v3", "-o restart=redis");
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert_ne!(c.main_pid("redis@6381.service"), after[1]);
    assert_eq!(c.main_pid("redis@6382.service"), pids[3]);

    // -o no-deploy: the branch moves, the live code does not.
    let r = entry::push_lua(&c, "dev1", "dev1", "v4", "-o no-deploy");
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(r.stdout.contains("not deployed (-o no-deploy)"), "{}", r.stdout);
    assert_eq!(c.get_hhl(1081), "v3\n");

    // Rollback, as dev1 over ssh; not someone else's.
    let r = ssh(&c, "dev1", "rollback socketserver-dev1");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(c.get_hhl(1081), "v2\n");
    let r = ssh(&c, "dev1", "rollback socketserver-dev2");
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .contains("not yours: the instances of `dev2` belong to dev2, and you are `dev1`"),
        "{}",
        r.stderr
    );

    // An admin may deploy anybody's branch, master included.
    let r = entry::push_lua(&c, "lead", "master", "integration", "");
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert_eq!(c.get_hhl(1080), "integration\n");

    // A config the master will not load (changed as root after apply tested it):
    // the SIGHUP starts no new workers, the push says so with the journal's reason
    // and the way back, and the old workers go on serving the old code.
    let r = entry::push_lua(&c, "dev1", "dev1", "v5", "");
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert_eq!(c.get_hhl(1081), "v5\n");
    let conf = "/opt/hhl/socketserver/dev1/conf/nginx.conf";
    c.ok(&format!(
        "cp {conf} /tmp/nginx.conf.good && echo 'no_such_directive on;' >> {conf}"
    ));
    let master = c.main_pid("openresty@socketserver-dev1.service");
    let workers = c.ok(&format!("pgrep -P {master} | sort"));
    let r = entry::push_lua(&c, "dev1", "dev1", "v6", "");
    assert!(
        r.stdout.contains(
            "remote: error: reloading openresty@socketserver-dev1.service failed: its master started no new workers within 10 s after SIGHUP, so the old workers go on serving"
        ),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("unknown directive \"no_such_directive\""),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("`ssh hhl@127.0.0.1 rollback socketserver-dev1` goes back to"),
        "{}",
        r.stdout
    );
    // Every hint is what dev1 can type: no `hhlctl …` (dev1 has no shell).
    assert!(!r.stdout.contains("hhlctl "), "{}", r.stdout);
    assert_eq!(c.main_pid("openresty@socketserver-dev1.service"), master);
    assert_eq!(
        c.ok(&format!("pgrep -P {master} | sort")),
        workers,
        "the workers changed"
    );
    assert_eq!(c.get_hhl(1081), "v5\n");
    // Fixed, the next push goes through.
    c.ok(&format!("cp /tmp/nginx.conf.good {conf}"));
    let r = entry::push_lua(&c, "dev1", "dev1", "v7", "");
    assert!(
        r.stdout
            .contains("remote: reloaded openresty@socketserver-dev1.service by SIGHUP"),
        "{}",
        r.stdout
    );
    assert_eq!(c.get_hhl(1081), "v7\n");
}

/// As lead (an admin): change dev2's socketserver entry in serverctrl's hhl.yaml to
/// `entry`, commit and push; a refused commit is dropped again.
fn push_dev2_entry(c: &Container, entry: &str) -> Run {
    let r = as_user(
        c,
        "lead",
        "serverctrl",
        &format!("sed -i 's/dev2: {{port: 1082}}/dev2: {entry}/' hhl.yaml && git commit -qam '{entry}' && git push origin master"),
    );
    if r.code != 0 {
        as_user(c, "lead", "serverctrl", "git reset -q --hard HEAD~1");
    }
    r
}

#[test]
fn serverctrl_pushes_are_validated_then_applied() {
    let c = with_repos();
    c.deploy_lua();
    let sums = || c.ok("find /opt/hhl /etc/systemd/system /etc/hhl -type f | sort | xargs md5sum");
    let pids = || c.ok("systemctl show -p MainPID 'openresty@*' 'redis@*'");
    let (sums0, pids0) = (sums(), pids());

    // A developer may not read serverctrl, let alone push it.
    let r = as_user(&c, "dev1", "serverctrl", "true");
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(
        r.stdout
            .contains("refused: serverctrl: only admins read or push here (you are `dev1`)"),
        "{}",
        r.stdout
    );
    let r = c.sh(&format!(
        "cd /root/dev1 && git init -q sc && cd sc && git -c user.name=d -c user.email=d@pc commit -q --allow-empty -m x && \
         git -c core.sshCommand='{}' push hhl@127.0.0.1:serverctrl HEAD:master 2>&1",
        entry::ssh_cmd("dev1")
    ));
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(
        r.stdout
            .contains("refused: serverctrl: only admins push here (you are `dev1`)"),
        "{}",
        r.stdout
    );

    // A config nginx refuses: refused with nginx's words, nothing changes.
    let r = push_dev2_entry(&c, "{port: 1082, worker_connections: lots}");
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(
        r.stdout.contains("openresty@socketserver-dev2.service: nginx -t refused the rendered /opt/hhl/socketserver/dev2/conf/nginx.conf"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("invalid number \"lots\""), "{}", r.stdout);
    // Only the changed instance was tested.
    assert!(
        !r.stdout.contains("socketserver-dev3.service: nginx -t"),
        "{}",
        r.stdout
    );
    // A config hhlctl refuses: the message points into the pushed file.
    let r = push_dev2_entry(&c, "{port: 1081}");
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(r.stdout.contains("port 1081 is used by both"), "{}", r.stdout);
    assert!(r.stdout.contains("serverctrl:hhl.yaml:"), "{}", r.stdout);
    assert_eq!(sums(), sums0, "a refused push changed files");
    assert_eq!(pids(), pids0, "a refused push touched running instances");

    // A good one is applied as root by hhl-apply.service and reported to the pusher.
    let r = push_dev2_entry(&c, "{port: 1182}");
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(
        r.stdout
            .contains("remote: apply: reloaded openresty@socketserver-dev2.service"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("remote: applied serverctrl "), "{}", r.stdout);
    assert_eq!(c.get_hhl(1182), "hhl socketserver-dev2 ok\n");
    assert!(c.ok("cat /etc/hhl/hhl.yaml").contains("dev2: {port: 1182}"));

    // Template files live in serverctrl too: a push that changes only a template is
    // tested with the pushed template, not the one /etc/hhl has.
    let r = as_user(
        &c,
        "lead",
        "serverctrl",
        &format!(
            "mkdir -p templates && cp {} templates/ss.hbs && \
             sed -i 's#template: builtin:socketserver#template: templates/ss.hbs#' hhl.yaml && \
             git add -A && git commit -qm 'own template' && git push origin master",
            support::repo().join("templates/socketserver.conf.hbs").display()
        ),
    );
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(c
        .ok("cat /etc/hhl/templates/ss.hbs")
        .contains("worker_connections {{worker_connections}};"));
    let (sums1, pids1) = (sums(), pids());
    let r = as_user(
        &c,
        "lead",
        "serverctrl",
        "sed -i 's/worker_connections {{worker_connections}};/worker_connections lots;/' templates/ss.hbs && \
         git commit -qam 'bad template' && git push origin master",
    );
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(r.stdout.contains("invalid number \"lots\""), "{}", r.stdout);
    assert_eq!(sums(), sums1, "a refused template push changed files");
    assert_eq!(pids(), pids1, "a refused template push touched running instances");
}

#[test]
fn the_lua_library_deploys_to_every_instance() {
    let c = with_repos();
    let r = as_user(
        &c,
        "lead",
        "lualib",
        "printf 'return { greet = function() return \"hello from lib\" end }\\n' > hhlgreet.lua && git add -A && git commit -qm lib && git push origin HEAD:master",
    );
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(r.stdout.contains("to /opt/hhl/lib (1 file,"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("remote: reloaded openresty@dtserver-dev4.service by SIGHUP to its master"),
        "{}",
        r.stdout
    );
    let r = entry::push_lua(&c, "dev1", "dev1", "x", "");
    assert_eq!(r.code, 0);
    as_user(
        &c,
        "dev1",
        "socketserver",
        "printf 'ngx.say(require(\"hhlgreet\").greet())\\n' > main.lua && git commit -qam lib && git push -q origin HEAD:dev1",
    );
    assert_eq!(c.get_hhl(1081), "hello from lib\n");
    // Developers do not push the library.
    let r = as_user(
        &c,
        "dev1",
        "lualib",
        "git commit -q --allow-empty -m x && git push origin HEAD:master",
    );
    assert!(
        r.stdout.contains("refused: lualib: only admins push here"),
        "{}",
        r.stdout
    );
}

#[test]
fn deploys_under_load_lose_no_request_and_a_killed_deploy_leaves_the_old_release() {
    let c = with_repos();
    entry::push_lua(&c, "dev1", "dev1", "v0", "");
    // A bounded loop of requests on loopback while 20 deploys land.
    c.ok(
        "nohup sh -c 'end=$(($(date +%s) + 120)); while [ $(date +%s) -lt $end ] && [ ! -e /tmp/stop ]; do \
           curl -s -o /dev/null -m 5 -w \"%{http_code}\\n\" http://127.0.0.1:1081/hhl; done > /tmp/codes' >/dev/null 2>&1 & echo $! > /tmp/loop.pid",
    );
    let t = Instant::now();
    for n in 1..=20 {
        let r = entry::push_lua(&c, "dev1", "dev1", &format!("v{n}"), "");
        assert_eq!(r.code, 0, "deploy {n}: {}", r.stdout);
    }
    let took = t.elapsed();
    // The loop ends within one request's time (-m 5) of seeing /tmp/stop.
    c.ok("touch /tmp/stop; for i in $(seq 100); do kill -0 $(cat /tmp/loop.pid) 2>/dev/null || exit 0; sleep 0.1; done; exit 1");
    let codes = c.ok("sort /tmp/codes | uniq -c");
    let total: usize = codes
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().parse::<usize>().unwrap())
        .sum();
    eprintln!("20 deploys in {took:?}; {total} requests: {codes}");
    assert!(total > 20, "the request loop did not run: {codes}");
    assert_eq!(codes.trim(), format!("{total} 200"), "failed requests during deploys");
    assert_eq!(c.get_hhl(1081), "v20\n");
    // Kept releases: git.keep (5) plus apply's `initial`.
    assert_eq!(c.ok("ls /opt/hhl/socketserver/dev1/app/releases | wc -l").trim(), "6");

    // Kill a deploy midway: it waits on the lock we hold, so it is surely mid-deploy.
    c.ok("nohup flock /opt/hhl/socketserver/dev1/app/.lock sleep 30 >/dev/null 2>&1 &");
    // Until the lock is surely held (a non-blocking try fails).
    c.ok("for i in $(seq 100); do flock -n /opt/hhl/socketserver/dev1/app/.lock true || exit 0; sleep 0.05; done; exit 1");
    c.ok(
        "cd /root/dev1/socketserver && printf 'ngx.say(\"killed\")\\n' > main.lua && git commit -qam k && \
         (git push -q origin HEAD:dev1 >/dev/null 2>&1 &)",
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.sh("pgrep -f 'hook post-receiv[e]'").code != 0 {
        assert!(Instant::now() < deadline, "the deploy never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    c.ok("pkill -9 -f 'hook post-receiv[e]'; pkill -f 'flock /opt/hh[l]'; true");
    assert_eq!(c.get_hhl(1081), "v20\n", "a killed deploy changed the live code");
    // The next push works, and it brings the killed commit with it.
    let r = entry::push_lua(&c, "dev1", "dev1", "after-kill", "");
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert_eq!(c.get_hhl(1081), "after-kill\n");

    // Killed after its switch, before its reload (src/host/fault.rs): the new release is
    // current and owes a reload, which the next apply runs.
    let app = "/opt/hhl/socketserver/dev1/app";
    let workers = |c: &Container| -> Vec<String> {
        let pid = c.main_pid("openresty@socketserver-dev1.service");
        c.ok(&format!("pgrep -P {pid} | sort"))
            .lines()
            .map(String::from)
            .collect()
    };
    let before = workers(&c);
    // The hook dies; the ref has moved, and git reports the hook's end as it may.
    // (The fault is set on the server side: ssh passes no client environment.)
    as_user(
        &c,
        "dev1",
        "socketserver",
        "printf 'ngx.say(\"switched\")\\n' > main.lua && git commit -qam switched && \
         git push -q --receive-pack=\"runuser -u hhl -- env HHL_IDENTITY=dev1 HHL_FAULT=release:switched git receive-pack\" \
         /srv/git/socketserver.git HEAD:dev1; true",
    );
    let record = c.ok(&format!("cat {app}/.reload-pending"));
    assert!(record.starts_with("deploy "), "{record}");
    assert!(
        workers(&c).iter().all(|w| before.contains(w)),
        "the killed deploy reloaded"
    );
    let r = c.sh("hhlctl apply");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("finishing an interrupted run: reload openresty@socketserver-dev1.service"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("reloaded openresty@socketserver-dev1.service"),
        "{}",
        r.stdout
    );
    assert!(
        workers(&c).iter().any(|w| !before.contains(w)),
        "no new nginx worker: no reload"
    );
    c.ok(&format!("! test -e {app}/.reload-pending"));
    assert_eq!(c.ok("hhlctl apply").trim(), "nothing to do: 16 instances up to date");

    // A rollback killed between its switch and its reload is finished by the next
    // rollback, which does not go back one more.
    let from = c.ok(&format!("readlink {app}/current"));
    let r = entry_with_env(&c, "dev1", "HHL_FAULT=release:switched", "rollback socketserver-dev1");
    assert_eq!(r.code, 137, "{}\n{}", r.stdout, r.stderr);
    let to = c.ok(&format!("readlink {app}/current"));
    assert_ne!(to, from);
    let r = ssh(&c, "dev1", "rollback socketserver-dev1");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let (from, to) = (
        from.trim().trim_start_matches("releases/"),
        to.trim().trim_start_matches("releases/"),
    );
    assert!(
        r.stdout.contains(&format!(
            "socketserver-dev1: finishing the rollback {from} -> {to} that was interrupted before its reload"
        )),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("reloaded openresty@socketserver-dev1.service"),
        "{}",
        r.stdout
    );
    assert_eq!(
        c.ok(&format!("readlink {app}/current")).trim(),
        format!("releases/{to}")
    );
    c.ok(&format!("! test -e {app}/.reload-pending"));

    // Two pushes at once, to the same instance: serialized by the lock, never mixed.
    c.ok(&format!(
        "cd /root/dev1 && git clone -q --config core.sshCommand='{}' hhl@127.0.0.1:socketserver s2 && cd s2 && git checkout -q -b w origin/dev1",
        entry::ssh_cmd("dev1")
    ));
    let r = c.sh(
        "cd /root/dev1/socketserver && printf 'ngx.say(\"A\")\\n' > main.lua && git commit -qam A && \
         cd /root/dev1/s2 && printf 'ngx.say(\"B\")\\n' > other.lua && git commit -qam B && \
         (cd /root/dev1/socketserver && git push -q origin HEAD:dev1 > /tmp/a.out 2>&1) & \
         (cd /root/dev1/s2 && git push -q origin HEAD:dev1 > /tmp/b.out 2>&1) & wait; cat /tmp/a.out /tmp/b.out",
    );
    // One push wins the ref; the other is refused by git as not a fast-forward, or
    // lands after it. Either way the live tree is one whole commit of branch dev1.
    let live = c.ok("cd /opt/hhl/socketserver/dev1/src && ls | sort | tr '\\n' ' '");
    let tip = c.ok("git --git-dir=/srv/git/socketserver.git ls-tree --name-only dev1 | sort | tr '\\n' ' '");
    assert_eq!(live, tip, "live tree is not the branch's tree: {}", r.stdout);
}

/// The live release's directory name and the branch head of `branch`.
fn live_and_head(c: &Container, inst_dir: &str, branch: &str) -> (String, String) {
    (
        c.ok(&format!("readlink {inst_dir}/app/current")).trim().to_string(),
        c.ok(&format!(
            "git --git-dir=/srv/git/socketserver.git rev-parse refs/heads/{branch}"
        ))
        .trim()
        .to_string(),
    )
}

/// Push `script`'s commit to dev1 in the background and kill -9 its post-receive hook
/// while it extracts the release (its `.tmp-` directory exists). Returns the push's
/// exit code and output.
fn push_and_kill_the_deploy(c: &Container, script: &str) -> (i32, String) {
    c.ok(&format!(
        "rm -f /tmp/push.rc /tmp/push.out; cd /root/dev1/socketserver && {{ {script}; }} >/dev/null && \
         (git push origin HEAD:dev1 > /tmp/push.out 2>&1; echo $? > /tmp/push.rc) > /dev/null 2>&1 &"
    ));
    let killed = c.sh("for i in $(seq 2000); do \
           if ls -d /opt/hhl/socketserver/dev1/app/releases/.tmp-* >/dev/null 2>&1; then \
             p=$(pgrep -f 'hook post-receiv[e]') && kill -9 $p && echo \"killed $p\" && exit 0; \
           fi; sleep 0.01; done; exit 1");
    assert_eq!(
        killed.code,
        0,
        "the deploy was never seen extracting: {}",
        c.ok("cat /tmp/push.out; true")
    );
    c.ok("for i in $(seq 600); do [ -s /tmp/push.rc ] && exit 0; sleep 0.05; done; exit 1");
    (
        c.ok("cat /tmp/push.rc").trim().parse().unwrap(),
        c.ok("cat /tmp/push.out"),
    )
}

#[test]
fn a_deploy_that_fails_or_is_killed_fails_the_push_and_is_deployed_next() {
    let c = with_repos();
    let dev1 = "/opt/hhl/socketserver/dev1";
    let r = entry::push_lua(&c, "dev1", "dev1", "v1", "");
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert_eq!(c.get_hhl(1081), "v1\n");

    // 1. A config the master refuses (changed as root after apply tested it): the
    //    push exits 1 and shows the journal of that reload.
    let conf = format!("{dev1}/conf/nginx.conf");
    c.ok(&format!(
        "cp {conf} /tmp/good.conf && echo 'no_such_directive on;' >> {conf}"
    ));
    let r = entry::push_lua(&c, "dev1", "dev1", "v2", "");
    assert_ne!(r.code, 0, "a failed reload reported as success: {}", r.stdout);
    assert!(
        r.stdout
            .contains("remote: error: reloading openresty@socketserver-dev1.service failed"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("its journal since the SIGHUP"), "{}", r.stdout);
    assert!(
        r.stdout.contains("unknown directive \"no_such_directive\""),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("error: the push is stored, but its deploy did not succeed (see above)"),
        "{}",
        r.stdout
    );
    assert_eq!(c.get_hhl(1081), "v1\n");
    // Visible: the release is switched, its reload owed.
    let r = ssh(&c, "dev1", "status socketserver-dev1");
    assert!(r.stdout.contains("(reload owed)"), "{}\n{}", r.stdout, r.stderr);
    // Fixed: `ssh … deploy` deploys the branch head again.
    c.ok(&format!("cp /tmp/good.conf {conf}"));
    let r = ssh(&c, "dev1", "deploy");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("(its reload is owed): deploying"), "{}", r.stdout);
    assert_eq!(c.get_hhl(1081), "v2\n");

    // 2. dev1's slice at its task limit: the master forks no new worker. The push
    //    exits 1 and shows why, from that reload's journal only (not the refused
    //    directive above).
    let tasks_max = c.ok("systemctl show -p TasksMax --value hhl-dev1.slice");
    c.ok("systemctl set-property --runtime hhl-dev1.slice TasksMax=1");
    let r = entry::push_lua(&c, "dev1", "dev1", "v3", "");
    c.ok(&format!(
        "systemctl set-property --runtime hhl-dev1.slice TasksMax={}",
        tasks_max.trim()
    ));
    assert_ne!(r.code, 0, "a failed reload reported as success: {}", r.stdout);
    assert!(r.stdout.contains("fork() failed"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("its master started no new workers within 10 s after SIGHUP, and its old workers are gone"),
        "{}",
        r.stdout
    );
    assert!(
        !r.stdout.contains("no_such_directive"),
        "an older failure's journal lines: {}",
        r.stdout
    );
    let r = ssh(&c, "dev1", "deploy socketserver-dev1");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(c.get_hhl(1081), "v3\n");

    // 3. A post-receive killed (kill -9) while it extracts a big tree: the push exits
    //    1 and says so; status shows the branch ahead; the next push, with nothing new
    //    to send, deploys it; no partial release is left. (60,000 files: above the
    //    default git.max_files, raised here; the hooks read hhl.yaml on each push.)
    c.ok(&format!("printf 'git:\\n  max_files: 100000\\n' >> {CFG}"));
    assert_eq!(
        c.hhlctl(CFG, "plan").code,
        0,
        "hhl.yaml with git.max_files does not load"
    );
    let big =
        "mkdir -p big && for d in $(seq 40); do mkdir -p big/$d && (cd big/$d && seq 1500 | xargs touch); done && \
               printf 'ngx.say(\"big\")\\n' > main.lua && git add -A && git commit -qm big";
    let (code, out) = push_and_kill_the_deploy(&c, big);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("error: the push is stored, but its deploy was interrupted"),
        "{out}"
    );
    assert_eq!(c.get_hhl(1081), "v3\n");
    let (live, head) = live_and_head(&c, dev1, "dev1");
    assert!(!live.contains(&head[..12]), "{live} {head}");
    let r = ssh(&c, "dev1", "status socketserver-dev1");
    assert!(
        r.stdout.contains(&format!("{} NOT LIVE", &head[..10])),
        "{}\n{}",
        r.stdout,
        r.stderr
    );
    assert!(
        r.stdout.contains("pushed but not live: socketserver-dev1"),
        "{}",
        r.stdout
    );
    let json = c.ok("hhlctl status --json socketserver-dev1");
    assert!(json.contains(&format!("\"pushed\": \"{head}\"")), "{json}");
    let r = as_user(&c, "dev1", "socketserver", "git push origin HEAD:dev1");
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(r.stdout.contains("Everything up-to-date"), "{}", r.stdout);
    assert!(
        r.stdout.contains(&format!(
            "socketserver-dev1: branch `dev1` is at {}, the live release at",
            &head[..10]
        )),
        "{}",
        r.stdout
    );
    assert_eq!(c.get_hhl(1081), "big\n");
    let (live, head) = live_and_head(&c, dev1, "dev1");
    assert!(live.ends_with(&head[..12]), "{live} {head}");
    assert_eq!(
        c.ok(&format!("ls -a {dev1}/app/releases | grep -c '^\\.tmp-'; true"))
            .trim(),
        "0",
        "a partial release is left"
    );
    assert_eq!(
        c.ok(&format!("ls {dev1}/app/releases | grep -c {}", &head[..12]))
            .trim(),
        "1"
    );

    // 4. Killed again: apply deploys the branch head and reloads it.
    let (code, out) = push_and_kill_the_deploy(
        &c,
        "printf 'ngx.say(\"big2\")\\n' > main.lua && touch big/1/extra && git add -A && git commit -qm big2",
    );
    assert_eq!(code, 1, "{out}");
    assert_eq!(c.get_hhl(1081), "big\n");
    let (_, head) = live_and_head(&c, dev1, "dev1");
    let r = c.sh("hhlctl apply");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains(&format!(
            "deployed {} to socketserver-dev1: branch `dev1` was ahead of its live release",
            &head[..10]
        )),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("reloaded openresty@socketserver-dev1.service"),
        "{}",
        r.stdout
    );
    assert_eq!(c.get_hhl(1081), "big2\n");
    let (live, head) = live_and_head(&c, dev1, "dev1");
    assert!(live.ends_with(&head[..12]), "{live} {head}");
    assert_eq!(
        c.ok(&format!("ls -a {dev1}/app/releases | grep -c '^\\.tmp-'; true"))
            .trim(),
        "0"
    );
    // The release apply made as root belongs to the entry account, which prunes it.
    assert_eq!(c.ok(&format!("stat -c %U {dev1}/app/{live}/main.lua")).trim(), "hhl");
    assert_eq!(c.ok("hhlctl apply").trim(), "nothing to do: 16 instances up to date");

    // 5. A head held back on purpose (-o no-deploy) stays off: apply leaves it, status
    //    says why; `ssh … deploy` deploys it. Someone else's instance is not yours to
    //    deploy.
    let r = entry::push_lua(&c, "dev1", "dev1", "held", "-o no-deploy");
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert_eq!(c.ok("hhlctl apply").trim(), "nothing to do: 16 instances up to date");
    assert_eq!(c.get_hhl(1081), "big2\n");
    let r = ssh(&c, "dev1", "status socketserver-dev1");
    assert!(r.stdout.contains("(held: -o no-deploy)"), "{}", r.stdout);
    let dev2_before = c.ok("readlink /opt/hhl/socketserver/dev2/app/current");
    let r = ssh(&c, "dev1", "deploy socketserver-dev2");
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .contains("refused: not yours: the instances of `dev2` belong to dev2, and you are `dev1`"),
        "{}",
        r.stderr
    );
    assert_eq!(c.ok("readlink /opt/hhl/socketserver/dev2/app/current"), dev2_before);
    let r = ssh(&c, "dev1", "deploy");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(c.get_hhl(1081), "held\n");
    let r = ssh(&c, "dev1", "deploy");
    assert!(r.stdout.contains("socketserver-dev1: "), "{}", r.stdout);
    assert!(r.stdout.contains("is live"), "{}", r.stdout);
}

/// `repo init` seeds only the repositories it creates: one that was there before
/// (made by hand, with its own history) keeps its refs, and its master instance is not
/// deployed from it.
#[test]
fn repo_init_never_seeds_an_existing_repository() {
    let c = Container::applied(&example_yaml());
    c.write(
        "/root/own-repo.sh",
        r#"set -e
id hhl >/dev/null 2>&1 || useradd --system --home-dir /var/lib/hhl-entry --no-create-home --shell /bin/sh hhl
install -d -o hhl -g hhl -m 0700 /srv/git
runuser -u hhl -- git init -q --bare --initial-branch master /srv/git/dtserver.git
rm -rf /tmp/own && mkdir /tmp/own && chown hhl /tmp/own
runuser -u hhl -- sh -c 'cd /tmp/own && git init -q && printf "ngx.say(\"own\")\n" > main.lua && git add main.lua &&
  git -c user.name=o -c user.email=o@pc commit -qm own && git push -q /srv/git/dtserver.git HEAD:master'
"#,
    );
    c.ok("sh /root/own-repo.sh");
    let before = c.ok("runuser -u hhl -- git --git-dir=/srv/git/dtserver.git for-each-ref");
    let served = c.get_hhl(1090);
    let r = c.hhlctl(CFG, "repo init");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("updated /srv/git/dtserver.git"), "{}", r.stdout);
    assert!(!r.stdout.contains("seeded /srv/git/dtserver.git"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("seeded /srv/git/socketserver.git with the example game"),
        "{}",
        r.stdout
    );
    assert_eq!(
        c.ok("runuser -u hhl -- git --git-dir=/srv/git/dtserver.git for-each-ref"),
        before,
        "the existing repository's refs moved"
    );
    assert_eq!(c.get_hhl(1090), served, "dtserver-master was deployed");
    c.ok("test ! -e /srv/git/dtserver.git/hhl-seed.pending");
    assert_eq!(c.get_hhl(1080), "hhl socketserver-master ok\n");
}

#[test]
fn a_hung_apply_is_ended_by_systemd_reported_and_finished_by_the_next() {
    let c = with_repos();
    c.deploy_lua();
    assert_eq!(c.get_hhl(1082), "hhl socketserver-dev2 ok\n");
    // hhl-apply gets a 4 s start timeout, and its apply hangs once the new files are
    // written (before the jobs they need): the intent record is on disk.
    c.write(
        "/run/systemd/system/hhl-apply.service.d/hang.conf",
        "[Service]\nTimeoutStartSec=4s\nEnvironment=HHL_FAULT=apply:files:hang\n",
    );
    c.ok("systemctl daemon-reload");
    let t = Instant::now();
    let r = as_user(
        &c,
        "lead",
        "serverctrl",
        "sed -i 's/dev2: {port: 1082}/dev2: {port: 1182}/' hhl.yaml && git commit -qam 1182 && git push origin master 2>&1",
    );
    let took = t.elapsed();
    let said = "hhl-apply.service timed out: it did not finish within 4 s (its TimeoutStartSec), so systemd stopped it; `journalctl -u hhl-apply.service` shows where it was. What it owed systemd is recorded: the next apply finishes it";
    assert!(r.stdout.contains(&format!("remote: {said}")), "{}", r.stdout);
    assert!(!r.stdout.contains("running instances are as they were"), "{}", r.stdout);
    // 4 s, the stop (SIGTERM ends hhlctl at once) and the push itself; not 10 min.
    assert!(took < Duration::from_secs(40), "the push took {took:?}");
    assert_eq!(
        c.ok("systemctl show -p Result --value hhl-apply.service").trim(),
        "timeout"
    );
    c.ok("test -s /var/lib/hhl/apply.pending");
    assert!(c.ok("cat /opt/hhl/socketserver/dev2/conf/nginx.conf").contains("1182"));
    assert_ne!(
        c.get_hhl(1182),
        "hhl socketserver-dev2 ok\n",
        "the hung apply reloaded dev2"
    );
    assert_eq!(c.get_hhl(1082), "hhl socketserver-dev2 ok\n");
    // `ssh <entry> apply` waits the same way and exits 1.
    let t = Instant::now();
    let r = entry_with_env(&c, "lead", "", "apply");
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains(said), "{}", r.stdout);
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "ssh apply took {:?}",
        t.elapsed()
    );
    // Without the hang, the next apply finishes what the killed one owed: dev2
    // answers on its new port although its files already matched.
    c.ok("rm /run/systemd/system/hhl-apply.service.d/hang.conf && systemctl daemon-reload");
    let r = entry_with_env(&c, "lead", "", "apply");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(c.get_hhl(1182), "hhl socketserver-dev2 ok\n");
    c.ok("test ! -e /var/lib/hhl/apply.pending");
    assert_eq!(
        c.ok("systemctl show -p Result --value hhl-apply.service").trim(),
        "success"
    );
}
