//! Rendered configs against the real programs: every nginx config passes `nginx -t`
//! (Debian's nginx + libnginx-mod-http-lua), one instance really serves `GET /hhl`,
//! and a rendered Redis config really answers PING. These need the Debian packages
//! scripts/deps.sh (run by scripts/test.sh) installs; missing ones are failures, not skips.

mod support;

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hhlctl::core::kind::Kind;
use hhlctl::host::fsapply::{self, Manifest, Ownership};
use hhlctl::host::load;
use support::{example_under, repo, Sandbox};

/// Render `yaml` and write it for real (its paths point into the sandbox).
fn materialize(sb: &Sandbox, yaml: &str) -> load::Loaded {
    materialize_file(&sb.write("hhl.yaml", yaml))
}

/// Load, render and write the config at `cfg` for real.
fn materialize_file(cfg: &Path) -> load::Loaded {
    let loaded = load::load(cfg).unwrap_or_else(|e| panic!("{e:#}"));
    let artifacts = loaded.render().unwrap();
    let changes = fsapply::diff(Path::new("/"), &artifacts, &Manifest::default(), Ownership::Ignore).unwrap();
    fsapply::apply(Path::new("/"), &artifacts, &changes, Ownership::Ignore).unwrap();
    loaded
}

fn nginx_t(prefix: &Path) -> std::process::Output {
    Command::new("/usr/sbin/nginx")
        .args(["-t", "-q", "-e", "stderr", "-p"])
        .arg(format!("{}/", prefix.display()))
        .args(["-c", "conf/nginx.conf"])
        .output()
        .expect("running /usr/sbin/nginx: install nginx and libnginx-mod-http-lua (bash scripts/deps.sh)")
}

#[test]
fn every_rendered_nginx_config_passes_nginx_t() {
    let sb = Sandbox::new();
    let loaded = materialize(&sb, &example_under(sb.path()));
    let mut tested = 0;
    for inst in loaded.model.instances.iter().filter(|i| i.kind == Kind::Openresty) {
        let out = nginx_t(&inst.dir);
        assert!(
            out.status.success(),
            "{}: {}",
            inst.name,
            String::from_utf8_lossy(&out.stderr)
        );
        tested += 1;
    }
    assert_eq!(tested, 11);
}

#[test]
fn imported_legacy_config_passes_nginx_t() {
    let sb = Sandbox::new();
    let src = repo().join("tests/legacy/serverctrl");
    let r = sb.run(&["import-legacy", src.to_str().unwrap(), "--out", "imported"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let b = sb.path().display().to_string();
    let yaml = fs::read_to_string(sb.path().join("imported/hhl.yaml"))
        .unwrap()
        .replace(": /opt/", &format!(": {b}/opt/"))
        .replace(": /etc/", &format!(": {b}/etc/"))
        .replace(": /var/", &format!(": {b}/var/"))
        .replace("flavor: auto", "flavor: debian");
    let loaded = materialize_file(&sb.write("imported/hhl.yaml", &yaml));
    for inst in loaded.model.instances.iter().filter(|i| i.kind == Kind::Openresty) {
        let out = nginx_t(&inst.dir);
        assert!(
            out.status.success(),
            "{}: {}",
            inst.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Stops the server on drop with SIGTERM, so nginx's master takes its workers with it
/// (SIGKILL would orphan them).
struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        let _ = self.0.wait();
    }
}

/// Send `request` to 127.0.0.1:port until it answers (bounded: 10 s).
fn ask(port: u16, request: &[u8]) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s.write_all(request).unwrap();
            let mut buf = String::new();
            let _ = s.read_to_string(&mut buf);
            if !buf.is_empty() {
                return buf;
            }
        }
        assert!(Instant::now() < deadline, "nothing answered on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_rendered_openresty_instance_serves_get_hhl() {
    let sb = Sandbox::new();
    let port = free_port();
    let yaml = example_under(sb.path()).replace("dev1: {port: 1081}", &format!("dev1: {{port: {port}}}"));
    let loaded = materialize(&sb, &yaml);
    let inst = loaded
        .model
        .instances
        .iter()
        .find(|i| i.name == "socketserver-dev1")
        .unwrap();
    fs::copy(repo().join("examples/src/main.lua"), inst.src_dir().join("main.lua")).unwrap();
    // Instance directories are 0750 for their owner; here no owner exists, and a root
    // master would hand requests to `nobody` workers. Under systemd nginx runs as the
    // developer's user from the start.
    let child = Command::new("/usr/sbin/nginx")
        .args(["-g", "user root root; daemon off;", "-e", "stderr", "-p"])
        .arg(format!("{}/", inst.dir.display()))
        .args(["-c", "conf/nginx.conf"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _guard = Killed(child);
    let answer = ask(port, b"GET /hhl HTTP/1.0\r\nHost: localhost\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("\r\n\r\nhhl socketserver-dev1 ok\n"), "{answer}");
}

#[test]
fn a_rendered_redis_config_serves_ping() {
    let sb = Sandbox::new();
    let port = free_port();
    let yaml = example_under(sb.path()).replace("dev2: {port: 6382}", &format!("dev2: {{port: {port}}}"));
    let loaded = materialize(&sb, &yaml);
    let inst = loaded
        .model
        .instances
        .iter()
        .find(|i| i.kind == Kind::Redis && i.developer == "dev2")
        .unwrap();
    let child = Command::new("redis-server")
        .arg(&inst.config_path)
        .stdout(Stdio::null())
        .spawn()
        .expect("running redis-server: install redis-server (bash scripts/deps.sh)");
    let _guard = Killed(child);
    assert_eq!(ask(port, b"PING\r\nQUIT\r\n"), "+PONG\r\n+OK\r\n");
}
