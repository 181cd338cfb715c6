//! A real systemd with a real system bus, booted in an ephemeral container of this
//! machine's own root (see shared/design/REAL-SYSTEMD.md): `--volatile=overlay`
//! keeps every write inside in a tmpfs, `--private-network` gives it its own
//! loopback. Needs root and systemd-nspawn (Debian's systemd-container); a missing
//! prerequisite fails the test: these tests must run, not skip.
#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::{repo, Run, BIN};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Where the tests put hhl.yaml inside.
pub const CFG: &str = "/etc/hhl/hhl.yaml";

/// A container's nspawn process as soon as it runs: what ends it without its
/// `Container` (multihost.rs's watchdog).
#[derive(Clone, Debug)]
pub struct Spawned {
    /// systemd-nspawn's PID (a child of this process).
    pub pid: u32,
    /// The name in its cgroups (`hhl-NAME`) and its machine name (`hhlNAME`).
    pub name: String,
    /// The directory `/` is bound on for it.
    pub mountpoint: PathBuf,
}

pub struct Container {
    nspawn: Child,
    name: String,
    /// PID (on the host) of the container's systemd.
    pub leader: u32,
    mountpoint: PathBuf,
    /// The network namespace it joined (`boot_in_netns`), if any.
    netns: Option<String>,
    /// A persistent container's directory (scripts/nspawn-boot.sh's `HHL_UPPER`): its
    /// writes, which outlive it. The caller's to remove. `None`: ephemeral.
    upper: Option<PathBuf>,
}

impl Container {
    /// Boot, wait for `systemctl is-system-running --wait`, install hhlctl's units
    /// from the source tree.
    pub fn boot() -> Container {
        let c = Container::boot_bare();
        c.install();
        c
    }

    /// `boot`, but into the existing network namespace `/run/netns/NETNS` instead of
    /// a private network (several hosts on one LAN: see multihost.rs). `spawned` is
    /// told the nspawn process as soon as it runs, before the boot is waited for, so
    /// a watchdog can end a boot that hangs.
    pub fn boot_in_netns(netns: &str, spawned: impl FnOnce(&Spawned)) -> Container {
        let c = Container::start(Some(netns), None, spawned);
        c.install();
        c
    }

    /// `boot_in_netns`, but persistent: an overlay of this machine's root whose writes
    /// go to `upper` (a directory on a real disk, not /tmp), which outlives the
    /// container, so `power_cut` then `boot_again` finds what it had (see
    /// scripts/nspawn-boot.sh, `HHL_UPPER`). Removing `upper` is the caller's job.
    pub fn boot_persistent_in_netns(netns: &str, upper: &Path, spawned: impl FnOnce(&Spawned)) -> Container {
        let c = Container::start(Some(netns), Some(upper), spawned);
        c.install();
        c
    }

    /// hhlctl's units from the source tree, enabled; the binary and the Lua library.
    fn install(&self) {
        self.ok(&format!(
            "cp {units}/* /usr/lib/systemd/system/ && systemctl daemon-reload && systemctl enable -q hhl.target \
             && cp {BIN} /usr/bin/hhlctl && mkdir -p /usr/share/hhl && cp -r {lua} /usr/share/hhl/",
            units = repo().join("units").display(),
            lua = repo().join("lua").display()
        ));
    }

    /// Boot and wait for `systemctl is-system-running --wait`; install nothing.
    pub fn boot_bare() -> Container {
        Container::start(None, None, |_| {})
    }

    fn start(netns: Option<&str>, upper: Option<&Path>, spawned: impl FnOnce(&Spawned)) -> Container {
        assert!(
            Command::new("id")
                .arg("-u")
                .output()
                .map(|o| o.stdout == b"0\n")
                .unwrap_or(false),
            "real-systemd tests need root: run `bash scripts/test.sh` as root"
        );
        assert!(
            PathBuf::from("/usr/bin/systemd-nspawn").exists(),
            "systemd-nspawn is missing: `bash scripts/deps.sh` installs systemd-container"
        );
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let mountpoint = PathBuf::from(format!("/var/tmp/hhlroot-{}-{n}", std::process::id()));
        let name = format!("{}x{n}", std::process::id());
        let netns = netns.map(str::to_string);
        let upper = upper.map(Path::to_path_buf);
        let (nspawn, leader) = Container::launch(&name, &mountpoint, netns.as_deref(), upper.as_deref(), spawned);
        let c = Container {
            nspawn,
            name,
            leader,
            mountpoint,
            netns,
            upper,
        };
        c.wait_booted();
        c
    }

