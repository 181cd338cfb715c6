//! The docs' quickstarts, verbatim, on clean Debian 12 and 13 hosts (see
//! `support/cleanhost.rs`): every `sh tested` block of docs/ops/install.md in order, as
//! root in /root (install the .deb with apt, Recommends included; dev1's key; plan,
//! apply first try, status; `repo init`, after which every master instance serves the
//! example game; the console); then docs/dev/windows.md's `tested` blocks from a
//! client OUTSIDE the host (its own network namespace, reaching the host's address):
//! `git clone`, a push that deploys, `ssh hhl restart`, and the console through the
//! documented tunnel (sign-in link, then the instances page). Then a reload, the log
//! page's sign-in, a squatter on a port, a reboot, `dpkg --purge`. And the same host
//! with `--no-install-recommends`: what is lost is said at apply time and when a
//! developer meets it.

mod support;

#[path = "support/cleanhost.rs"]
mod cleanhost;

use cleanhost::{Client, Host, HOST_ADDR};

/// The shipped example's ports (examples/hhl.yaml).
const OPENRESTY: [u16; 11] = [1080, 1081, 1082, 1083, 1084, 1090, 1091, 1092, 1093, 1094, 1100];
const REDIS: [u16; 5] = [6379, 6381, 6382, 6383, 6384];
const INSTALL: &str = "cd /root && apt-get install -y -q -o Dpkg::Use-Pty=0";
const PASSWORD: &str = "dev1 long secret";

fn booted(suite: &str, recommends: bool) -> Host {
    let mut h = Host::prepare(suite, recommends);
    h.boot();
    let no_rec = if recommends { "" } else { " --no-install-recommends" };
    let r = h.sh(&format!("{INSTALL}{no_rec} ./{} 2>&1", h.deb));
    assert_eq!(r.code, 0, "[{suite}] apt-get install:\n{}\n{}", r.stdout, r.stderr);
    report_install(suite, &r.stdout, recommends);
    installed(&h);
    h
}

/// What apt said the install takes (the figures docs/ops/install.md quotes).
fn report_install(suite: &str, apt: &str, recommends: bool) {
    assert!(!apt.contains("dpkg: warning"), "[{suite}] {apt}");
    for line in apt
        .lines()
        .filter(|l| l.contains("newly installed") || l.contains("additional disk space"))
    {
        eprintln!(
            "[{suite}] install {}: {}",
            if recommends {
                "with Recommends"
            } else {
                "without Recommends"
            },
            line.trim()
        );
    }
}

/// Right after the install: nothing of hhlctl's runs, no Debian Redis, and the log
/// page refuses to start before the first apply.
fn installed(h: &Host) {
    let suite = h.suite.as_str();
    // Installing starts nothing of hhlctl's, and no Redis of Debian's: the package
    // depends on redis-tools, not on redis-server and its service.
    assert!(
        h.sh("systemctl cat redis-server.service").code != 0,
        "[{suite}] redis-server.service was installed"
    );
    assert!(
        h.sh("redis-cli -p 6379 ping").code != 0,
        "[{suite}] something answers on 6379"
    );
    // The log page before the first apply (no key, no password file) refuses to
    // start, visibly, naming what it needs.
    let r = h.sh("systemctl start hhl-web.service");
    assert_ne!(r.code, 0, "[{suite}] hhl-web started before apply");
    assert!(r.stderr.contains("Assertion failed"), "[{suite}] {}", r.stderr);
    let status = h.sh("systemctl status hhl-web.service").stdout;
    assert!(
        status.contains(
            "Assertion failed for hhl-web.service - hhl log page (needs /etc/hhl/web.key and web.passwd, which hhlctl apply makes)"
        ),
        "[{suite}] {status}"
    );
}

/// `hhlctl plan`, `apply` (first try, exit 0), `status` (exit 0). Returns apply's stderr.
fn plan_apply_status(h: &Host) -> String {
    let plan = h.ok("hhlctl plan");
    assert!(plan.contains("socketserver-dev1"), "[{}] plan:\n{plan}", h.suite);
    let r = h.sh("hhlctl apply");
    assert_eq!(r.code, 0, "[{}] apply:\n{}\n{}", h.suite, r.stdout, r.stderr);
    assert!(
        r.stdout.contains("started redis@6379.service"),
        "[{}] {}",
        h.suite,
        r.stdout
    );
    let status = h.sh("hhlctl status");
    assert_eq!(
        status.code, 0,
        "[{}] status:\n{}\n{}",
        h.suite, status.stdout, status.stderr
    );
    r.stderr
}

