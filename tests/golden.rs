//! Golden trees: what `render` writes for the shipped example, and what
//! `import-legacy` makes of the original serverctrl files. `UPDATE_GOLDEN=1` rewrites
//! the expected trees; review the diff before committing it.

mod support;

use std::fs;
use std::path::{Path, PathBuf};

use support::{repo, Sandbox};
use walkdir::WalkDir;

/// Every file and link under `dir`: relative path → contents (links as `-> target`).
fn snapshot(dir: &Path, replace: &[(&str, &str)]) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for e in WalkDir::new(dir).sort_by_file_name() {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(dir).unwrap().to_path_buf();
        let text = if e.path_is_symlink() {
            format!("-> {}\n", fs::read_link(e.path()).unwrap().display())
        } else if e.file_type().is_file() {
            fs::read_to_string(e.path()).unwrap()
        } else {
            continue;
        };
        let text = replace.iter().fold(text, |t, (from, to)| t.replace(from, to));
        out.push((rel, text));
    }
    out
}

fn check(actual_dir: &Path, golden: &str, replace: &[(&str, &str)]) {
    let expected_dir = repo().join("tests/golden").join(golden);
    let actual = snapshot(actual_dir, replace);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let _ = fs::remove_dir_all(&expected_dir);
        for (rel, text) in &actual {
            let p = expected_dir.join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        }
    }
    let expected = snapshot(&expected_dir, &[]);
    let names = |v: &[(PathBuf, String)]| v.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&actual),
        names(&expected),
        "file lists differ from tests/golden/{golden}"
    );
    for ((rel, a), (_, e)) in actual.iter().zip(&expected) {
        assert_eq!(a, e, "{} differs from tests/golden/{golden}", rel.display());
    }
}

#[test]
fn example_renders_to_golden_tree() {
    let sb = Sandbox::new();
    // Pin the flavor so the tree does not depend on what this machine has installed.
    sb.write(
        "hhl.yaml",
        &support::example_yaml().replace("flavor: auto", "flavor: debian"),
    );
    let r = sb.run(&["render", "--out", "out"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let config = sb.path().join("hhl.yaml").display().to_string();
    check(&sb.path().join("out"), "example", &[(&config, "@CONFIG@")]);
}

#[test]
fn openresty_flavor_swaps_binary_and_modules() {
    let sb = Sandbox::new();
    sb.write(
        "hhl.yaml",
        &support::example_yaml().replace("flavor: auto", "flavor: openresty"),
    );
    assert_eq!(sb.run(&["render", "--out", "out"]).code, 0);
    let conf = fs::read_to_string(sb.path().join("out/opt/hhl/dtserver/dev2/conf/nginx.conf")).unwrap();
    assert!(!conf.contains("load_module"), "{conf}");
    let dropin = fs::read_to_string(
        sb.path()
            .join("out/etc/systemd/system/openresty@dtserver-dev2.service.d/50-hhl.conf"),
    )
    .unwrap();
    assert!(
        dropin.contains("Environment=HHL_NGINX=/usr/bin/openresty\n")
            && dropin.contains("ExecStartPre=\nExecStart=\nExecStart=/usr/bin/openresty -e stderr -p ${HHL_PREFIX} -c conf/nginx.conf -g \"daemon on;\"\n"),
        "{dropin}"
    );
}

#[test]
fn legacy_import_to_golden_tree() {
    let sb = Sandbox::new();
    let src = repo().join("tests/legacy/serverctrl");
    let r = sb.run(&["import-legacy", src.to_str().unwrap(), "--out", "imported"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("note: nginx.socketserver.templ.conf: `error_log logs/error.log debug;` now logs to stderr"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("note: redis.templ.conf: removed `daemonize yes`"),
        "{}",
        r.stdout
    );
    check(
        &sb.path().join("imported"),
        "import",
        &[(src.to_str().unwrap(), "@SERVERCTRL@")],
    );
}

#[test]
fn legacy_import_refuses_code_in_a_value_file() {
    let sb = Sandbox::new();
    let src = repo().join("tests/legacy/serverctrl");
    for f in fs::read_dir(&src).unwrap() {
        let f = f.unwrap();
        sb.write(
            &format!("ctl/{}", f.file_name().to_str().unwrap()),
            &fs::read_to_string(f.path()).unwrap(),
        );
    }
    sb.write(
        "ctl/redis.sub.py",
        "{\n    'master': {'PORT': __import__('os').getpid()},\n}\n",
    );
    let r = sb.run(&["import-legacy", "ctl", "--out", "imported"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("error: cannot read the value file: `__import__` is not a literal"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("ctl/redis.sub.py:2:24"), "{}", r.stderr);
    assert!(!sb.path().join("imported").exists());

    sb.write("ctl/redis.sub.py", "{'master': {'PORT': 6379}}\n");
    sb.write("ctl/redis.templ.conf", "port $PORT\nbind $BIND\n");
    let r = sb.run(&["import-legacy", "ctl", "--out", "imported"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("error: placeholder $BIND has no value in the value file"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("ctl/redis.templ.conf:2:6"), "{}", r.stderr);

    fs::remove_file(sb.path().join("ctl/redis.sub.py")).unwrap();
    let r = sb.run(&["import-legacy", "ctl", "--out", "imported"]);
    assert!(r.stderr.contains("error: redis.sub.py is missing"), "{}", r.stderr);
}

/// Legitimate values with quotes, spaces, `%` and non-ASCII render as one correctly
/// escaped token each: nginx and Redis quoting, `%%` in unit files, RainerScript and
/// JSON strings (tests/golden-input/escaping is the input).
#[test]
fn escaping_renders_to_golden_tree() {
    let sb = Sandbox::new();
    let input = repo().join("tests/golden-input/escaping");
    sb.write(
        "hhl.yaml",
        &fs::read_to_string(input.join("hhl.yaml"))
            .unwrap()
            .replace("flavor: auto", "flavor: debian"),
    );
    sb.write(
        "templates/lobby.conf.hbs",
        &fs::read_to_string(input.join("templates/lobby.conf.hbs")).unwrap(),
    );
    let r = sb.run(&["render", "--out", "out"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let config = sb.path().join("hhl.yaml").display().to_string();
    check(&sb.path().join("out"), "escaping", &[(&config, "@CONFIG@")]);
}
