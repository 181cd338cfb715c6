//! The developer's loop, as a developer with only a key has it (from a Windows PC: ssh,
//! git and a browser): every message names what they can type, Windows files are
//! refused plainly or just work, their own Redis is at hand (`ssh … redis`, `ssh -L`),
//! and nobody else's is, by any argument or forward.

mod support;

use std::path::Path;

use support::container::{Container, CFG};
use support::entry::{self, ssh, ssh_cmd};
use support::{example_yaml, repo, Run};

/// Text a developer reads: ssh's commands, push output (hooks), the shared operations
/// both use, the console, and the errors they pass on.
const DEVELOPER_FACING: &[&str] = &[
    "src/ssh",
    "src/ops",
    "src/web",
    "src/cmd/hook.rs",
    "src/host/systemd/journal.rs",
    "src/host/release.rs",
    "src/host/release_info.rs",
    "src/host/lua_syntax.rs",
    "src/host/redis_client.rs",
    "src/core/access.rs",
    "src/core/repos.rs",
    "src/core/push_limits.rs",
    "src/core/redis_cmd.rs",
    "src/core/encoding.rs",
];

/// Lines in those files that only admins see, or that are no message at all.
/// Files under those paths whose words only root reads: `hhlctl move`'s steps and
/// reports, and the Redis export and import it runs (root's units, the primary's peer
/// verbs). The one line of them a developer can meet (a move under way refuses their
/// request: `moving::under_way`) is checked by `a_move_under_way_names_no_command`.
const ADMIN_ONLY: &[&str] = &["src/ops/moving.rs", "src/ops/redis_data.rs"];

#[test]
fn a_move_under_way_names_no_command() {
    let text = std::fs::read_to_string(repo().join("src/ops/moving.rs")).unwrap();
    let start = text.find("pub fn under_way").expect("moving::under_way");
    let body = &text[start..start + text[start..].find("\n}\n").expect("its end")];
    assert!(body.contains("is being moved"), "{body}");
    assert!(!body.contains("hhlctl "), "{body}");
}

const NOT_FOR_DEVELOPERS: &[&str] = &[
    // The console's admin section (hidden unless the identity is an admin).
    "Run hhlctl plan",
    "<code>hhlctl apply</code> would change",
    "running hhlctl plan",
    "hhlctl plan failed",
    // hhl-web's own start-up line, in its journal.
    "hhlctl web: listening",
    // An apply's report of the other hosts (serverctrl pushes: admins only).
    "The retry timer tries again",
    // The hook script repo init writes (a file, not a message).
    "Installed by `hhlctl repo init`",
    "pub fn hook_script(hhlctl",
];

fn files_under(p: &Path, out: &mut Vec<std::path::PathBuf>) {
    if p.is_dir() {
        for e in std::fs::read_dir(p).unwrap() {
            files_under(&e.unwrap().path(), out);
        }
    } else {
        out.push(p.to_path_buf());
    }
}

/// A hint such as "`hhlctl rollback …` goes back" is a dead end for a developer, who
/// has no shell: each must be the `ssh <entry>@server …` form (`core::voice`).
#[test]
fn developer_facing_messages_name_no_hhlctl_command() {
    let mut files = Vec::new();
    for f in DEVELOPER_FACING {
        files_under(&repo().join(f), &mut files);
    }
    assert!(files.len() > 15, "{files:?}");
    let mut found = Vec::new();
    for f in files.iter().filter(|f| !ADMIN_ONLY.iter().any(|a| f.ends_with(a))) {
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") || code.starts_with("* ") || code.starts_with("<!--") {
                continue;
            }
            let hint = line.match_indices("hhlctl ").any(|(i, _)| {
                line[i + 7..]
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_lowercase() || c == '-')
            });
            if hint && !NOT_FOR_DEVELOPERS.iter().any(|ok| line.contains(ok)) {
                found.push(format!("{}:{}: {}", f.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "developer-facing text names hhlctl commands developers cannot run:\n{}",
        found.join("\n")
    );
}

/// The example with `lead` as admin, dev1's and dev2's keys, applied; repositories
/// made; sshd running.
fn served() -> Container {
    let c = Container::boot();
    let keys = entry::keys_yaml(&c, &["dev1", "dev2", "lead"]);
    c.write(CFG, &(example_yaml().replace("admins: []", "admins: [lead]") + &keys));
    let r = c.sh("hhlctl apply");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    c.deploy_lua();
    let r = c.sh("hhlctl repo init");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    entry::start_sshd(&c);
    c
}

fn refused(r: &Run, why: &str) {
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains(why), "expected `{why}`:\n{}", r.stderr);
    assert!(
        r.stderr
            .contains("hint: `ssh hhl@127.0.0.1 help` lists what you may run"),
        "{}",
        r.stderr
    );
}