/// Every OpenResty instance answers HTTP, every Redis PING.
fn every_instance_answers(h: &Host) {
    for port in OPENRESTY {
        h.assert_http_answers(port);
    }
    for port in REDIS {
        assert_eq!(
            h.ok(&support::redis_cli(port, "ping")).trim(),
            "PONG",
            "[{}] {port}",
            h.suite
        );
    }
}

/// The ops step "add the developers' keys": dev1's key (made here, where dev1's
/// machine plays the client) goes into hhl.yaml's `keys:`, and dev1's ssh config
/// names the server `hhl`, as docs/dev/windows.md says.
fn add_dev1_key(h: &Host) {
    h.ok("mkdir -p -m 700 /root/.ssh && ssh-keygen -q -t ed25519 -N '' -C dev1@laptop -f /root/.ssh/id_ed25519");
    h.ok("printf 'keys:\n  dev1: [\"%s\"]\n' \"$(cat /root/.ssh/id_ed25519.pub)\" >> /etc/hhl/hhl.yaml");
    h.ok("printf 'Host hhl\n    HostName 127.0.0.1\n    User hhl\n    IdentityFile ~/.ssh/id_ed25519\n    StrictHostKeyChecking accept-new\n    BatchMode yes\n' > /root/.ssh/config");
}

/// `ssh hhl <command>` as dev1, from dev1's machine.
fn dev1_ssh(h: &Host, command: &str) -> support::Run {
    h.sh(&format!("ssh hhl {command}"))
}

/// `hhlctl repo init`; dev1 clones socketserver over ssh and pushes a main.lua to
/// branch dev1.
fn repo_init_and_push(h: &Host) -> support::Run {
    let r = h.sh("hhlctl repo init");
    assert_eq!(r.code, 0, "[{}] repo init:\n{}\n{}", h.suite, r.stdout, r.stderr);
    h.sh(
        "cd /root && git config --global user.email dev1@hhl && git config --global user.name dev1 \
         && git clone -q hhl:socketserver 2>&1 && cd socketserver \
         && printf 'ngx.say(\"hello from dev1\")\\n' > main.lua && git add -A && git commit -qm hello \
         && git push origin HEAD:dev1 2>&1",
    )
}

/// The developer's loop with only a key (issue 27): a UTF-16 main.lua is refused by
/// name, a runtime error shows at push time with `file:line` and the rollback to type,
/// their own Redis by `ssh hhl redis` and through `ssh -L` with redis-cli, and no
/// forward to another developer's Redis. Leaves "hello from dev1" live.
fn developer_loop(h: &Host) {
    let suite = &h.suite;
    // dev1's own clone of their branch (the ops and developer quickstarts pushed it from
    // the PC; this one is on the host, through the same key).
    h.ok(
        "cd /root && git config --global user.email dev1@hhl && git config --global user.name dev1 \
         && rm -rf socketserver && git clone -q -b dev1 hhl:socketserver 2>&1",
    );
    let push = |script: &str| h.sh(&format!("cd /root/socketserver && {{ {script}; }} 2>&1"));
    let r = push(
        "printf 'ngx.say(\"utf16\")\\r\\n' | iconv -f UTF-8 -t UTF-16 > main.lua && git commit -qam utf16 \
         && git push origin HEAD:dev1; git reset -q --hard HEAD~1",
    );
    assert!(
        r.stdout.contains("main.lua: is saved as UTF-16") && r.stdout.contains("save it as UTF-8"),
        "[{suite}] UTF-16 push:\n{}",
        r.stdout
    );
    assert_eq!(h.curl(&["http://127.0.0.1:1081/hhl"]).stdout, "hello from dev1\n");
    let r = push(
        "printf 'local cfg\\nngx.say(cfg.name)\\n' > main.lua && git commit -qam broken && git push origin HEAD:dev1",
    );
    assert!(
        r.stdout.contains("is live but failing: GET / → 500")
            && r.stdout
                .contains("main.lua:2: attempt to index local 'cfg' (a nil value)")
            && r.stdout.contains("rollback socketserver-dev1` goes back to"),
        "[{suite}] runtime error push:\n{}",
        r.stdout
    );
    let r = dev1_ssh(h, "rollback socketserver-dev1");
    assert_eq!(r.code, 0, "[{suite}] rollback:\n{}\n{}", r.stdout, r.stderr);
    assert_eq!(h.curl(&["http://127.0.0.1:1081/hhl"]).stdout, "hello from dev1\n");
    h.ok("cd /root/socketserver && git reset -q --hard HEAD~1");

    let r = dev1_ssh(h, "redis SET k v");
    assert_eq!(r.stdout, "OK\n", "[{suite}] {}", r.stderr);
    let r = dev1_ssh(h, "redis GET k");
    assert_eq!(r.stdout, "\"v\"\n", "[{suite}] {}", r.stderr);
    let secret = dev1_ssh(h, "redis-secret")
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("secret ").map(str::to_string))
        .expect("a secret");
    h.ok("ssh -f -N -o ExitOnForwardFailure=yes -L 16381:127.0.0.1:6381 hhl");
    let got = h.ok(&format!(
        "redis-cli -p 16381 --no-auth-warning --user default --pass {secret} GET k"
    ));
    assert_eq!(got.trim(), "v", "[{suite}] redis-cli through ssh -L");
    let r = h.sh("printf 'PING\\r\\n' | timeout 10 ssh -o ExitOnForwardFailure=yes -W 127.0.0.1:6382 hhl");
    assert!(
        r.code != 0 && r.stderr.contains("stdio forwarding failed") && !r.stdout.contains("NOAUTH"),
        "[{suite}] forward to dev2's Redis:\n{}\n{}",
        r.stdout,
        r.stderr
    );
}

