//! A clean Debian host: a minimal Debian 12 or 13 (debootstrap minbase + systemd,
//! dbus, ca-certificates; `scripts/cleanhost-rootfs.sh`, cached per suite) copied per
//! test, given the package's dependencies in apt's cache while it still has the
//! network, then booted with its own systemd and a private network
//! (`scripts/cleanhost-boot.sh`), where the .deb is installed for real and offline.
//! Unlike `container.rs`'s copy of this machine, nothing is preinstalled: no nginx,
//! Redis, polkit, rsyslog or procps. Needs root, debootstrap, systemd-nspawn and
//! HHL_DEB; a missing prerequisite fails the test.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::{repo, Run};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Where scripts/cleanhost-rootfs.sh keeps its trees and apt's downloads.
fn cache() -> PathBuf {
    PathBuf::from(std::env::var("HHL_TEST_CACHE").unwrap_or_else(|_| "/var/cache/hhl-tests".into()))
}

pub struct Host {
    pub suite: String,
    dir: PathBuf,
    root: PathBuf,
    name: String,
    nspawn: Option<Child>,
    /// PID (on this machine) of the container's systemd.
    pub leader: u32,
    /// File name of the .deb inside, in /root.
    pub deb: String,
    /// The host's network shared with a client outside it (`with_client`).
    lan: Option<Lan>,
}

/// Two network namespaces of this machine joined by a veth pair and nothing else: the
/// host's (its container boots into it) and a developer's PC's. Addresses exist only
/// inside them; no route leads out. Deleted (with the pair) when dropped.
struct Lan {
    host_ns: String,
    client_ns: String,
}

/// The host's address as the client sees it, and the client's.
pub const HOST_ADDR: &str = "192.168.77.1";
pub const CLIENT_ADDR: &str = "192.168.77.2";