#[test]
fn own_redis_by_ssh_and_through_a_forward_and_nobody_elses() {
    let c = served();
    // One command at a time, replies as redis-cli shows them.
    let r = ssh(&c, "dev1", "'redis SET k \"a b\"'");
    assert_eq!((r.code, r.stdout.as_str()), (0, "OK\n"), "{}", r.stderr);
    let r = ssh(&c, "dev1", "redis GET k");
    assert_eq!((r.code, r.stdout.as_str()), (0, "\"a b\"\n"), "{}", r.stderr);
    let r = ssh(&c, "dev1", "redis RPUSH l x y");
    assert_eq!(r.stdout, "(integer) 2\n");
    let r = ssh(&c, "dev1", "redis LRANGE l 0 -1");
    assert_eq!(r.stdout, "1) \"x\"\n2) \"y\"\n");
    let r = ssh(&c, "dev1", "redis GET nothing");
    assert_eq!(r.stdout, "(nil)\n");
    // It is dev1's Redis: the key is in 6381, not in dev2's 6382.
    assert_eq!(c.ok(&support::redis_cli(6381, "get k")).trim(), "a b");
    assert_eq!(c.ok(&support::redis_cli(6382, "exists k")).trim(), "0");
    c.ok(&support::redis_cli(6382, "set mine dev2-data"));

    // Hostile: no argument reaches another Redis, or leaves the ACL.
    refused(
        &ssh(&c, "dev1", "redis --owner dev2 GET mine"),
        "not yours: you are `dev1` and may use your own Redis only, not `dev2`'s",
    );
    refused(&ssh(&c, "dev1", "redis --owner master KEYS '*'"), "not `master`'s");
    refused(&ssh(&c, "dev1", "redis -p 6382 GET mine"), "redis: unknown option `-p`");
    refused(
        &ssh(&c, "dev1", "redis -h 127.0.0.1 GET mine"),
        "redis: unknown option `-h`",
    );
    refused(&ssh(&c, "dev1", "redis AUTH default x"), "AUTH is done for you");
    refused(
        &ssh(&c, "dev1", "redis HELLO 3 AUTH default x"),
        "HELLO is done for you",
    );
    refused(&ssh(&c, "dev1", "redis SUBSCRIBE ch"), "SUBSCRIBE waits for messages");
    refused(&ssh(&c, "dev1", "redis MONITOR"), "MONITOR waits for messages");
    for cmd in [
        "MIGRATE 127.0.0.1 6382 k 0 1000",
        "REPLICAOF 127.0.0.1 6382",
        "CONFIG SET port 6382",
        "CONFIG GET requirepass",
        "ACL LIST",
        "CLIENT KILL TYPE normal",
        "SHUTDOWN",
        "FLUSHALL",
        "DEBUG SLEEP 0",
    ] {
        let r = ssh(&c, "dev1", &format!("redis {cmd}"));
        assert_eq!(r.code, 1, "{cmd}: {}", r.stdout);
        // The ACL's NOPERM; DEBUG is refused before it (enable-debug-command no).
        assert!(
            r.stdout.starts_with("(error) NOPERM") || r.stdout.starts_with("(error) ERR DEBUG command not allowed"),
            "{cmd}: {}",
            r.stdout
        );
    }
    let r = ssh(&c, "dev2", "redis GET mine");
    assert_eq!(r.stdout, "\"dev2-data\"\n", "{}", r.stderr);
    assert_eq!(c.ok(&support::redis_cli(6381, "get k")).trim(), "a b");
    // An admin names an owner.
    let r = ssh(&c, "lead", "redis --owner dev2 GET mine");
    assert_eq!(r.stdout, "\"dev2-data\"\n", "{}", r.stderr);
    refused(
        &ssh(&c, "lead", "redis GET mine"),
        "`lead` has no Redis in hhl.yaml; name an owner",
    );

    // Forwards: dev1's key opens dev1's Redis port, for redis-cli on the PC.
    let secret = ssh(&c, "dev1", "redis-secret")
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("secret ").map(str::to_string))
        .expect("a secret");
    c.ok(&format!(
        "{} -f -N -o ExitOnForwardFailure=yes -L 16381:127.0.0.1:6381 hhl@127.0.0.1",
        ssh_cmd("dev1")
    ));
    assert_eq!(
        c.ok(&format!(
            "redis-cli -p 16381 --no-auth-warning --user default --pass {secret} GET k"
        ))
        .trim(),
        "a b"
    );
    let direct = |id: &str, to: &str| -> Run {
        c.sh(&format!(
            "printf 'PING\\r\\n' | timeout 10 {} -o ExitOnForwardFailure=yes -W {to} hhl@127.0.0.1",
            ssh_cmd(id)
        ))
    };
    let r = direct("dev1", "localhost:6381");
    assert!(r.stdout.contains("NOAUTH"), "{}\n{}", r.stdout, r.stderr);
    // … and no other port: not dev2's Redis, not master's, not sshd, not the IPv6 spelling.
    for to in [
        "127.0.0.1:6382",
        "localhost:6379",
        "127.0.0.1:22",
        "[::1]:6381",
        "127.0.0.1:1081",
    ] {
        let r = direct("dev1", to);
        assert_ne!(r.code, 0, "{to}: {}", r.stdout);
        // sshd refuses the channel (permitopen); ssh at LogLevel=ERROR says this much.
        assert!(r.stderr.contains("stdio forwarding failed"), "{to}: {}", r.stderr);
        assert!(
            !r.stdout.contains("NOAUTH") && !r.stdout.contains("PONG"),
            "{to}: {}",
            r.stdout
        );
    }
    let r = c.sh(&format!(
        "timeout 10 {} -N -o ExitOnForwardFailure=yes -L 16382:127.0.0.1:6382 hhl@127.0.0.1 & sleep 1; \
         redis-cli -p 16382 PING; wait",
        ssh_cmd("dev1")
    ));
    assert!(
        !r.stdout.contains("PONG") && !r.stdout.contains("NOAUTH"),
        "{}",
        r.stdout
    );
    // No listening on the server either (a squatter on another owner's port).
    let r = c.sh(&format!(
        "timeout 10 {} -N -o ExitOnForwardFailure=yes -R 16399:127.0.0.1:22 hhl@127.0.0.1",
        ssh_cmd("dev1")
    ));
    assert_ne!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("remote port forwarding failed"), "{}", r.stderr);
    assert_eq!(c.sh("ss -Hltn 'sport = :16399'").stdout.trim(), "");
    // The admin forwards to anyone's.
    let r = direct("lead", "127.0.0.1:6382");
    assert!(r.stdout.contains("NOAUTH"), "{}\n{}", r.stdout, r.stderr);
    // Others were served all along.
    assert_eq!(c.ok(&support::redis_cli(6382, "get mine")).trim(), "dev2-data");
}