/// `hhlctl web passwd` refuses a short password; with one, dev1 signs in and sees only
/// dev1's instances; `ssh hhl web` signs dev1 in once without one.
fn log_page_signs_in(h: &Host) {
    let r = h.sh("printf 'short\\n' | hhlctl web passwd dev1");
    assert_eq!(r.code, 1, "[{}] {}", h.suite, r.stderr);
    assert!(
        r.stderr.contains("shorter than 8 characters"),
        "[{}] {}",
        h.suite,
        r.stderr
    );
    h.ok(&format!("printf '%s\\n' '{PASSWORD}' | hhlctl web passwd dev1"));
    h.ok("systemctl enable --now hhl-web");
    h.eventually(
        "cat /proc/net/tcp /proc/net/tcp6 | awk '$4 == \"0A\" && $2 ~ /:1F90$/' | grep -q .",
        "hhl-web listening on 8080",
        30,
    );
    let login = h.curl(&[
        "-D",
        "-",
        "-o",
        "/dev/null",
        "-d",
        &format!("user=dev1&password={}", PASSWORD.replace(' ', "+")),
        "http://127.0.0.1:8080/login",
    ]);
    assert!(
        login.stdout.starts_with("HTTP/1.1 303"),
        "[{}] sign-in:\n{}",
        h.suite,
        login.stdout
    );
    let cookie = login
        .stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .and_then(|c| c.split(';').next())
        .unwrap_or_else(|| panic!("[{}] no session cookie:\n{}", h.suite, login.stdout))
        .to_string();
    let mine = h.curl(&[
        "-H",
        &format!("Cookie: {cookie}"),
        "http://127.0.0.1:8080/api/instances",
    ]);
    assert!(
        mine.stdout.contains("socketserver-dev1") && !mine.stdout.contains("socketserver-dev2"),
        "[{}] dev1's instances: {}",
        h.suite,
        mine.stdout
    );
    // Passwordless: `ssh hhl web` prints a one-time link; it signs in once.
    let link = dev1_ssh(h, "web");
    assert_eq!(
        link.code, 0,
        "[{}] ssh hhl web:\n{}\n{}",
        h.suite, link.stdout, link.stderr
    );
    let url = link.stdout.trim();
    assert!(
        url.starts_with("http://127.0.0.1:8080/link?t=dev1."),
        "[{}] {url}",
        h.suite
    );
    let first = h.curl(&["-D", "-", "-o", "/dev/null", url]);
    assert!(
        first.stdout.starts_with("HTTP/1.1 303"),
        "[{}] link:\n{}",
        h.suite,
        first.stdout
    );
    let again = h.curl(&["-D", "-", "-o", "/dev/null", url]);
    assert!(
        again.stdout.starts_with("HTTP/1.1 403"),
        "[{}] link twice:\n{}",
        h.suite,
        again.stdout
    );
}