impl Lan {
    fn new(name: &str) -> Lan {
        let lan = Lan {
            host_ns: format!("hhl{name}h"),
            client_ns: format!("hhl{name}d"),
        };
        let script = format!(
            "set -e; ip netns add {h}; ip netns add {c}; \
             ip link add eth0 netns {h} type veth peer name eth0 netns {c}; \
             ip -n {h} addr add {HOST_ADDR}/24 dev eth0; ip -n {c} addr add {CLIENT_ADDR}/24 dev eth0; \
             for n in {h} {c}; do ip -n $n link set lo up; ip -n $n link set eth0 up; done",
            h = lan.host_ns,
            c = lan.client_ns
        );
        must(
            Command::new("sh").arg("-c").arg(script),
            "making the host's and the client's network",
        );
        lan
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for ns in [&self.host_ns, &self.client_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// A developer's machine outside the host: its own network namespace (reaching the
/// host at `HOST_ADDR`), and its own home: `home` is bound over `/root` in a mount
/// namespace of each command's own, so ssh (which reads the passwd entry's home, not
/// $HOME) and git find only the client's files.
pub struct Client {
    ns: String,
    pub home: PathBuf,
}

impl Client {
    fn command(&self, script: &str) -> Command {
        let mut c = Command::new("ip");
        c.args([
            "netns",
            "exec",
            &self.ns,
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
        ])
        .arg(format!(
            "mount --bind '{}' /root && cd /root && {script}",
            self.home.display()
        ))
        .env_clear()
        .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", "/root")
        .env("LANG", "C.UTF-8")
        .stdin(Stdio::null());
        c
    }

    /// A shell script on the client, in its home.
    pub fn sh(&self, script: &str) -> Run {
        self.command(script).output().expect("running ip netns exec").into()
    }

    /// A script left running (a tunnel); the caller kills it.
    pub fn spawn(&self, script: &str) -> Child {
        self.command(&format!("exec {script}"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running ip netns exec")
    }

    /// Wait (bounded) until `script` succeeds on the client.
    #[track_caller]
    pub fn eventually(&self, script: &str, what: &str, secs: u64) {
        crate::support::eventually(&format!("client: {what}"), secs, || self.sh(script));
    }
}

fn must(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Host {
    /// A fresh copy of the `suite` tree with the .deb in /root and everything
    /// `apt-get install [--no-install-recommends] ./hhlctl_*.deb` needs in apt's
    /// cache; not booted.
    pub fn prepare(suite: &str, recommends: bool) -> Host {
        let deb = std::env::var("HHL_DEB")
            .expect("HHL_DEB must name the .deb: run `bash scripts/test.sh`, which builds it (scripts/build-deb.sh)");
        Host::prepare_debs(suite, recommends, &[PathBuf::from(deb)])
    }

    /// `prepare` with several packages in /root (the first is `deb`; the others keep
    /// their file names there), and what each of them needs in apt's cache: the
    /// upgrade test's previous release and this one.
    pub fn prepare_debs(suite: &str, recommends: bool, debs: &[PathBuf]) -> Host {
        assert!(
            Command::new("id")
                .arg("-u")
                .output()
                .map(|o| o.stdout == b"0\n")
                .unwrap_or(false),
            "clean-host tests need root: run `bash scripts/test.sh` as root"
        );
        for tool in ["/usr/sbin/debootstrap", "/usr/bin/systemd-nspawn", "/usr/bin/curl"] {
            assert!(
                Path::new(tool).exists(),
                "{tool} is missing: `bash scripts/deps.sh` installs it"
            );
        }
        for deb in debs {
            assert!(deb.is_file(), "the package {} does not exist", deb.display());
        }
        let tree = must(
            Command::new(repo().join("scripts/cleanhost-rootfs.sh")).arg(suite),
            &format!("building the {suite} tree (scripts/cleanhost-rootfs.sh {suite})"),
        );
        let tree = PathBuf::from(tree.lines().last().unwrap_or_default().trim());

        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("{}c{n}", std::process::id());
        let dir = PathBuf::from(format!("/var/tmp/hhl-cleanhost-{name}"));
        let root = dir.join("root");
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        must(
            Command::new("cp").args(["-a", "--reflink=auto"]).arg(&tree).arg(&root),
            "copying the tree",
        );
        let names: Vec<String> = debs
            .iter()
            .map(|deb| {
                let name = deb.file_name().unwrap().to_string_lossy().into_owned();
                fs::copy(deb, root.join("root").join(&name)).unwrap();
                name
            })
            .collect();
        let _ = fs::remove_file(root.join("etc/resolv.conf"));
        fs::copy("/etc/resolv.conf", root.join("etc/resolv.conf")).expect("copying /etc/resolv.conf");

        // With the network, before boot: fresh package lists and the downloads, into
        // a per-suite cache shared by runs (flock: runs side by side), then hard
        // links into this tree's own cache.
        let archives = cache().join(suite).join("archives");
        fs::create_dir_all(archives.join("partial")).unwrap();
        let no_rec = if recommends { "" } else { "--no-install-recommends" };
        must(
            Command::new("systemd-nspawn")
                .args(["-q", "-D"])
                .arg(&root)
                .args(["--register=no", "--keep-unit", "--pipe"])
                .arg(format!("--bind={}:/var/cache/hhl-archives", archives.display()))
                .args(["/bin/sh", "-c"])
                .arg(format!(
                    "set -e; cd /root; apt-get -qq update; for deb in {}; do \
                     flock /var/cache/hhl-archives/.lock apt-get -y -qq -o Dir::Cache::Archives=/var/cache/hhl-archives/ \
                     install --download-only {no_rec} \"./$deb\"; done",
                    names.join(" ")
                ))
                .env("DEBIAN_FRONTEND", "noninteractive")
                .stdin(Stdio::null()),
            &format!("downloading the package's dependencies into the {suite} tree"),
        );
        must(
            Command::new("sh").arg("-c").arg(format!(
                "cp -l {a}/*.deb {r}/var/cache/apt/archives/",
                a = archives.display(),
                r = root.display()
            )),
            "linking the downloads into the tree",
        );
        Host {
            suite: suite.into(),
            dir,
            root,
            name,
            nspawn: None,
            leader: 0,
            deb: names[0].clone(),
            lan: None,
        }
    }

    /// Before `boot`: the host's network is shared with a client machine outside it
    /// (see `Lan`), returned with an empty home of its own.
    pub fn with_client(&mut self) -> Client {
        let lan = Lan::new(&self.name);
        let home = self.dir.join("client");
        fs::create_dir_all(&home).unwrap();
        let client = Client {
            ns: lan.client_ns.clone(),
            home,
        };
        self.lan = Some(lan);
        client
    }

    /// Boot the tree; wait until systemd says the boot is done.
    pub fn boot(&mut self) {
        let nspawn = Command::new("unshare")
            .args(["-m", "--propagation", "private"])
            .arg(repo().join("scripts/cleanhost-boot.sh"))
            .arg(&self.name)
            .arg(&self.root)
            .args(self.lan.as_ref().map(|l| l.host_ns.as_str()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("running unshare");
        let pid = nspawn.id();
        self.nspawn = Some(nspawn);
        let comm = |p: &str| {
            fs::read_to_string(format!("/proc/{p}/comm"))
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        self.leader = loop {
            if comm(&pid.to_string()) == "systemd-nspawn" {
                let children = fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
                if let Some(c) = children.split_whitespace().find(|c| comm(c) == "systemd") {
                    break c.parse().unwrap();
                }
            }
            if let Some(Ok(Some(status))) = self.nspawn.as_mut().map(|c| c.try_wait()) {
                panic!("the {} container exited at boot: {status}", self.suite);
            }
            assert!(Instant::now() < deadline, "the {} container did not start", self.suite);
            std::thread::sleep(Duration::from_millis(20));
        };
        let state = self.sh(
            "for i in $(seq 500); do [ -S /run/systemd/private ] && break; sleep 0.02; done; \
             timeout 90 systemctl is-system-running --wait",
        );
        assert!(
            matches!(state.stdout.trim(), "running" | "degraded"),
            "{} boot: {} {} (exit {})\nfailed: {}\njobs: {}\n{}",
            self.suite,
            state.stdout,
            state.stderr,
            state.code,
            self.sh("systemctl --failed --no-legend").stdout,
            self.sh("systemctl list-jobs --no-pager").stdout,
            self.sh("journalctl -b --no-pager | tail -80").stdout
        );
    }

    /// `systemctl reboot` inside: nspawn exits 133 ("reboot requested"); boot the same
    /// tree again.
    pub fn reboot(&mut self) {
        let _ = self.sh("systemctl reboot");
        let mut child = self.nspawn.take().expect("the container is not running");
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "the {} container did not reboot in 60 s",
                self.suite
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(status.code(), Some(133), "systemd-nspawn's exit on reboot");
        self.boot();
    }

    /// A shell script inside, as root, with a plain environment.
    pub fn sh(&self, script: &str) -> Run {
        Command::new("nsenter")
            .args(["-t", &self.leader.to_string(), "-a", "--", "/bin/sh", "-c", script])
            .env_clear()
            .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", "/root")
            .env("LANG", "C.UTF-8")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .output()
            .expect("running nsenter")
            .into()
    }

    /// A shell script inside as unix user `user` (in their home).
    pub fn sh_as(&self, user: &str, script: &str) -> Run {
        self.sh(&format!(
            "cd ~{user} && runuser -u {user} -- env HOME=$(echo ~{user}) /bin/sh -c '{}'",
            script.replace('\'', "'\\''")
        ))
    }

    /// Inside; it must succeed. Returns stdout.
    #[track_caller]
    pub fn ok(&self, script: &str) -> String {
        let r = self.sh(script);
        assert_eq!(
            r.code, 0,
            "[{}] `{script}` failed:\nstdout: {}\nstderr: {}",
            self.suite, r.stdout, r.stderr
        );
        r.stdout
    }

    /// This machine's curl in the container's network namespace (a clean host has
    /// no curl of its own, and should not need one).
    /// Assert that `port` answers HTTP (any status) on the host's loopback.
    pub fn assert_http_answers(&self, port: u16) {
        let r = self.curl(&[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("http://127.0.0.1:{port}/hhl"),
        ]);
        assert!(
            r.stdout.len() == 3 && r.stdout != "000",
            "[{}] port {port} gave no HTTP answer: {:?} {}",
            self.suite,
            r.stdout,
            r.stderr
        );
    }

    pub fn curl(&self, args: &[&str]) -> Run {
        Command::new("nsenter")
            .args(["-t", &self.leader.to_string(), "-n", "--", "curl", "-s", "-m", "10"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("running curl")
            .into()
    }

    /// Wait (bounded) until `script` succeeds inside.
    #[track_caller]
    pub fn eventually(&self, script: &str, what: &str, secs: u64) {
        crate::support::eventually(&format!("[{}] {what}", self.suite), secs, || self.sh(script));
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.nspawn.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline && !matches!(child.try_wait(), Ok(Some(_))) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.stop();
        let _ = Command::new(repo().join("scripts/nspawn-boot.sh"))
            .args(["--cleanup", &self.name])
            .status();
        let _ = Command::new("rm")
            .args(["-rf", "--one-file-system"])
            .arg(&self.dir)
            .status();
    }
}