    /// Start scripts/nspawn-boot.sh for container `name` on `mountpoint`; tell
    /// `spawned` its process; wait (bounded) for its systemd. Its nspawn process and
    /// the PID of its systemd.
    fn launch(
        name: &str,
        mountpoint: &Path,
        netns: Option<&str>,
        upper: Option<&Path>,
        spawned: impl FnOnce(&Spawned),
    ) -> (Child, u32) {
        fs::create_dir_all(mountpoint).unwrap();
        // nspawn puts a tmpfs on /tmp: bind the source tree (and the built binary, if
        // it lives elsewhere) at their own paths so a checkout anywhere is seen inside.
        let bin_dir = PathBuf::from(BIN).parent().unwrap().to_path_buf();
        let mut cmd = Command::new("unshare");
        cmd.args(["-m", "--propagation", "private"])
            .arg(repo().join("scripts/nspawn-boot.sh"))
            .arg(name)
            .arg(mountpoint)
            .arg(format!("--bind-ro={r}:{r}", r = repo().display()))
            .arg(format!("--bind-ro={b}:{b}", b = bin_dir.display()))
            .env_remove("HHL_NETNS")
            .env_remove("HHL_UPPER")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(ns) = netns {
            cmd.env("HHL_NETNS", ns);
        }
        if let Some(dir) = upper {
            cmd.env("HHL_UPPER", dir);
        }
        let nspawn = cmd.spawn().expect("running unshare");
        let pid = nspawn.id();
        spawned(&Spawned {
            pid,
            name: name.to_string(),
            mountpoint: mountpoint.to_path_buf(),
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        // `sh` runs `mount`, then becomes systemd-nspawn, whose child is systemd:
        // only that child's namespaces are the container's.
        let comm = |p: &str| {
            fs::read_to_string(format!("/proc/{p}/comm"))
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        let leader = loop {
            if comm(&pid.to_string()) == "systemd-nspawn" {
                let children = fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
                if let Some(c) = children.split_whitespace().find(|c| comm(c) == "systemd") {
                    break c.parse().unwrap();
                }
            }
            assert!(Instant::now() < deadline, "the container did not start");
            std::thread::sleep(Duration::from_millis(20));
        };
        (nspawn, leader)
    }

    /// Wait for `systemctl is-system-running --wait`, then hand its systemd the
    /// resource controllers (scripts/container-cgroups.sh). After every boot.
    fn wait_booted(&self) {
        let state = self.sh(
            "for i in $(seq 300); do [ -S /run/systemd/private ] && break; sleep 0.02; done; \
             timeout 60 systemctl is-system-running --wait",
        );
        assert!(
            matches!(state.stdout.trim(), "running" | "degraded"),
            "container boot: {} {}\n{}",
            state.stdout,
            state.stderr,
            self.sh("systemctl --failed --no-legend").stdout
        );
        self.ok(&repo().join("scripts/container-cgroups.sh").display().to_string());
    }

    /// A power cut: SIGKILL to the container's systemd (the kernel then kills every
    /// process of its PID namespace at once) and to its nspawn, nothing shut down
    /// cleanly; returns once both are dead (bounded). A persistent container
    /// (`boot_persistent_in_netns`) keeps what it wrote, as a disk does, including
    /// what was not synced (the page cache is this machine's); an ephemeral one loses
    /// all. `boot_again` boots it again.
    #[track_caller]
    pub fn power_cut(&self) {
        // Its systemd's PID is its own while nspawn (not reaped before `boot_again`,
        // so its PID is not anyone else's) runs.
        if alive(self.nspawn.id()) {
            // SAFETY: kill(2) has no memory effects.
            unsafe { libc::kill(self.leader as i32, libc::SIGKILL) };
        }
        // SAFETY: as above.
        unsafe { libc::kill(self.nspawn.id() as i32, libc::SIGKILL) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while alive(self.leader) || alive(self.nspawn.id()) {
            assert!(
                Instant::now() < deadline,
                "power cut of {}: still alive after 20 s",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// After `power_cut` (or a `systemctl reboot` inside: nspawn exits 133), boot the
    /// same container again: same name, cgroups, network namespace and, if
    /// persistent, the same writes; wait for `systemctl is-system-running --wait`.
    /// Installs nothing: what it had, it has. `spawned` is told the new nspawn process.
    #[track_caller]
    pub fn boot_again(&mut self, spawned: impl FnOnce(&Spawned)) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !matches!(self.nspawn.try_wait(), Ok(Some(_))) {
            assert!(
                Instant::now() < deadline,
                "boot_again: {}'s nspawn still runs after 60 s",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // Its last processes leave its cgroups: empty ones are made again below.
        let _ = Command::new(repo().join("scripts/nspawn-boot.sh"))
            .args(["--cleanup", &self.name])
            .status();
        let (nspawn, leader) = Container::launch(
            &self.name,
            &self.mountpoint,
            self.netns.as_deref(),
            self.upper.as_deref(),
            spawned,
        );
        self.nspawn = nspawn;
        self.leader = leader;
        self.wait_booted();
    }

    /// A persistent container's directory (its writes), if it is one.
    pub fn upper(&self) -> Option<&Path> {
        self.upper.as_deref()
    }

    /// Boot, write `yaml` as /etc/hhl/hhl.yaml, apply it, deploy the example Lua.
    pub fn applied(yaml: &str) -> Container {
        let c = Container::boot();
        c.write(CFG, yaml);
        let r = c.hhlctl(CFG, "apply");
        assert_eq!(r.code, 0, "apply failed:\n{}\n{}", r.stdout, r.stderr);
        c.deploy_lua();
        c
    }

    /// The example's Lua (main.lua, game/) into every instance's src.
    pub fn deploy_lua(&self) {
        self.ok(&format!(
            "for d in /opt/hhl/*/*/src; do cp -r {}/. \"$d/\"; done",
            repo().join("examples/src").display()
        ));
    }

    /// The real rsyslog (from scripts/deps.sh) must be running: it writes the
    /// per-developer log files.
    pub fn start_rsyslog(&self) {
        self.ok("systemctl start rsyslog.service && systemctl is-active rsyslog.service");
    }

    /// The name in its cgroups (`hhl-NAME`, see scripts/nspawn-boot.sh).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Run a shell script as unix user `user` inside.
    pub fn sh_as(&self, user: &str, script: &str) -> Run {
        self.sh(&format!(
            "runuser -u {user} -- /bin/sh -c '{}'",
            script.replace('\'', "'\\''")
        ))
    }

    /// Run a shell script inside.
    pub fn sh(&self, script: &str) -> Run {
        Command::new("nsenter")
            .args(["-t", &self.leader.to_string(), "-a", "--", "/bin/sh", "-c", script])
            .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::null())
            .output()
            .expect("running nsenter")
            .into()
    }

    /// Run a shell script inside; it must succeed. Returns stdout.
    #[track_caller]
    pub fn ok(&self, script: &str) -> String {
        let r = self.sh(script);
        assert_eq!(
            r.code, 0,
            "`{script}` failed:\nstdout: {}\nstderr: {}",
            r.stdout, r.stderr
        );
        r.stdout
    }

    /// hhlctl inside, with the given config.
    pub fn hhlctl(&self, config: &str, args: &str) -> Run {
        self.sh(&format!("{BIN} -c {config} {args}"))
    }

    /// Write a file inside.
    pub fn write(&self, path: &str, text: &str) {
        let mut child = Command::new("nsenter")
            .args(["-t", &self.leader.to_string(), "-a", "--", "/bin/sh", "-c"])
            .arg(format!("mkdir -p \"$(dirname {path})\" && cat > {path}"))
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        assert!(child.wait().unwrap().success(), "writing {path} inside the container");
    }

    /// `GET /hhl` body from an OpenResty instance inside.
    pub fn get_hhl(&self, port: u16) -> String {
        self.sh(&format!("curl -s -m 5 http://127.0.0.1:{port}/hhl")).stdout
    }

    /// systemd's MainPID of `unit`.
    pub fn main_pid(&self, unit: &str) -> String {
        self.ok(&format!("systemctl show -p MainPID --value {unit}"))
            .trim()
            .to_string()
    }

    /// Redis PING on `port` inside.
    pub fn ping(&self, port: u16) -> String {
        self.sh(&super::redis_cli(port, "ping")).stdout.trim().to_string()
    }
}

/// Process `pid` exists and is not a zombie.
fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| Some(s.rsplit_once(')')?.1.split_whitespace().next()?.to_string()))
        .is_some_and(|state| state != "Z" && state != "X")
}

impl Drop for Container {
    fn drop(&mut self) {
        // A clean shutdown: SIGTERM to systemd-nspawn, bounded wait, then SIGKILL. Not
        // to one already reaped (`boot_again` that failed): its PID may be another's.
        if matches!(self.nspawn.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-TERM", &self.nspawn.id().to_string()])
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline && !matches!(self.nspawn.try_wait(), Ok(Some(_))) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.nspawn.kill();
        let _ = self.nspawn.wait();
        let _ = fs::remove_dir(&self.mountpoint);
        let _ = Command::new(repo().join("scripts/nspawn-boot.sh"))
            .args(["--cleanup", &self.name])
            .status();
    }
}