/// Another program on an instance's port is refused before anything changes, naming
/// it; a unit that hit its start limit is started again by apply.
fn port_taken_and_start_limit(h: &Host) {
    h.ok("hhlctl stop 6379");
    h.ok("systemd-run -q --unit=squatter bash -c 'exec -a redis-server /usr/bin/redis-check-rdb --port 6379 --save \"\" --daemonize no'");
    h.eventually("redis-cli -p 6379 ping | grep -q PONG", "the squatter on 6379", 20);
    // Our own unit fails on the taken port until systemd gives up on it (a window
    // of 60 s, not 10, so a loaded machine cannot slip out of it mid-test).
    h.ok("mkdir -p /run/systemd/system/redis@6379.service.d && \
          printf '[Unit]\\nStartLimitIntervalSec=60\\n' > /run/systemd/system/redis@6379.service.d/limit.conf && \
          systemctl daemon-reload");
    h.eventually(
        "systemctl start redis@6379.service 2>/dev/null; \
         journalctl -q -u redis@6379.service | grep -q 'Start request repeated too quickly'",
        "redis@6379 hitting its start limit",
        60,
    );
    // An operator retrying adds only systemd's lines: the last 15 hold no Redis line.
    h.ok("for i in 1 2 3 4 5 6; do systemctl start redis@6379.service 2>/dev/null; done; true");
    // hhlctl start clears the start limit first (as ssh and the console do), so Redis
    // really tries again, and the excerpt of the failed job holds the line that
    // explains it (Redis's own, or from the errors logged recently before it).
    let r = h.sh("hhlctl start 6379");
    assert_eq!(
        r.code, 1,
        "[{}] start with 6379 taken:\n{}\n{}",
        h.suite, r.stdout, r.stderr
    );
    assert!(
        r.stderr.contains("error: starting redis@6379.service failed")
            && r.stderr.contains("last lines of its journal")
            && r.stderr.contains("Address already in use"),
        "[{}] the excerpt:\n{}",
        h.suite,
        r.stderr
    );
    // Its restarts (Restart=always) run into the start limit again: wait until it has,
    // so the apply below finds it failed, not between two restarts.
    h.eventually(
        "systemctl is-failed -q redis@6379.service",
        "redis@6379 failed again after hhlctl start",
        60,
    );
    let r = h.sh("hhlctl apply");
    assert_eq!(
        r.code, 1,
        "[{}] apply with 6379 taken:\n{}\n{}",
        h.suite, r.stdout, r.stderr
    );
    for want in [
        "port 6379 of redis@6379.service is already in use by pid ",
        "(`redis-server",
        ") of squatter.service",
        "--> /etc/hhl/hhl.yaml:",
        "hint: stop it for good (`systemctl disable --now squatter.service`), or give 6379 another port",
    ] {
        assert!(
            r.stderr.contains(want),
            "[{}] wanted {want:?} in:\n{}",
            h.suite,
            r.stderr
        );
    }
    assert_eq!(r.stdout, "", "[{}] apply changed something: {}", h.suite, r.stdout);
    h.ok("systemctl stop squatter.service");
    let r = h.sh("hhlctl apply");
    assert_eq!(
        r.code, 0,
        "[{}] apply after the start limit:\n{}\n{}",
        h.suite, r.stdout, r.stderr
    );
    assert_eq!(h.ok(&support::redis_cli(6379, "ping")).trim(), "PONG");
}

/// `dpkg --purge hhlctl`: no file hhlctl generated is left, nor its units; the
/// developers' code stays. Returns the purge's output.
fn purge(h: &Host) -> String {
    let generated = h.ok("grep '^/' /var/lib/hhl/generated.list");
    assert!(generated.lines().count() > 40, "[{}] {generated}", h.suite);
    let r = h.sh("dpkg --purge hhlctl 2>&1");
    assert_eq!(r.code, 0, "[{}] purge:\n{}\n{}", h.suite, r.stdout, r.stderr);
    assert!(!r.stdout.contains("warning"), "[{}] purge:\n{}", h.suite, r.stdout);
    let left: Vec<&str> = generated
        .lines()
        .filter(|f| h.sh(&format!("test -e '{f}' || test -L '{f}'")).code == 0)
        .collect();
    assert!(left.is_empty(), "[{}] purge left generated files: {left:?}", h.suite);
    for gone in [
        "/var/lib/hhl",
        "/etc/hhl",
        "/usr/lib/systemd/system/openresty@.service",
        "/usr/lib/systemd/system/hhl-web.service",
        "/etc/systemd/system/multi-user.target.wants/hhl-web.service",
        "/etc/systemd/system/hhl.target.wants",
    ] {
        assert!(
            h.sh(&format!("test -e {gone} || test -L {gone}")).code != 0,
            "[{}] purge left {gone}",
            h.suite
        );
    }
    assert!(
        h.sh("test -d /opt/hhl/socketserver/dev1/app").code == 0,
        "[{}] purge removed dev1's code",
        h.suite
    );
    r.stdout
}