/// A push from Windows: a UTF-16 main.lua (PowerShell's `>`) or one with a byte-order
/// mark is refused before any ref moves, naming the file and the fix; CRLF deploys.
#[test]
fn windows_files_are_refused_plainly_or_just_work() {
    let c = served();
    let r = entry::in_clone(
        &c,
        "dev1",
        "socketserver",
        "printf 'ngx.say(\"before\")\\n' > main.lua && git add -A && git commit -qm before && git push -q origin HEAD:dev1",
    );
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert_eq!(c.get_hhl(1081), "before\n");
    let tip = || c.ok("git -C /srv/git/socketserver.git rev-parse dev1");
    let before = tip();
    for (what, make) in [
        (
            "is saved as UTF-16 (little-endian, with a byte-order mark)",
            "printf 'ngx.say(\"utf16\")\\r\\n' | iconv -f UTF-8 -t UTF-16 > main.lua",
        ),
        (
            "starts with a UTF-8 byte-order mark",
            "printf '\\357\\273\\277ngx.say(\"bom\")\\n' > main.lua",
        ),
    ] {
        let r = entry::in_clone(
            &c,
            "dev1",
            "socketserver",
            &format!("{make} && git commit -qam enc && git push origin HEAD:dev1; git reset -q --hard HEAD~1"),
        );
        assert!(
            r.stdout
                .contains(&format!("remote:   main.lua: {what}; save it as UTF-8")),
            "{}",
            r.stdout
        );
        assert!(
            !r.stdout.contains("<\\255>") && !r.stdout.contains("hhlctl"),
            "{}",
            r.stdout
        );
        assert!(r.stdout.contains("[remote rejected]"), "{}", r.stdout);
        assert_eq!(tip(), before, "the branch moved");
        assert_eq!(c.get_hhl(1081), "before\n");
    }
    // CRLF line endings (git on Windows without autocrlf) deploy and run.
    let r = entry::in_clone(
        &c,
        "dev1",
        "socketserver",
        "printf 'local t = {\\r\\n  \"crlf\",\\r\\n}\\r\\nngx.say(t[1])\\r\\n' > main.lua && git commit -qam crlf && git push origin HEAD:dev1",
    );
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(r.stdout.contains("remote: deployed "), "{}", r.stdout);
    assert_eq!(c.get_hhl(1081), "crlf\n");

    // The access log: off by default, so nothing grows under the instance; with
    // `access_log: true`, one line a request in the journal, read through `logs`.
    let access = "ls /opt/hhl/socketserver/*/logs/";
    assert!(!c.ok(access).contains("access.log"), "{}", c.ok(access));
    c.ok(&format!(
        "sed -i 's/      dev1: {{port: 1081}}/      dev1: {{port: 1081, access_log: true}}/' {CFG}"
    ));
    let r = c.sh("hhlctl apply");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    c.ok("curl -sf 'http://127.0.0.1:1081/hhl?probe=1' && curl -sf 'http://127.0.0.1:1082/hhl?probe=2'");
    c.ok("for i in $(seq 100); do journalctl -q -u openresty@socketserver-dev1 | grep -q 'GET /hhl?probe=1' && exit 0; sleep 0.05; done; exit 1");
    let r = ssh(&c, "dev1", "logs -n 20 socketserver-dev1");
    assert!(r.stdout.contains("\"GET /hhl?probe=1 HTTP/1.1\" 200"), "{}", r.stdout);
    assert_eq!(
        c.sh("journalctl -q -u openresty@socketserver-dev2 | grep 'probe=2'")
            .stdout,
        ""
    );
    assert!(!c.ok(access).contains("access.log"), "{}", c.ok(access));
}

