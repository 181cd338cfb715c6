//! Input classes that once slipped through or were refused without a place: each is
//! refused with its message, located in its file and line (or its file, for a file
//! name), and nothing is written.

mod support;

use std::fs;

use support::{repo, Run, Sandbox, MINI};

/// `ssh-keygen -t rsa -b 1024` and `-b 2048` public keys.
const RSA_1024: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC+CWawxnvL4+KvStnEiatY08Dlch7hXaK2nOyLIumJCLL8XoJ5qo+hBrehU6Gq1KOcKecJCTwlXCQ6picg2R4lZDpjuMvMQmtReSS1HHptMRxwGKiP67GMSd8EgIaNVxRDZ7c7gAvbQL4kfhmMKIWKZwJsg8s945vzWCgSmjKo+Q== short@pc";
const RSA_2048: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCmpMrsDlz3y+MzS1ujzSiIcprBXMG9zoZNU7LaSNbttW4Hq+N2Y0UIXt6WrQy7oG9DOwDWb8StlRumjNczzm8OWCD8o8TKOFQwJS6yguqlj2nYVgpqGm/xtuV6K4/DLua97WhETlE7nqlpVNcp3/eFT3B9qhhnj1BLWCA6S5ldyS7KldTwPJD5DpOEUbMZjA528q/ebs6/MZZM+KqbXO7E9/Ifv5FHX4hAnf/BQjiJZLlRWANLWpEXSEl/ZYiLIRDaQKs7vU55mLu0pmMusMZu91m897NS3ESQ+F+5r6yw/Gc2L+d5evAacZnuj3JSpbckvGANMpuA/I6tvp2fGBpv ok@pc";

/// `render` of `yaml` (with `files` beside it): refused, nothing written; stderr.
fn refused(yaml: &str, files: &[(&str, &str)]) -> (Sandbox, String) {
    let sb = Sandbox::new();
    sb.write("hhl.yaml", yaml);
    for (name, text) in files {
        sb.write(name, text);
    }
    let r = sb.run(&["render", "--out", "out"]);
    assert_eq!(r.code, 1, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert!(!sb.path().join("out").exists(), "render wrote something despite errors");
    let e = r.stderr.clone();
    (sb, e)
}

#[track_caller]
fn has(stderr: &str, parts: &[&str]) {
    for p in parts {
        assert!(stderr.contains(p), "missing {p:?} in:\n{stderr}");
    }
}

#[test]
fn rsa_keys_under_2048_bits_are_refused_at_their_line() {
    let yaml = format!("{MINI}keys:\n  dev1: [\"{RSA_2048}\", \"{RSA_1024}\"]\n");
    let (sb, e) = refused(&yaml, &[]);
    has(
        &e,
        &[
            "the ssh-rsa key has 1024 bits; RSA keys of fewer than 2048 bits are refused",
            &format!("--> {}:14:", sb.path().join("hhl.yaml").display()),
            "ssh-keygen -t ed25519",
        ],
    );
    assert!(!e.contains("2048 bits; RSA"), "the 2048-bit key was refused too:\n{e}");
    // The 2048-bit key alone is taken.
    let sb = Sandbox::new();
    sb.write("hhl.yaml", &format!("{MINI}keys:\n  dev1: [\"{RSA_2048}\"]\n"));
    let r = sb.run(&["render", "--out", "out"]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""), "{}", r.stdout);
}

#[test]
fn a_server_whose_log_identifiers_are_the_redis_instances_is_refused() {
    let yaml = MINI.replace("  socketserver:", "  redis:");
    let (sb, e) = refused(&yaml, &[]);
    has(
        &e,
        &[
            "log identifier `redis-master` is used by both openresty@redis-master.service (servers.redis, master) and redis@6379.service (redis, master): their logs would mix",
            &format!("--> {}:3:3", sb.path().join("hhl.yaml").display()),
            "rename server `redis`",
        ],
    );
}