/// The tested blocks of the developer quickstart, by what they do.
struct DevSteps {
    ssh_config: String,
    clone: String,
    push: String,
    restart: String,
    tunnel: String,
    link: String,
}

fn dev_steps() -> DevSteps {
    const PAGE: &str = "docs/dev/windows.md";
    let config = support::blocks(PAGE, "text tested ssh-config");
    let run = support::blocks(PAGE, "powershell tested");
    let background = support::blocks(PAGE, "powershell tested background");
    assert_eq!(
        (config.len(), run.len(), background.len()),
        (1, 4, 1),
        "{PAGE}'s tested blocks changed: update tests/cleanhost.rs"
    );
    let find = |what: &str| -> String {
        run.iter()
            .find(|b| b.contains(what))
            .unwrap_or_else(|| panic!("{PAGE}: no tested block with `{what}`"))
            .clone()
    };
    DevSteps {
        ssh_config: config[0].clone(),
        clone: find("git clone"),
        push: find("git push"),
        restart: find("ssh hhl restart"),
        tunnel: background[0].clone(),
        link: find("ssh hhl web"),
    }
}

/// dev1's PC: a key (made as the page says: `ssh-keygen -t ed25519`, here without a
/// passphrase), the page's ssh config naming the host by its address, and the line
/// dev1 sends ops, which ops saves as /root/dev1.pub on the host. The host's own root
/// gets the same key and a `hhl` alias to 127.0.0.1 for the checks made on the host.
fn dev1_pc(h: &Host, client: &Client, ssh_config: &str) {
    let r = client.sh("mkdir -p -m 700 .ssh && ssh-keygen -q -t ed25519 -N '' -C dev1@pc -f .ssh/id_ed25519");
    assert_eq!(r.code, 0, "[{}] ssh-keygen:\n{}", h.suite, r.stderr);
    let config = ssh_config.replace("devserver.example", HOST_ADDR)
        + "\n# The test's: no prompt for the host key on first use, never a password prompt.\nHost *\n    StrictHostKeyChecking accept-new\n    BatchMode yes\n";
    std::fs::write(client.home.join(".ssh/config"), config).unwrap();
    let public = std::fs::read_to_string(client.home.join(".ssh/id_ed25519.pub")).unwrap();
    let private = std::fs::read_to_string(client.home.join(".ssh/id_ed25519")).unwrap();
    h.ok(&format!("printf '%s' '{}' > /root/dev1.pub", public.trim()));
    h.ok(&format!(
        "mkdir -p -m 700 /root/.ssh && printf '%s' '{private}' > /root/.ssh/id_ed25519 && chmod 600 /root/.ssh/id_ed25519 && cp /root/dev1.pub /root/.ssh/id_ed25519.pub"
    ));
    h.ok("printf 'Host hhl\n    HostName 127.0.0.1\n    User hhl\n    IdentityFile ~/.ssh/id_ed25519\n    StrictHostKeyChecking accept-new\n    BatchMode yes\n' > /root/.ssh/config");
}

