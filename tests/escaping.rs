//! Hostile and careless input, class by class: injection into generated files, values
//! that are not what they look like, paths that collide or escape, resource
//! exhaustion and the messages about them. Each runs the real binary and asserts the
//! message, its position, the exit code, that nothing was written, and a time bound.

mod support;

use std::fs;
use std::time::{Duration, Instant};

use support::Sandbox;

const MINI: &str = "\
developers: [dev1]
servers:
  socketserver:
    template: builtin:socketserver
    values:
      master: {port: 1080, worker_processes: 1, worker_connections: 64, error_log_level: info, lua_code_cache: 'off', server_name: localhost}
      dev1: {port: 1081}
redis:
  template: builtin:redis
  values:
    master: {port: 6379, bind: [127.0.0.1, '-::1'], loglevel: notice, databases: 16, appendonly: 'no'}
    dev1: {port: 6381}
";

/// `render` on `yaml` (with extra files) must fail with exit 1, write nothing, within
/// a few seconds, and print a bounded message; returns stderr.
fn refused_with(yaml: &str, files: &[(&str, &str)]) -> String {
    let sb = Sandbox::new();
    sb.write("hhl.yaml", yaml);
    for (name, text) in files {
        sb.write(name, text);
    }
    let t = Instant::now();
    let r = sb.run(&["render", "--out", "out"]);
    assert!(t.elapsed() < Duration::from_secs(5), "took {:?}", t.elapsed());
    assert_eq!(r.code, 1, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert!(!sb.path().join("out").exists(), "render wrote something despite errors");
    assert!(r.stderr.starts_with("error: "), "{}", r.stderr);
    assert!(r.stderr.len() < 20_000, "{} bytes of errors", r.stderr.len());
    r.stderr
}

fn refused(yaml: &str) -> String {
    refused_with(yaml, &[])
}

fn has(stderr: &str, parts: &[&str]) {
    for p in parts {
        assert!(stderr.contains(p), "missing {p:?} in:\n{stderr}");
    }
}

fn rendered(yaml: &str, files: &[(&str, &str)], file: &str) -> String {
    let sb = Sandbox::new();
    sb.write("hhl.yaml", yaml);
    for (name, text) in files {
        sb.write(name, text);
    }
    let r = sb.run(&["render", "--out", "out"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    fs::read_to_string(sb.path().join("out").join(file)).unwrap()
}

// ---- Injection into generated files ----

#[test]
fn newline_in_a_path_cannot_add_a_unit_line() {
    let e = refused(&format!(
        "{MINI}paths:\n  hhl_root: \"/opt/hhl\\nExecStartPre=+/bin/sh -c id\"\n"
    ));
    has(
        &e,
        &[
            "error: paths.hhl_root: `/opt/hhl\\nExecStartPre=+/bin/sh -c id` contains a control character (U+000A)",
            "hhl.yaml:14:3",
            "= hint: an absolute, normalised path",
        ],
    );
}

#[test]
fn nginx_values_are_one_token() {
    let yaml = MINI.replace("server_name: localhost", "server_name: 'x; include /etc/shadow'");
    let conf = rendered(&yaml, &[], "opt/hhl/socketserver/dev1/conf/nginx.conf");
    assert!(conf.contains("server_name \"x; include /etc/shadow\";\n"), "{conf}");
    for (value, want) in [
        ("\"x\\n}\"", "contains a newline"),
        ("'$document_root'", "contains `$`, which nginx reads as a variable"),
    ] {
        let e = refused(&MINI.replace("server_name: localhost", &format!("server_name: {value}")));
        has(
            &e,
            &[
                "error: servers.socketserver: value `server_name` of `master`",
                want,
                "hhl.yaml:6:119",
                "use a `*_snippet` key for raw nginx text",
            ],
        );
    }
}

#[test]
fn redis_values_cannot_add_directives() {
    let e = refused(&MINI.replace("loglevel: notice", "loglevel: \"notice\\ndir /root/.ssh\""));
    has(
        &e,
        &[
            "error: redis: value `loglevel` of `master` `notice\\ndir /root/.ssh` contains a newline",
            "hhl.yaml:11:53",
        ],
    );
    let conf = rendered(MINI, &[], "opt/redis/etc/6381.conf");
    assert!(conf.contains("\nbind 127.0.0.1 -::1\n"), "{conf}");
}

#[test]
fn paths_with_spaces_or_quotes_are_refused() {
    let e = refused(&format!(
        "{MINI}paths:\n  hhl_root: /opt/my hhl\n  lua_lib_dir: '/opt/l\"ib'\n"
    ));
    has(
        &e,
        &[
            "paths.hhl_root: `/opt/my hhl` contains white space",
            "hhl.yaml:14:3",
            "paths.lua_lib_dir: `/opt/l\"ib` contains `\"`",
            "hhl.yaml:15:3",
        ],
    );
}

#[test]
fn raw_insertion_only_for_snippets() {
    let yaml = MINI.replace("builtin:socketserver", "t.hbs");
    let e = refused_with(
        &yaml,
        &[("t.hbs", "events {}\nhttp { server_name {{{server_name}}}; }\n")],
    );
    has(
        &e,
        &[
            "error: `{{{server_name}}}` inserts `server_name` raw, without escaping; only `*_snippet` values may be raw",
            "t.hbs:2:20",
            "name the value `<name>_snippet`",
        ],
    );
    let e = refused_with(&yaml, &[("t.hbs", "x {{&server_name}};\n")]);
    has(&e, &["inserts `server_name` raw", "t.hbs:1:3"]);
    let with_snippet = yaml.replace(
        "server_name: localhost",
        "server_name: localhost, extra_snippet: 'location /x { return 204; }'",
    );
    let conf = rendered(
        &with_snippet,
        &[("t.hbs", "listen {{port}};\n{{{extra_snippet}}}\n")],
        "opt/hhl/socketserver/master/conf/nginx.conf",
    );
    assert!(conf.ends_with("listen 1080;\nlocation /x { return 204; }\n"), "{conf}");
}

#[test]
fn maps_lists_and_inline_helpers() {
    let yaml = MINI.replace("builtin:socketserver", "t.hbs").replace(
        "server_name: localhost",
        "server_name: localhost, names: [a.example, 'b c'], hdrs: {x: 1}",
    );
    let conf = rendered(
        &yaml,
        &[(
            "t.hbs",
            "server_name {{names}};\n{{#each hdrs}}add_header {{@key}} {{this}};\n{{/each}}",
        )],
        "opt/hhl/socketserver/master/conf/nginx.conf",
    );
    assert!(
        conf.contains("server_name a.example \"b c\";\nadd_header x 1;\n"),
        "{conf}"
    );
    let e = refused_with(&yaml, &[("t.hbs", "listen {{port}};\nx {{hdrs}};\n")]);
    has(
        &e,
        &[
            "error: template inserts `hdrs` is a map; a template can only insert it with `{{#each}}` for socketserver-master",
            "t.hbs:2:3",
        ],
    );
    assert_eq!(e.matches("error:").count(), 1, "said once:\n{e}");
    let e = refused_with(&yaml, &[("t.hbs", "x {{lookup hdrs 'x'}};\n")]);
    has(
        &e,
        &["calls a helper inline; its output would not be escaped", "t.hbs:1:3"],
    );
}

#[test]
fn config_path_with_a_newline_stays_in_a_comment() {
    // hhl.yaml's path reaches generated files only in their "Generated by" comment
    // (units name no SourcePath=): a newline there is shown escaped, never a line of
    // its own that systemd or rsyslog would read.
    let sb = Sandbox::new();
    let dir = sb.path().join("a\nExecStartPre=+id");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("hhl.yaml"), MINI).unwrap();
    let r: support::Run = std::process::Command::new(support::BIN)
        .current_dir(sb.path())
        .env("HHL_CONFIG", dir.join("hhl.yaml"))
        .args(["render", "--out", "out"])
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut headers = 0;
    for entry in walkdir::WalkDir::new(sb.path().join("out")) {
        let entry = entry.unwrap();
        if !entry.file_type().is_file() {
            continue;
        }
        let text = fs::read_to_string(entry.path()).unwrap_or_default();
        for line in text.lines() {
            assert!(
                !line.starts_with("ExecStartPre=+id"),
                "{}: {line}",
                entry.path().display()
            );
            if line.contains("a\\nExecStartPre=+id/hhl.yaml") {
                assert!(line.starts_with('#') || line.starts_with("//"), "{line}");
                headers += 1;
            }
        }
    }
    assert!(headers >= 4, "only {headers} headers name the escaped path");
}

// ---- Values that are not what they look like ----

#[test]
fn names_that_are_system_accounts_or_not_names() {
    for (entry, want) in [
        ("root", "developer name `root` is a system account or reserved name"),
        ("nobody", "developer name `nobody` is a system account"),
        ("hhl", "developer name `hhl` is a system account"),
        (
            "null",
            "developers[1]: an empty value (null), which would render as nothing",
        ),
        ("~", "developers[1]: an empty value (null)"),
        ("12", "`12` is not a name"),
    ] {
        let e = refused(&MINI.replace("developers: [dev1]", &format!("developers: [dev1, {entry}]")));
        has(&e, &[want, "hhl.yaml:1:20"]);
    }
}

#[test]
fn yaml_tags_duplicates_and_nulls() {
    let e = refused(&MINI.replace("server_name: localhost", "server_name: !!str localhost"));
    has(
        &e,
        &[
            "error: invalid hhl.yaml: YAML tags (`!name`) are not used in hhl.yaml",
            "hhl.yaml:6:132",
        ],
    );
    let e = refused(&MINI.replace("dev1: {port: 1081}", "dev1: {port: 1081, port: 1085}"));
    has(
        &e,
        &[
            "error: invalid hhl.yaml: servers.socketserver.values.dev1.port: key `port` is written twice",
            "hhl.yaml:7:14",
            "each key may appear once",
        ],
    );
    let twice = "developers: []\nservers:\n  socketserver:\n    template: builtin:socketserver\n    values: {master: {port: 1080}}\n  socketserver:\n    template: builtin:dtserver\n    values: {master: {port: 1090}}\n";
    let e = refused(twice);
    has(
        &e,
        &[
            "servers.socketserver: key `socketserver` is written twice",
            "hhl.yaml:3:3",
        ],
    );
    let e = refused(&MINI.replace("server_name: localhost", "server_name: ~"));
    has(
        &e,
        &[
            "servers.socketserver.values.master.server_name: an empty value (null), which would render as nothing",
            "hhl.yaml:6:",
        ],
    );
}

#[test]
fn zero_memory_and_shell_with_newline() {
    let e = refused(&format!("{MINI}limits:\n  master: {{memory: 0}}\n"));
    has(&e, &["limits.master.memory: `0` is not a valid limit", "hhl.yaml:14:"]);
    let e = refused(&format!("{MINI}users:\n  entry: \"hhl\\n\"\n"));
    has(&e, &["users.entry: ", "hhl.yaml:14:3"]);
}

// ---- Paths that collide or escape ----

#[test]
fn template_paths_stay_inside() {
    let e = refused(&MINI.replace("builtin:socketserver", "../../../../etc/passwd"));
    has(
        &e,
        &[
            "servers.socketserver: template path `../../../../etc/passwd` contains `..`",
            "hhl.yaml:4:5",
        ],
    );
    let e = refused(&MINI.replace("builtin:socketserver", "/etc/passwd"));
    has(&e, &["template `/etc/passwd` is outside"]);
    // A link that leads out, and things that are not regular files.
    let sb = Sandbox::new();
    sb.write("hhl.yaml", &MINI.replace("builtin:socketserver", "t.hbs"));
    std::os::unix::fs::symlink("/dev/zero", sb.path().join("t.hbs")).unwrap();
    let r = sb.run(&["render", "--out", "out"]);
    assert_eq!(r.code, 1);
    has(&r.stderr, &["cannot read template", "resolves to /dev/zero, outside"]);
    let sb = Sandbox::new();
    sb.write("hhl.yaml", &MINI.replace("builtin:socketserver", "t.hbs"));
    let fifo = std::ffi::CString::new(sb.path().join("t.hbs").to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let t = Instant::now();
    let r = sb.run(&["render", "--out", "out"]);
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(r.code, 1);
    has(&r.stderr, &["is not a regular file", "hhl.yaml:4:5"]);
}

#[test]
fn layout_overlaps_are_refused() {
    let cases = [
        (
            "lua_lib_dir: /opt/hhl/socketserver",
            "the instances of server `socketserver` (/opt/hhl/socketserver) is the same path as paths.lua_lib_dir (/opt/hhl/socketserver)",
        ),
        ("lua_lib_dir: /", "paths.lua_lib_dir: `/` is the root directory"),
        (
            "redis_data_dir: /opt/hhl/socketserver/dev1/data",
            "the instances of server `socketserver` (/opt/hhl/socketserver) overlaps paths.redis_data_dir",
        ),
        (
            "rsyslog_conf: /etc/polkit-1/rules.d/50-hhl.rules",
            "paths.rsyslog_conf (/etc/polkit-1/rules.d/50-hhl.rules) is the same path as paths.polkit_rules",
        ),
    ];
    for (setting, want) in cases {
        let e = refused(&format!("{MINI}paths:\n  {setting}\n"));
        has(&e, &[want, "hint: "]);
    }
    let long = format!("/opt/{}", "x".repeat(300));
    let e = refused(&format!("{MINI}paths:\n  log_dir: {long}\n"));
    has(
        &e,
        &["a component of", "is 300 bytes long; the limit is 255", "hhl.yaml:14:3"],
    );
}

// ---- Resource exhaustion ----

#[test]
fn deep_yaml_is_refused_quickly_with_a_position() {
    let deep = format!("developers: [dev1]\nservers: {}\n", "[".repeat(200_000));
    let e = refused(&deep);
    has(&e, &["YAML nested more than 32 levels deep", "hhl.yaml:2:"]);
    assert!(e.len() < 2000, "the line is not echoed whole: {} bytes", e.len());
}

#[test]
fn partials_cannot_recurse_and_loops_are_bounded() {
    let yaml = MINI.replace("builtin:socketserver", "t.hbs");
    let e = refused_with(&yaml, &[("t.hbs", "{{> t.hbs}}\n")]);
    has(&e, &["partial `t.hbs` is not one of hhlctl's", "t.hbs:1:1"]);
    let e = refused_with(&yaml, &[("t.hbs", "{{#*inline \"p\"}}{{> p}}{{/inline}}{{> p}}\n")]);
    has(&e, &["decorators and inline partials"]);
    let e = refused_with(
        &yaml,
        &[(
            "t.hbs",
            "{{#each a}}{{#each a}}{{#each a}}{{#each a}}x{{/each}}{{/each}}{{/each}}{{/each}}\n",
        )],
    );
    has(&e, &["could loop for hours", "nest at most two"]);
    let many = "{{port}} ".repeat(1001);
    let e = refused_with(&yaml, &[("t.hbs", &many)]);
    has(&e, &["template has more than 1000 `{{...}}` tags", "t.hbs:1:9002"]);
    // Big values in a loop: the output limit, not memory, stops it.
    let big = "x".repeat(60_000);
    let list: Vec<String> = (0..3).map(|_| format!("'{big}'")).collect();
    let yaml = yaml.replace(
        "server_name: localhost",
        &format!("server_name: localhost, big: [{}]", list.join(", ")),
    );
    let e = refused_with(
        &yaml,
        &[(
            "t.hbs",
            "{{#each big}}{{#each ../big}}{{this}}{{this}}{{this}}{{this}}{{/each}}{{/each}}\n",
        )],
    );
    has(
        &e,
        &["template renders more than 1048576 bytes for socketserver-master"],
    );
}

#[test]
fn many_duplicate_developers_are_cheap_and_bounded() {
    let names: Vec<&str> = std::iter::repeat_n("dev1", 10_000).collect();
    let e = refused(&MINI.replace("developers: [dev1]", &format!("developers: [{}]", names.join(", "))));
    has(&e, &["developers.500: more than 500 names"]);
    let names: Vec<&str> = std::iter::repeat_n("dev1", 400).collect();
    let e = refused(&MINI.replace("developers: [dev1]", &format!("developers: [{}]", names.join(", "))));
    has(
        &e,
        &["developer `dev1` is listed twice", "more not shown: fix these first"],
    );
}

// ---- Messages ----

#[test]
fn invalid_utf8_has_its_line_and_column() {
    let sb = Sandbox::new();
    let mut bytes = MINI.as_bytes().to_vec();
    let at = MINI.find("localhost").unwrap() + 3;
    bytes[at] = 0xff;
    fs::write(sb.path().join("hhl.yaml"), bytes).unwrap();
    let r = sb.run(&["render", "--out", "out"]);
    assert_eq!(r.code, 1);
    has(
        &r.stderr,
        &["is not valid UTF-8 (byte ", "hhl.yaml:6:135", "save the file as UTF-8"],
    );
    assert!(!r.stderr.contains("pass --config"), "{}", r.stderr);
}

#[test]
fn alias_bomb_and_second_document_are_located() {
    let mut bomb = String::from(
        "developers: []\nservers:\n  s:\n    template: builtin:socketserver\n    values:\n      master:\n        port: 1080\n        a: &a [x,x,x,x,x,x,x,x,x]\n",
    );
    for i in 0..9 {
        let prev = if i == 0 { "a".to_string() } else { format!("b{}", i - 1) };
        bomb += &format!("        b{i}: &b{i} [{}]\n", vec![format!("*{prev}"); 9].join(","));
    }
    let e = refused(&bomb);
    has(
        &e,
        &[
            "invalid hhl.yaml: more than 32 YAML aliases (`*name`)",
            "hhl.yaml:12:38",
            "write the values out",
        ],
    );
    let e = refused(&format!("{MINI}---\ndevelopers: []\n"));
    has(&e, &["a second YAML document starts here", "hhl.yaml:13:1"]);
}

#[test]
fn a_long_line_is_not_echoed() {
    let long = "x".repeat(60_000);
    let e = refused(&MINI.replace("server_name: localhost", &format!("server_name: 'a\tb{long}'")));
    assert!(e.len() < 4000, "{} bytes", e.len());
    has(&e, &["hhl.yaml:6:119", "contains a tab", "…"]);
    let huge = "x".repeat(10 << 20);
    let e = refused(&format!("{MINI}# {huge}\n"));
    has(
        &e,
        &["error: cannot use ", "hhl.yaml is 10486", "bytes; the limit is 262144"],
    );
    assert!(!e.contains("pass --config"), "{e}");
}

#[test]
fn missing_template_is_reported_once() {
    let yaml = MINI.replace("builtin:socketserver", "missing.hbs");
    let e = refused(&yaml);
    assert_eq!(e.matches("cannot read template").count(), 1, "{e}");
}

#[test]
fn import_legacy_errors_point_into_the_legacy_files() {
    let sb = Sandbox::new();
    sb.write("ctl/redis.templ.conf", "port $PORT\nbind $BIND\n");
    sb.write(
        "ctl/redis.sub.py",
        "{\n    'master': {'PORT': 6379, 'BIND': '127.0.0.1\\ndir /root/.ssh'},\n}\n",
    );
    let r = sb.run(&["import-legacy", "ctl", "--out", "out"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    has(
        &r.stderr,
        &[
            "value 'BIND' of 'master'",
            "contains a newline",
            "ctl/redis.sub.py:2:38",
        ],
    );
    assert!(!sb.path().join("out").exists());
    let deep = format!("{{'master': {}}}", "[".repeat(14_000));
    sb.write("ctl/redis.sub.py", &deep);
    let r = sb.run(&["import-legacy", "ctl", "--out", "out"]);
    assert_eq!(r.code, 1);
    has(&r.stderr, &["nest more than 32 deep", "redis.sub.py:1:"]);
    sb.write("ctl/redis.sub.py", "{'master': {'PORT': 6379}}\n");
    for (n, want) in [
        (28_000, "redis.templ.conf is 168005 bytes; the limit is 65536"),
        (1001, "more than 1000 placeholders"),
    ] {
        let vars: String = (0..n).map(|_| "$PORT").collect::<Vec<_>>().join(" ");
        sb.write("ctl/redis.templ.conf", &format!("port {vars}\n"));
        let t = Instant::now();
        let r = sb.run(&["import-legacy", "ctl", "--out", "out2"]);
        assert!(t.elapsed() < Duration::from_secs(3), "took {:?}", t.elapsed());
        has(&r.stderr, &[want, "redis.templ.conf"]);
    }
}

/// The escaping agrees with nginx's own parser: a config with quotes, braces,
/// semicolons, spaces and non-ASCII in its values passes `nginx -t`.
#[test]
fn escaped_values_pass_nginx_t() {
    let sb = Sandbox::new();
    let base = sb.path().display().to_string();
    let yaml = format!(
        "developers: []\nnginx: {{flavor: debian}}\npaths: {{hhl_root: {base}/hhl, lua_lib_dir: {base}/lib, redis_conf_dir: {base}/re, redis_data_dir: {base}/rv, unit_dir: {base}/units, state_dir: {base}/state, polkit_rules: {base}/p.rules, log_dir: {base}/log, rsyslog_conf: {base}/r.conf}}\nservers:\n  lobby:\n    template: t.hbs\n    values:\n      master: {{port: 1080, names: [spiel.example, 'größe.example'], motd: 'Say \"hi\"; {{x}} \\\\ done', h: {{X-Team: 'Blue Team'}}}}\n"
    );
    sb.write("hhl.yaml", &yaml);
    sb.write(
        "t.hbs",
        "{{> hhl_main}}\nevents {}\nhttp {\n{{> hhl_http}}\n    lua_package_path {{hhl.lua_package_path}};\n    server {\n        listen {{port}};\n        server_name {{names}};\n        set $motd {{motd}};\n{{#each h}}\n        add_header {{@key}} {{this}};\n{{/each}}\n        location / { return 200 $motd; }\n    }\n}\n",
    );
    let loaded = hhlctl::host::load::load(&sb.path().join("hhl.yaml")).unwrap_or_else(|e| panic!("{e:#}"));
    let artifacts = loaded.render().unwrap();
    use hhlctl::host::fsapply::{self, Manifest, Ownership};
    let changes = fsapply::diff(
        std::path::Path::new("/"),
        &artifacts,
        &Manifest::default(),
        Ownership::Ignore,
    )
    .unwrap();
    fsapply::apply(std::path::Path::new("/"), &artifacts, &changes, Ownership::Ignore).unwrap();
    let prefix = sb.path().join("hhl/lobby/master");
    let conf = fs::read_to_string(prefix.join("conf/nginx.conf")).unwrap();
    assert!(conf.contains(r#"set $motd "Say \"hi\"; {x} \\\\ done";"#), "{conf}");
    let out = std::process::Command::new("/usr/sbin/nginx")
        .args(["-t", "-q", "-e", "stderr", "-p"])
        .arg(format!("{}/", prefix.display()))
        .args(["-c", "conf/nginx.conf"])
        .output()
        .expect("running /usr/sbin/nginx: install nginx and libnginx-mod-http-lua (bash scripts/deps.sh)");
    assert!(out.status.success(), "{}\n{conf}", String::from_utf8_lossy(&out.stderr));
}

/// At apply time: an existing system account (uid below 1000) is never a developer's
/// user, whatever its name; master's only when hhlctl created it.
#[test]
fn system_accounts_on_the_host_are_found() {
    let mut access = hhlctl::core::model::access::Access {
        create: true,
        users: Default::default(),
        entry: "hhl".into(),
        admins: Vec::new(),
        identities: Default::default(),
        limits: Default::default(),
    };
    access.users.insert("master".into(), "daemon".into());
    access.users.insert("dev1".into(), "bin".into());
    access.users.insert("dev2".into(), "no_such_user_here".into());
    let found = hhlctl::host::users::system_accounts(&access);
    assert_eq!(found, [("master", "daemon", 1), ("dev1", "bin", 2)]);
}