#[test]
fn template_errors_are_located_in_the_template() {
    let yaml = MINI
        .replace("builtin:socketserver", "templates/x.conf.hbs")
        .replace("server_name: localhost}", "server_name: localhost, m: {a: 1}}");
    let head = "{{> hhl_main}}\nevents {}\n";
    let cases: [(&str, &str, &str); 3] = [
        (
            "{{#each a}}\n{{#each b}}\n{{#each c}}\n{{#each d}}x{{/each}}{{/each}}{{/each}}{{/each}}\n",
            "template nests `{{#each}}` so deeply it could loop for hours",
            "x.conf.hbs:3:1",
        ),
        (
            "http {\n  {{#if port}}\n    {{#*inline \"p\"}}x{{/inline}}\n  {{/if}}\n}\n",
            "decorators and inline partials (`{{*x}}`, `{{#*inline}}`) are not supported",
            "x.conf.hbs:5:5",
        ),
        (
            "http {\n  server {\n    listen {{port}};\n    x {{m}};\n  }\n}\n",
            "template inserts `m` is a map; a template can only insert it with `{{#each}}`",
            "x.conf.hbs:6:7",
        ),
    ];
    for (body, message, at) in cases {
        let text = format!("{head}{body}");
        let (_sb, e) = refused(&yaml, &[("templates/x.conf.hbs", &text)]);
        has(&e, &[message, &format!("templates/{at}")]);
    }
}

/// The example's legacy serverctrl files, changed, through `import-legacy`.
fn import(change: impl Fn(&Sandbox)) -> (Sandbox, Run) {
    let sb = Sandbox::new();
    for e in fs::read_dir(repo().join("tests/legacy/serverctrl")).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        sb.write(&format!("ctl/{name}"), &fs::read_to_string(e.path()).unwrap());
    }
    change(&sb);
    let r = sb.run(&["import-legacy", "ctl", "--out", "out"]);
    (sb, r)
}

#[test]
fn legacy_errors_are_located_in_the_legacy_files() {
    // An unclosed `${`.
    let (_sb, r) = import(|sb| {
        let p = sb.path().join("ctl/redis.templ.conf");
        let text = fs::read_to_string(&p).unwrap();
        fs::write(&p, format!("{text}maxclients ${{MAXCLIENTS\n")).unwrap();
    });
    assert_eq!(r.code, 1, "{}", r.stdout);
    let lines = fs::read_to_string(repo().join("tests/legacy/serverctrl/redis.templ.conf"))
        .unwrap()
        .lines()
        .count();
    has(
        &r.stderr,
        &[
            "`${MAXCLIENTS` opens a placeholder with `${` that is not closed by `}`",
            &format!("ctl/redis.templ.conf:{}:12", lines + 1),
        ],
    );
    // A port written twice.
    let (_sb, r) = import(|sb| {
        let p = sb.path().join("ctl/redis.sub.py");
        let text = fs::read_to_string(&p).unwrap();
        fs::write(&p, text.replace("'PORT': 6382", "'PORT': 6381")).unwrap();
    });
    assert_eq!(r.code, 1, "{}", r.stdout);
    has(
        &r.stderr,
        &[
            "port 6381 of 'dev2' is also the port of 'dev1' in redis.sub.py",
            "ctl/redis.sub.py:10:17",
        ],
    );
    // A server file name that is no server name.
    let (_sb, r) = import(|sb| {
        for ext in ["templ.conf", "sub.py"] {
            fs::rename(
                sb.path().join(format!("ctl/nginx.socketserver.{ext}")),
                sb.path().join(format!("ctl/nginx.Socket.{ext}")),
            )
            .unwrap();
        }
    });
    assert_eq!(r.code, 1, "{}", r.stdout);
    has(
        &r.stderr,
        &[
            "file name `nginx.Socket.templ.conf`: server name `Socket` contains `S`",
            "--> ctl/nginx.Socket.templ.conf",
            "rename nginx.Socket.templ.conf and nginx.Socket.sub.py",
        ],
    );
}

#[test]
fn a_unit_dir_that_is_a_file_is_refused_at_plan_time() {
    let sb = Sandbox::new();
    let yaml = MINI.replacen("servers:", "paths:\n  unit_dir: /units\nservers:", 1);
    sb.write("hhl.yaml", &yaml);
    sb.write("root/units", "a file\n");
    let r = sb.run(&["plan", "--root", "root"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    has(
        &r.stderr,
        &[
            "paths.unit_dir: /units is a file, where hhlctl needs a directory",
            &format!("--> {}:3:3", sb.path().join("hhl.yaml").display()),
            "point paths.unit_dir at a directory",
        ],
    );
    // A file above it too.
    let yaml = MINI.replacen("servers:", "paths:\n  unit_dir: /units/system\nservers:", 1);
    sb.write("hhl.yaml", &yaml);
    let r = sb.run(&["plan", "--root", "root"]);
    has(
        &r.stderr,
        &["paths.unit_dir: /units is a file, so /units/system cannot be made inside it"],
    );
}