/// docs/ops/install.md's tested blocks, verbatim, in order, as root in /root; apt
/// answers yes by configuration (the reader answers its question). Checks after the
/// install and at the end.
fn ops_quickstart(h: &Host) {
    let suite = h.suite.as_str();
    let steps = support::blocks("docs/ops/install.md", "sh tested");
    assert!(
        steps.len() >= 4,
        "docs/ops/install.md has {} tested blocks",
        steps.len()
    );
    assert!(
        steps[0].contains("apt-get install"),
        "the first step installs: {}",
        steps[0]
    );
    h.ok("echo 'APT::Get::Assume-Yes \"true\";' > /etc/apt/apt.conf.d/90hhl-test-yes");
    for (i, step) in steps.iter().enumerate() {
        let r = h.sh(&format!("cd /root && set -e\n{step}"));
        assert_eq!(
            r.code,
            0,
            "[{suite}] docs/ops/install.md step {} failed:\n{step}\nstdout:\n{}\nstderr:\n{}",
            i + 1,
            r.stdout,
            r.stderr
        );
        if i == 0 {
            report_install(suite, &r.stdout, true);
            installed(h);
        }
    }
    h.ok("rm /etc/apt/apt.conf.d/90hhl-test-yes");
    assert!(h.sh("hhlctl status").code == 0, "[{suite}] status after the quickstart");
    every_instance_answers(h);
    // A fresh server serves code: master's instances run the example game.
    for (port, instance) in [
        (1080, "socketserver-master"),
        (1090, "dtserver-master"),
        (1100, "httpserver-master"),
    ] {
        assert_eq!(
            h.curl(&[&format!("http://127.0.0.1:{port}/hhl")]).stdout,
            format!("hhl {instance} ok\n"),
            "[{suite}] {instance} after repo init"
        );
    }
    h.eventually(
        "cat /proc/net/tcp /proc/net/tcp6 | awk '$4 == \"0A\" && $2 ~ /:1F90$/' | grep -q .",
        "hhl-web listening on 8080",
        30,
    );
}

/// docs/dev/windows.md's tested blocks, verbatim, from dev1's PC outside the host.
fn dev_quickstart(h: &Host, client: &Client, dev: &DevSteps) {
    let suite = h.suite.as_str();
    let run = |what: &str, script: &str| -> support::Run {
        let r = client.sh(&format!("set -e\n{script}"));
        assert_eq!(
            r.code, 0,
            "[{suite}] dev1's `{what}` step failed:\n{script}\nstdout:\n{}\nstderr:\n{}",
            r.stdout, r.stderr
        );
        r
    };
    client.sh("git config --global user.email dev1@pc && git config --global user.name dev1");
    run("clone", &dev.clone);
    // The reader changes main.lua in their editor.
    std::fs::write(
        client.home.join("socketserver/main.lua"),
        "ngx.say(\"hello from dev1\")\n",
    )
    .unwrap();
    let push = run("push", &format!("cd socketserver\n{}", dev.push));
    assert!(
        push.stderr.contains("remote: deployed ")
            && push
                .stderr
                .contains("remote: reloaded openresty@socketserver-dev1.service"),
        "[{suite}] push:\n{}",
        push.stderr
    );
    assert_eq!(h.curl(&["http://127.0.0.1:1081/hhl"]).stdout, "hello from dev1\n");
    // The branch started from master: the example game's other files came with it.
    h.ok("runuser -u hhl -- git --git-dir=/srv/git/socketserver.git cat-file -e dev1:game/session.lua");
    let pid = h.ok("systemctl show -p MainPID --value openresty@socketserver-dev1.service");
    let r = run("restart", &dev.restart);
    assert!(r.stdout.contains("socketserver-dev1"), "[{suite}] {}", r.stdout);
    assert_ne!(
        h.ok("systemctl show -p MainPID --value openresty@socketserver-dev1.service"),
        pid
    );

    // The console through the documented tunnel: the link opens on dev1's PC.
    let mut tunnel = client.spawn(dev.tunnel.trim());
    client.eventually(
        "curl -s -o /dev/null -m 5 http://127.0.0.1:8080/login",
        "the console through `ssh -N hhl-console`",
        30,
    );
    let link = run("web", &dev.link);
    let url = link.stdout.trim().to_string();
    assert!(url.starts_with("http://127.0.0.1:8080/link?t=dev1."), "[{suite}] {url}");
    let page = client.sh(&format!(
        "curl -s -m 10 -c jar -b jar -L -o page.html -w '%{{http_code}} %{{url_effective}}' '{url}' && cat page.html"
    ));
    assert!(
        page.stdout.starts_with("200 http://127.0.0.1:8080/") && page.stdout.contains("<title>hhl console</title>"),
        "[{suite}] the sign-in link did not land on the console:\n{}\n{}",
        page.stdout,
        page.stderr
    );
    let instances = client.sh("curl -s -m 10 -b jar http://127.0.0.1:8080/api/instances");
    assert!(
        instances.stdout.contains("socketserver-dev1") && !instances.stdout.contains("socketserver-dev2"),
        "[{suite}] dev1's instances page: {}",
        instances.stdout
    );
    let _ = tunnel.kill();
    let _ = tunnel.wait();
}

