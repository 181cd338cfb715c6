//! The real binary on good and bad configs: messages, positions and exit codes.

mod support;

use support::{example_yaml, Sandbox, MINI};

/// Run `plan` on `yaml` and return the failure's stderr, checking the exit code and
/// that nothing was written.
fn refused(yaml: &str) -> String {
    let sb = Sandbox::new();
    sb.write("hhl.yaml", yaml);
    let r = sb.run(&["render", "--out", "out"]);
    assert_eq!(r.code, 1, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert!(!sb.path().join("out").exists(), "render wrote something despite errors");
    assert!(r.stderr.starts_with("error: "), "{}", r.stderr);
    r.stderr
}

fn has(stderr: &str, parts: &[&str]) {
    for p in parts {
        assert!(stderr.contains(p), "missing {p:?} in:\n{stderr}");
    }
}

#[test]
fn mini_config_renders() {
    let sb = Sandbox::new();
    sb.write("hhl.yaml", MINI);
    let r = sb.run(&["render", "--out", "out"]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    assert_eq!(r.stdout.trim(), format!("rendered 4 instances, 22 files, into out"));
}

#[test]
fn yaml_syntax_error() {
    let e = refused(&MINI.replace("developers: [dev1]", "developers: [dev1"));
    has(
        &e,
        &[
            "error: invalid hhl.yaml: did not find expected ',' or ']', while parsing a flow sequence\n",
            "hhl.yaml:2:8",
            "= hint: fix the YAML syntax",
        ],
    );
}

#[test]
fn unknown_key() {
    let e = refused(&MINI.replace(
        "    template: builtin:socketserver",
        "    templte: builtin:socketserver",
    ));
    has(
        &e,
        &[
            "unknown field `templte`, expected one of `template`, `shared`, `values`",
            "hhl.yaml:4:5",
            "4 |     templte:",
            "remove the key or fix its spelling",
        ],
    );
}

#[test]
fn missing_template_file() {
    let e = refused(&MINI.replace("builtin:socketserver", "templates/nope.hbs"));
    has(
        &e,
        &[
            "cannot read template ",
            "templates/nope.hbs: No such file",
            "hhl.yaml:4:5",
            "relative to hhl.yaml's directory",
        ],
    );
}

#[test]
fn unknown_builtin_template() {
    let e = refused(&MINI.replace("builtin:socketserver", "builtin:websocket"));
    has(
        &e,
        &[
            "no built-in template `websocket`",
            "hhl.yaml:4:5",
            "the built-ins are builtin:socketserver, builtin:dtserver, builtin:httpserver, builtin:redis",
        ],
    );
}

#[test]
fn template_with_undefined_variable() {
    let sb = Sandbox::new();
    sb.write("hhl.yaml", &MINI.replace("builtin:socketserver", "mine.hbs"));
    sb.write(
        "mine.hbs",
        "worker_processes 1;\nevents { worker_connections {{connections}}; }\n",
    );
    let r = sb.run(&["render", "--out", "out"]);
    assert_eq!(r.code, 1);
    has(
        &r.stderr,
        &[
            "error: template uses `connections`, which has no value for socketserver-master",
            "mine.hbs:2:29",
            "2 | events { worker_connections {{connections}}; }",
            "define `connections` in master's values",
        ],
    );
    // Reported once, not once per instance.
    assert_eq!(r.stderr.matches("template uses").count(), 1, "{}", r.stderr);
}

#[test]
fn template_syntax_error() {
    let sb = Sandbox::new();
    sb.write("hhl.yaml", &MINI.replace("builtin:socketserver", "mine.hbs"));
    sb.write("mine.hbs", "listen {{port};\n");
    let r = sb.run(&["render", "--out", "out"]);
    assert_eq!(r.code, 1);
    has(
        &r.stderr,
        &["error: template syntax: invalid handlebars syntax", "mine.hbs:1:"],
    );
}

#[test]
fn port_used_twice_across_server_and_redis() {
    let e = refused(&MINI.replace("dev1: {port: 6381}", "dev1: {port: 1081}"));
    has(
        &e,
        &[
            "error: port 1081 is used by both openresty@socketserver-dev1.service (servers.socketserver, developer dev1) and redis@1081.service (redis, developer dev1)",
            "hhl.yaml:12:12",
            "give every instance its own port",
        ],
    );
}

#[test]
fn port_out_of_range() {
    let e = refused(
        &MINI
            .replace("dev1: {port: 1081}", "dev1: {port: 80}")
            .replace("dev1: {port: 6381}", "dev1: {port: 70000}"),
    );
    has(
        &e,
        &[
            "servers.socketserver: port 80 of `dev1` is outside 1024-65535",
            "hhl.yaml:7:14",
            "redis: port 70000 of `dev1` is outside 1024-65535",
            "hhl.yaml:12:12",
            "2 errors",
        ],
    );
}

#[test]
fn bad_developer_names() {
    let cases = [
        ("'../x'", "developer name `../x` contains `.`"),
        ("'dev 1'", "developer name `dev 1` contains white space"),
        (
            "'-x'",
            "developer name `-x` contains `-`, which systemd reads as a separator",
        ),
        ("''", "developer name is empty"),
        (
            "abcdefghijabcdefghijabcdefghijabc",
            "is 33 characters long; the limit is 32",
        ),
        ("Dev1", "developer name `Dev1` contains `D`"),
        ("master", "`master` is always an instance"),
    ];
    for (name, want) in cases {
        let e = refused(&MINI.replace("developers: [dev1]", &format!("developers: [dev1, {name}]")));
        has(
            &e,
            &[want, "hhl.yaml:1:20", "lowercase letters, digits and `_`, at most 32"],
        );
    }
}

#[test]
fn duplicate_developer() {
    let e = refused(&MINI.replace("developers: [dev1]", "developers: [dev1, dev1]"));
    has(
        &e,
        &[
            "developer `dev1` is listed twice",
            "hhl.yaml:1:20",
            "remove the second entry",
        ],
    );
}

#[test]
fn override_for_unknown_developer() {
    let e = refused(&MINI.replace("dev1: {port: 6381}", "dev1: {port: 6381}\n    dev9: {port: 6389}"));
    has(
        &e,
        &[
            "redis: values for `dev9`, who is not in `developers`",
            "hhl.yaml:13:5",
            "add `dev9` to `developers`, or remove these values",
        ],
    );
}

#[test]
fn server_name_clashing_with_instance_names() {
    let e = refused(&MINI.replace("  socketserver:", "  socket-server:"));
    has(
        &e,
        &[
            "server name `socket-server` contains `-`, which systemd reads as a separator",
            "hhl.yaml:3:3",
            "rename the server",
        ],
    );
}

#[test]
fn override_on_a_shared_server() {
    let e = refused(&MINI.replace(
        "    template: builtin:socketserver",
        "    template: builtin:socketserver\n    shared: true",
    ));
    has(
        &e,
        &[
            "servers.socketserver: server is shared, so it has no instance of `dev1` to override",
            "hhl.yaml:8:7",
        ],
    );
}

#[test]
fn missing_master_values() {
    let e = refused(&MINI.replace("    master: {port: 6379", "    main: {port: 6379"));
    has(&e, &["redis: no `master` values", "hhl.yaml:10:3"]);
}

#[test]
fn relative_path_refused() {
    let e = refused(&format!("paths:\n  hhl_root: opt/hhl\n{MINI}"));
    has(
        &e,
        &[
            "paths.hhl_root: `opt/hhl` is not an absolute path",
            "hhl.yaml:2:3",
            "start it with `/`",
        ],
    );
}

#[test]
fn missing_config_file() {
    let sb = Sandbox::new();
    let r = sb.run(&["plan"]);
    assert_eq!(r.code, 1);
    has(
        &r.stderr,
        &[
            "error: cannot read ",
            "hhl.yaml; pass --config FILE or set HHL_CONFIG",
            "No such file or directory",
        ],
    );
}

#[test]
fn render_refuses_a_non_empty_directory() {
    let sb = Sandbox::new();
    sb.write("hhl.yaml", MINI);
    sb.write("out/keep.txt", "mine");
    let r = sb.run(&["render", "--out", "out"]);
    assert_eq!(r.code, 1);
    has(
        &r.stderr,
        &["error: out is not empty; choose a new directory, or pass --force to replace it"],
    );
    assert_eq!(std::fs::read_to_string(sb.path().join("out/keep.txt")).unwrap(), "mine");
    assert_eq!(sb.run(&["render", "--out", "out", "--force"]).code, 0);
    assert!(!sb.path().join("out/keep.txt").exists());
}

#[test]
fn bad_usage_exits_2() {
    let sb = Sandbox::new();
    let r = sb.run(&["render"]);
    assert_eq!(r.code, 2);
    has(&r.stderr, &["--out <DIR>"]);
    assert_eq!(sb.run(&["frobnicate"]).code, 2);
}

#[test]
fn plan_lists_instances_and_changes() {
    let sb = Sandbox::new();
    sb.write("hhl.yaml", &example_yaml());
    let root = sb.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let r = sb.run(&["plan", "--root", root.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    has(&r.stdout, &[
        "UNIT                                   SERVER        DEVELOPER  PORT  CONFIG",
        "openresty@socketserver-dev1.service    socketserver  dev1       1081  /opt/hhl/socketserver/dev1/conf/nginx.conf",
        "openresty@httpserver-master.service    httpserver    master     1100",
        "redis@6384.service                     redis         dev4       6384  /opt/redis/etc/6384.conf",
        "+ /etc/systemd/system/openresty@dtserver-dev3.service.d/50-hhl.conf",
        "16 instances; files: ",
    ]);
    let json: serde_json::Value =
        serde_json::from_str(&sb.run(&["plan", "--json", "--root", root.to_str().unwrap()]).stdout).unwrap();
    assert_eq!(json["instances"].as_array().unwrap().len(), 16);
    assert_eq!(json["instances"][0]["unit"], "openresty@socketserver-master.service");
    assert_eq!(json["files"][1]["change"], "added");
}

#[test]
fn help_teaches() {
    let sb = Sandbox::new();
    let r = sb.run(&["--help"]);
    assert_eq!(r.code, 0);
    has(
        &r.stdout,
        &[
            "hhl.yaml",
            "openresty@<server>-<developer>.service",
            "render",
            "plan",
            "import-legacy",
            "HHL_CONFIG",
        ],
    );
    has(
        &sb.run(&["render", "--help"]).stdout,
        &["Example:", "hhlctl -c examples/hhl.yaml render --out"],
    );
}

#[test]
fn empty_template_name() {
    let e = refused(&MINI.replace("builtin:socketserver", "''"));
    has(
        &e,
        &[
            "servers.socketserver: template is empty",
            "hhl.yaml:4:5",
            "`builtin:<name>`",
        ],
    );
}

#[test]
fn instance_without_a_port() {
    let e = refused(&MINI.replace("master: {port: 6379, ", "master: {"));
    has(
        &e,
        &[
            "redis: `master` has no `port`",
            "hhl.yaml:11:5",
            "set `port` in master's values",
        ],
    );
}

#[test]
fn missing_section_and_wrong_type() {
    let e = refused("developers: [dev1]\n");
    has(
        &e,
        &[
            "invalid hhl.yaml: missing field `servers`",
            "add the key; see examples/hhl.yaml",
        ],
    );
    let e = refused(&MINI.replace("developers: [dev1]", "developers: dev1"));
    has(
        &e,
        &[
            "invalid hhl.yaml: developers: invalid type: string \"dev1\", expected a list of names",
            "hhl.yaml:1:13",
        ],
    );
}

#[test]
fn choosing_instances_that_do_not_exist() {
    // Resolved from hhl.yaml before systemd is asked anything.
    let sb = Sandbox::new();
    sb.write("hhl.yaml", MINI);
    let r = sb.run(&["restart", "--dev", "dev9"]);
    assert_eq!(r.code, 1);
    has(
        &r.stderr,
        &["error: no developer `dev9` in hhl.yaml; developers: master, dev1"],
    );
    let r = sb.run(&["status", "--server", "web"]);
    assert_eq!(r.code, 1);
    has(
        &r.stderr,
        &["error: no server `web` in hhl.yaml; servers: socketserver, redis"],
    );
    let r = sb.run(&["stop"]);
    assert_eq!(r.code, 1);
    has(&r.stderr, &["error: say which instances: INSTANCE (e.g. socketserver-dev1 or 6381), --dev DEV, --server SERVER or --all"]);
    let r = sb.run(&["logs", "socketserver-dev7"]);
    has(&r.stderr, &["error: no instance `socketserver-dev7` in hhl.yaml"]);
    assert_eq!(
        sb.run(&["stop", "--all", "--dev", "dev1"]).code,
        2,
        "--all conflicts with --dev"
    );
}

#[test]
fn legacy_value_files_of_the_wrong_shape() {
    let cases = [
        ("['master']", "the value file must be a dict of owners"),
        ("{'dev1': {'PORT': 1}}", "the value file has no 'master' entry"),
        ("{'master': 5}", "the values of 'master' must be a dict"),
        (
            "{'master': {'PORT': {'a': 1}}}",
            "nested dicts cannot fill a template placeholder",
        ),
        (
            "{'master': {'PORT': 1}",
            "cannot read the value file: the dict is not closed",
        ),
    ];
    for (text, want) in cases {
        let sb = Sandbox::new();
        sb.write("ctl/redis.templ.conf", "port $PORT\n");
        sb.write("ctl/redis.sub.py", text);
        let r = sb.run(&["import-legacy", "ctl", "--out", "out"]);
        assert_eq!(r.code, 1, "{text}");
        has(&r.stderr, &[want, "ctl/redis.sub.py:1:"]);
        assert!(!sb.path().join("out").exists());
    }
    let sb = Sandbox::new();
    sb.write("ctl/README", "nothing here");
    let r = sb.run(&["import-legacy", "ctl", "--out", "out"]);
    has(
        &r.stderr,
        &["error: no serverctrl files here: expected nginx.<server>.templ.conf and redis.templ.conf"],
    );
}

#[test]
fn limits_that_systemd_would_not_take() {
    let e = refused(&format!(
        "{MINI}limits:\n  master: {{memory: 512MB, cpu: '1.5', disk: lots}}\n  dev1: {{tasks: many, redis: 512K}}\n  dev9: {{cpu: 50%}}\n"
    ));
    has(
        &e,
        &[
            "limits.master.memory: `512MB` is not a valid limit",
            "hhl.yaml:14:12",
            "bytes with K, M, G or T (`512M`), a percentage (`20%`) or `infinity`",
            "limits.master.cpu: `1.5` is not a valid limit",
            "a percentage of one CPU",
            "limits.dev1.tasks: `many` is not a valid limit",
            "hhl.yaml:15:10",
            "limits.master.disk: `lots` is not a valid limit",
            "the size of each of the instance's logs/, temp/, /tmp, /var/tmp and /dev/shm",
            "limits.dev1.redis: `512K` is not a valid limit",
            "hhl.yaml:15:23",
            "at least 1M: the most data the owner's Redis holds",
            "limits for `dev9`, who is not in `developers`",
        ],
    );
    assert!(
        !e.contains("limits.dev1.memory"),
        "an inherited error is repeated:\n{e}"
    );
}

#[test]
fn unix_users_that_cannot_be() {
    let e = refused(&format!(
        "{MINI}users:\n  master: Root\n  admins: [ok, 'x y']\n  map: {{dev1: hhl, dev7: bob}}\n"
    ));
    has(
        &e,
        &[
            "users.master: `Root` cannot be a unix user name here",
            "hhl.yaml:14:3",
            "not root",
            "users.admins: ",
            "users.map names `dev7`, who is not in `developers`",
        ],
    );
    // Two owners on one unix user would share every file: refused.
    let e = refused(&format!("{MINI}users:\n  master: ops\n  map: {{dev1: ops}}\n"));
    has(
        &e,
        &[
            "unix user `ops` would run the instances of both `master` and `dev1`",
            "hhl.yaml:15:9",
            "every developer and master need their own unix user",
        ],
    );
}

#[test]
fn apply_refuses_missing_users_when_it_may_not_create_them() {
    let sb = Sandbox::new();
    let b = sb.path().display();
    let yaml = MINI.replace("developers: [dev1]", "developers: [hhl_absent_1]").replace("dev1:", "hhl_absent_1:")
        + &format!(
            "users: {{create: false, master: hhl_absent_m}}\npaths: {{hhl_root: {b}/opt, redis_conf_dir: {b}/etc, redis_data_dir: {b}/var, lua_lib_dir: {b}/lib, unit_dir: {b}/units, state_dir: {b}/state, polkit_rules: {b}/polkit.rules}}\n"
        );
    sb.write("hhl.yaml", &yaml);
    let r = sb.run(&["apply"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    has(
        &r.stderr,
        &[
            "unix user `hhl_absent_m` (of `master`) does not exist on this host",
            "hhl.yaml:13:24",
            "unix user `hhl-hhl_absent_1` (of `hhl_absent_1`) does not exist on this host",
            "hhl.yaml:1:14",
            "create it (adduser), or set `users.create: true`",
        ],
    );
    let written: Vec<_> = std::fs::read_dir(sb.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(written, ["hhl.yaml"], "apply wrote files before refusing");
}

#[test]
fn git_settings_that_cannot_work() {
    let e = refused(&format!(
        "{MINI}git: {{root: srv/git, max_object_size: 10MB, keep: 1}}\n"
    ));
    has(
        &e,
        &[
            "git.root: `srv/git` is not an absolute path",
            "git.max_object_size: `10MB` is not a size",
            "git.keep is 1; rollback needs at least 2 releases",
            "keep 2 or more (default 5)",
        ],
    );
}

#[test]
fn commands_given_what_does_not_exist() {
    let sb = Sandbox::new();
    sb.write("hhl.yaml", MINI);
    let r = sb.run(&["rollback", "socketserver-dev9"]);
    assert_eq!(r.code, 1);
    has(
        &r.stderr,
        &["no OpenResty instance `socketserver-dev9`", "`hhlctl plan` lists them"],
    );
    let r = sb.run(&["rollback", "6381"]);
    has(&r.stderr, &["no OpenResty instance `6381`"]);
    // A hook run outside the repositories it was made for.
    let r = sb.run(&["hook", "pre-receive"]);
    assert_eq!(r.code, 1);
    has(
        &r.stderr,
        &["is not one of hhl's repositories (git.root in", "is /srv/git)"],
    );
    let r = sb.run(&["web", "serve", "--passwd", "/nonexistent/web.passwd"]);
    assert_eq!(r.code, 1);
    has(&r.stderr, &["reading the password file /nonexistent/web.passwd"]);
    sb.write("bad.passwd", "dev1:plaintext\n");
    let r = sb.run(&["web", "serve", "--passwd", "bad.passwd"]);
    has(
        &r.stderr,
        &["bad.passwd: line 1: the hash of `dev1` is not a PHC string"],
    );
}

/// A port of hhl.yaml that another process listens on is refused before anything is
/// done (here before the missing users, which would be the next refusal), naming the
/// process and what to do.
#[test]
fn apply_refuses_a_port_another_process_holds() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let sb = Sandbox::new();
    let yaml = support::example_under(sb.path())
        .replace("      port: 6379", &format!("      port: {port}"))
        .replace("create: true ", "create: false");
    assert!(yaml.contains(&format!("port: {port}")) && yaml.contains("create: false"));
    // The line of master's Redis port, wherever the example puts it.
    let line = 1 + yaml.lines().position(|l| l == format!("      port: {port}")).unwrap();
    sb.write("hhl.yaml", &yaml);
    let r = sb.run(&["apply"]);
    assert_eq!(r.code, 1, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    has(
        &r.stderr,
        &[
            &format!(
                "error: port {port} of redis@{port}.service is already in use by pid {} (`",
                std::process::id()
            ),
            &format!("hhl.yaml:{line}:7"),
            &format!("hint: stop that program, or give {port} another port"),
        ],
    );
    assert!(!r.stderr.contains("does not exist on this host"), "{}", r.stderr);
    assert_eq!(r.stdout, "");
    assert_eq!(
        std::fs::read_dir(sb.path()).unwrap().count(),
        1,
        "apply wrote something"
    );
    drop(listener);
}

/// `hhlctl web passwd` refuses a password shorter than 8 characters, and writes nothing.
#[test]
fn web_passwd_refuses_a_short_password() {
    let sb = Sandbox::new();
    sb.write("hhl.yaml", &support::example_under(sb.path()));
    let passwd = sb.path().join("web.passwd");
    let mut child = std::process::Command::new(support::BIN)
        .env("HHL_CONFIG", sb.path().join("hhl.yaml"))
        .args(["web", "passwd", "dev1", "--passwd"])
        .arg(&passwd)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"short\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the password is shorter than 8 characters"), "{stderr}");
    assert!(!passwd.exists());
}

/// hhl.yaml as hhlctl 0.1.0 shipped it (tests/upgrade-input/hhl-0.1.0.yaml, the
/// example of that release) is read: each changed key is mapped, with a warning that
/// points at its line and says what to write instead.
#[test]
fn a_hhl_yaml_of_0_1_0_is_read_with_a_warning_per_changed_key() {
    let sb = Sandbox::new();
    sb.write(
        "hhl.yaml",
        &std::fs::read_to_string(support::repo().join("tests/upgrade-input/hhl-0.1.0.yaml")).unwrap(),
    );
    let r = sb.run(&["plan"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("openresty@socketserver-dev1.service"), "{}", r.stdout);
    let yaml = sb.path().join("hhl.yaml").display().to_string();
    for want in [
        "warning: users.shell (/usr/bin/git-shell) is hhlctl 0.1.0's and is ignored: developers have no unix login any more; \
         they push and run commands through the entry account (users.entry: `hhl`) with their keys in `keys:`\n".to_string(),
        format!("  --> {yaml}:30:3\n"),
        "  = hint: delete the `shell:` line under `users:`, and list each developer's ssh public key under `keys:`\n".to_string(),
        "warning: users.master `hhl` is the ssh entry account (users.entry) since hhlctl 0.2.0; read as `hhl-master`: \
         master's instances run as `hhl-master`, and apply hands their files over to it\n".to_string(),
        format!("  --> {yaml}:29:3\n"),
        "  = hint: write `master: hhl-master` under `users:`\n".to_string(),
    ] {
        assert!(r.stderr.contains(&want), "wanted {want:?} in:\n{}", r.stderr);
    }
}

/// `--version` names the package version and the commit scripts/build-deb.sh built;
/// a build without it (this one: `cargo test`) says the commit is unknown.
#[test]
fn version_names_the_commit_or_says_it_is_unknown() {
    let r = Sandbox::new().run(&["--version"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let want = match option_env!("HHL_COMMIT") {
        Some(c) => format!("hhlctl {} (commit {c})\n", env!("CARGO_PKG_VERSION")),
        None => format!(
            "hhlctl {} (commit unknown: built without scripts/build-deb.sh, or outside a git checkout)\n",
            env!("CARGO_PKG_VERSION")
        ),
    };
    assert_eq!(r.stdout, want);
}