/// Code that compiles but fails at runtime is live after the push, and the push says
/// so: the answer to the check request, the new workers' error lines with `file:line`
/// as in the repository, and the rollback to type. A clean push says it was checked.
#[test]
fn runtime_errors_show_at_push_time() {
    let c = served();
    let push = |code: &str, msg: &str| -> Run {
        entry::in_clone(
            &c,
            "dev1",
            "socketserver",
            &format!("printf '{code}' > main.lua && git add -A && git commit -qm {msg} && git push origin HEAD:dev1"),
        )
    };
    let r = push("ngx.say(\"ok\")\\n", "clean");
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(
        r.stdout.contains("remote: checked socketserver-dev1: GET / → 200 in "),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("error:"), "{}", r.stdout);

    // A nil index on line 2.
    let r = push("local cfg\\nngx.say(cfg.name)\\n", "nil-index");
    assert!(r.stdout.contains("remote: deployed "), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("remote: error: the new code of socketserver-dev1 is live but failing: GET / → 500"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("runtime error: main.lua:2: attempt to index local 'cfg' (a nil value)"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("`ssh hhl@127.0.0.1 rollback socketserver-dev1` goes back to "),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("hhlctl "), "{}", r.stdout);
    // The same error through `logs --level --since` (the console's filters): errors
    // only; and no filter opens another owner's logs.
    let r = ssh(&c, "dev1", "logs --level err --since 15m socketserver-dev1");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("socketserver-dev1: ") && r.stdout.contains("main.lua:2: attempt to index local 'cfg'"),
        "{}",
        r.stdout
    );
    assert!(
        !r.stdout.contains("[info]") && !r.stdout.contains("[notice]"),
        "{}",
        r.stdout
    );
    let r = ssh(&c, "dev1", "logs --level debug");
    assert!(
        !r.stdout.contains("-dev2") && !r.stdout.contains("-master"),
        "{}",
        r.stdout
    );
    for cmd in [
        "logs --level debug socketserver-dev2",
        "logs --since 7d --level err 6382",
        "logs --level 0 --since 1d dtserver-master",
        "logs -n 5 --since 1h socketserver-dev1 socketserver-dev2",
    ] {
        refused(&ssh(&c, "dev1", cmd), "may not read the logs of");
    }
    refused(
        &ssh(&c, "dev1", "'logs --since \"1h -u redis@6382.service\"'"),
        "is not one of 15m",
    );
    refused(&ssh(&c, "dev1", "logs --level loud"), "is not a level");
    // A require that fails, from a module file: its own file and line.
    let r = entry::in_clone(
        &c,
        "dev1",
        "socketserver",
        "mkdir -p game && printf 'local M = {}\\nlocal x = require(\"game.missing\")\\nreturn M\\n' > game/broken.lua && \
         printf 'ngx.say(require(\"game.broken\"))\\n' > main.lua && git add -A && git commit -qm req && git push origin HEAD:dev1",
    );
    assert!(r.stdout.contains("is live but failing: GET / → 500"), "{}", r.stdout);
    assert!(r.stdout.contains("module 'game.missing' not found"), "{}", r.stdout);
    assert!(r.stdout.contains("game/broken.lua:2:"), "{}", r.stdout);
    // The rollback it names works, and the next clean push is checked clean.
    let r = ssh(&c, "dev1", "rollback socketserver-dev1");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let r = push("ngx.say(\"fixed\")\\n", "fixed");
    assert!(
        r.stdout.contains("remote: checked socketserver-dev1: GET / → 200"),
        "{}",
        r.stdout
    );
    assert_eq!(c.get_hhl(1081), "fixed\n");

    // `help` is dev1's: who, which instances (ports, state), clone and push commands.
    let r = ssh(&c, "dev1", "help");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let h = &r.stdout;
    assert!(
        h.starts_with("you are dev1, a developer; you reach this server as `ssh hhl@127.0.0.1 …`"),
        "{h}"
    );
    assert!(h.contains("  socketserver-dev1  port 1081   active "), "{h}");
    assert!(
        h.contains("  6381               port 6381   active      your Redis"),
        "{h}"
    );
    assert!(h.contains("  git clone -b dev1 hhl@127.0.0.1:socketserver\n"), "{h}");
    assert!(
        h.contains("  git clone hhl@127.0.0.1:dtserver        (master: you have no branch dev1"),
        "{h}"
    );
    assert!(h.contains("  git push origin HEAD:dev1 "), "{h}");
    assert!(h.contains("commands (ssh hhl@127.0.0.1 <command>):"), "{h}");
    assert!(
        !h.contains("dev2") && !h.contains("admin commands") && !h.contains("hhlctl "),
        "{h}"
    );
}