fn quickstart(suite: &str) {
    let started = std::time::Instant::now();
    let dev = dev_steps();
    let mut h = Host::prepare(suite, true);
    let client = h.with_client();
    h.boot();
    dev1_pc(&h, &client, &dev.ssh_config);
    ops_quickstart(&h);
    dev_quickstart(&h, &client, &dev);

    let r = h.sh("hhlctl reload socketserver-dev1");
    assert_eq!(r.code, 0, "[{suite}] reload:\n{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("reloaded openresty@socketserver-dev1.service"),
        "{}",
        r.stdout
    );

    // A developer reads their own instance over ssh, and may not touch dev2's.
    h.eventually(
        "test -s /var/log/hhl/dev1/socketserver-dev1.log",
        "dev1's rsyslog file",
        30,
    );
    let r = dev1_ssh(&h, "logs -n 5 socketserver-dev1");
    assert_eq!(r.code, 0, "[{suite}] ssh hhl logs:\n{}\n{}", r.stdout, r.stderr);
    let r = dev1_ssh(&h, "restart socketserver-dev2");
    assert_eq!(r.code, 1, "[{suite}] {}", r.stderr);
    assert!(
        r.stderr
            .contains("refused: not yours: the instances of `dev2` belong to dev2, and you are `dev1`"),
        "[{suite}] {}",
        r.stderr
    );

    developer_loop(&h);
    log_page_signs_in(&h);
    port_taken_and_start_limit(&h);

    h.reboot();
    h.eventually("hhlctl status >/dev/null", "every instance back after the reboot", 60);
    every_instance_answers(&h);
    assert_eq!(h.curl(&["http://127.0.0.1:1081/hhl"]).stdout, "hello from dev1\n");

    purge(&h);
    // Directories polkitd and rsyslog ship stay.
    h.ok("test -d /etc/polkit-1/rules.d && test -d /etc/rsyslog.d");
    eprintln!(
        "[{suite}] quickstart with Recommends: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

fn without_recommends(suite: &str) {
    let started = std::time::Instant::now();
    let h = booted(suite, false);
    add_dev1_key(&h);
    assert!(
        h.sh("dpkg -s polkitd").code != 0 && h.sh("dpkg -s rsyslog").code != 0,
        "[{suite}] polkitd or rsyslog installed"
    );
    let warnings = plan_apply_status(&h);
    for want in [
        "warning: polkit is not installed on this host (Debian package polkitd)",
        "warning: rsyslog is not installed on this host (Debian package rsyslog)",
    ] {
        assert!(
            warnings.contains(want),
            "[{suite}] wanted {want:?} from apply:\n{warnings}"
        );
    }
    every_instance_answers(&h);

    // The developer meets the gaps: each says why.
    let r = dev1_ssh(&h, "restart socketserver-dev1");
    assert_eq!(r.code, 1, "[{suite}] {}", r.stderr);
    assert!(
        r.stderr.contains("polkit is not installed on this host"),
        "[{suite}] {}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("you may control only your own"),
        "[{suite}] {}",
        r.stderr
    );
    // Logs come from the journal through the entry point: no rsyslog needed.
    let r = dev1_ssh(&h, "logs -n 5 socketserver-dev1");
    assert_eq!(r.code, 0, "[{suite}] {}\n{}", r.stdout, r.stderr);
    // A push deploys, and its reload says why systemd refused it.
    let push = repo_init_and_push(&h);
    assert!(
        push.stdout.contains("polkit is not installed on this host"),
        "[{suite}] push:\n{}",
        push.stdout
    );
    // Root still controls everything; the log page still works.
    h.ok("hhlctl reload socketserver-dev1");
    assert_eq!(h.curl(&["http://127.0.0.1:1081/hhl"]).stdout, "hello from dev1\n");
    log_page_signs_in(&h);

    purge(&h);
    // Without polkitd and rsyslog, apply made these directories: purge takes them.
    h.ok("test ! -e /etc/polkit-1 && test ! -e /etc/rsyslog.d");
    eprintln!(
        "[{suite}] quickstart without Recommends: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn debian12_ops_quickstart_word_for_word() {
    quickstart("bookworm");
}

#[test]
fn debian13_ops_quickstart_word_for_word() {
    quickstart("trixie");
}

#[test]
fn debian12_without_recommends_says_what_is_missing() {
    without_recommends("bookworm");
}

#[test]
fn debian13_without_recommends_says_what_is_missing() {
    without_recommends("trixie");
}
