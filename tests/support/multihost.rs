//! Several real systemd hosts on one LAN, and a developer's laptop beside them, for
//! tests of more than one host (see shared/design/REAL-SYSTEMD.md, "Several hosts on
//! one VM"). No network leaves this machine:
//!
//! - `Net`: a switch namespace holding a bridge, and a namespace per node joined to it
//!   by a veth pair: hosts `hhl1`..`hhlN` at 10.77.0.1..N, the laptop at 10.77.0.10
//!   (`LAPTOP`), /24, loopback up, no default route.
//! - `Hosts::boot(n)`: n `Container`s booted side by side, each into its host's
//!   namespace, with hhlctl's units installed, its own ssh host keys and sshd running.
//! - `Laptop`: the laptop's namespace, with a home of its own bound over /root.
//! - `Hosts::boot_persistent(n, persistent, bound)`: the hosts named in `persistent`
//!   keep what they write in a directory of the harness's on this machine's disk
//!   (scripts/nspawn-boot.sh's `HHL_UPPER`), so they survive their container.
//! - Faults, each with its inverse: `cut`/`heal` (two nodes stop hearing each other,
//!   silently), `isolate`/`rejoin` (a node's cable pulled), `freeze`/`thaw` (every
//!   process of a host stopped), `slow`/`unslow` (a node's link rate-limited both ways
//!   by tc's `tbf`), `power_cut`/`boot_again` (a host killed outright, no shutdown, and
//!   booted again on what it had written, if persistent).
//! - A watchdog: past the bound given when the hosts are made (default 5 min) it tears
//!   everything down and aborts the test binary. Drop tears down too; teardown is
//!   idempotent and leaves no namespace, nspawn process or cgroup (`Trace::leftovers`).
//!
//! Names carry this test process's PID: two test binaries never collide.
#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use super::container::{Container, Spawned};
use super::{entry, repo, Run};

/// The laptop's node number: its address is 10.77.0.10. Hosts are 1..=n.
pub const LAPTOP: usize = 10;

/// How long a harness may live unless its constructor says otherwise.
pub const DEFAULT_BOUND: Duration = Duration::from_secs(300);

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A node's address.
pub fn addr(node: usize) -> String {
    format!("10.77.0.{node}")
}

/// A node's name: `hhlN` for host N, `laptop`.
pub fn node_name(node: usize) -> String {
    if node == LAPTOP {
        "laptop".into()
    } else {
        format!("hhl{node}")
    }
}

/// A MAC address nobody on the bridge has: `cut` points two nodes' neighbour
/// entries for each other at it, so their frames are flooded and dropped by all.
const NOWHERE_MAC: &str = "02:00:00:00:00:01";

const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn sh(script: &str) -> Run {
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .output()
        .expect("running sh")
        .into()
}

#[track_caller]
fn must(script: &str, what: &str) {
    let r = sh(script);
    assert_eq!(r.code, 0, "{what}: `{script}` failed:\n{}\n{}", r.stdout, r.stderr);
}

pub use super::eventually;

/// Wait until `ok()` holds, at most `secs` seconds; fail the test with `what`
/// otherwise.
#[track_caller]
pub fn until(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(Instant::now() < deadline, "{what}: not after {secs} s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A shell line that connects to `to`:`port` within 3 s (and sends nothing).
pub fn tcp_script(to: usize, port: u16) -> String {
    format!("timeout 3 bash -c '</dev/tcp/{}/{port}'", addr(to))
}

/// A shell line that prints the first 4 bytes `to`'s sshd sends (`SSH-`) within 2 s.
pub fn banner_script(to: usize) -> String {
    format!("timeout 2 bash -c 'exec 3<>/dev/tcp/{}/22; head -c 4 <&3'", addr(to))
}

/// The namespaces: `PREFIXsw` (the bridge `br0`, a port `pN` per node), `PREFIXhN`
/// per host and `PREFIXlap` for the laptop, each node's end of its pair named `eth0`.
pub struct Net {
    prefix: String,
    nodes: Vec<usize>,
    deleted: bool,
}

impl Net {
    /// Hosts 1..=`hosts` and the laptop; names start with `prefix`.
    pub fn new(prefix: &str, hosts: usize) -> Net {
        let net = Net::plan(prefix, hosts);
        net.create();
        net
    }

    /// The names, nothing made yet: a watchdog can know them before they exist.
    fn plan(prefix: &str, hosts: usize) -> Net {
        assert!((1..LAPTOP).contains(&hosts), "1 to 9 hosts, not {hosts}");
        let mut nodes: Vec<usize> = (1..=hosts).collect();
        nodes.push(LAPTOP);
        Net {
            prefix: prefix.into(),
            nodes,
            deleted: false,
        }
    }

    /// On failure halfway, `self`'s drop deletes what was made.
    fn create(&self) {
        // Those of a process of the same PID that died without its teardown.
        self.delete_namespaces();
        let sw = self.switch();
        let mut script = format!(
            "set -e; ip netns add {sw}; ip -n {sw} link set lo up; \
             ip -n {sw} link add name br0 type bridge; ip -n {sw} link set br0 up; "
        );
        for &n in &self.nodes {
            script.push_str(&format!(
                "ip netns add {ns}; ip -n {ns} link set lo up; \
                 ip link add name eth0 netns {ns} type veth peer name p{n} netns {sw}; \
                 ip -n {ns} addr add {a}/24 dev eth0; ip -n {ns} link set eth0 up; \
                 ip -n {sw} link set p{n} master br0; ip -n {sw} link set p{n} up; ",
                ns = self.ns(n),
                a = addr(n)
            ));
        }
        must(&script, "making the hosts' network");
    }

    /// The switch's namespace.
    pub fn switch(&self) -> String {
        format!("{}sw", self.prefix)
    }

    /// Node `node`'s namespace.
    #[track_caller]
    pub fn ns(&self, node: usize) -> String {
        assert!(self.nodes.contains(&node), "no node {node} (hosts 1..=n, LAPTOP)");
        if node == LAPTOP {
            format!("{}lap", self.prefix)
        } else {
            format!("{}h{node}", self.prefix)
        }
    }

    /// Every namespace of this net, the switch's first.
    pub fn namespaces(&self) -> Vec<String> {
        let mut all = vec![self.switch()];
        all.extend(self.nodes.iter().map(|&n| self.ns(n)));
        all
    }

    /// `a` and `b` no longer hear each other; both still hear everyone else. Each
    /// one's neighbour entry for the other is pinned to a MAC nobody has: frames
    /// between them are dropped without a word, as on a broken path (a connect
    /// times out; no error comes back), TCP connections already open included.
    pub fn cut(&self, a: usize, b: usize) {
        assert_ne!(a, b, "cut: a node from itself");
        must(
            &format!(
                "ip -n {na} neigh replace {ab} lladdr {NOWHERE_MAC} dev eth0 nud permanent && \
                 ip -n {nb} neigh replace {aa} lladdr {NOWHERE_MAC} dev eth0 nud permanent",
                na = self.ns(a),
                nb = self.ns(b),
                aa = addr(a),
                ab = addr(b)
            ),
            &format!("cutting {} from {}", node_name(a), node_name(b)),
        );
    }

    /// Undo `cut`: the pinned entries go, ARP finds the real ones again.
    pub fn heal(&self, a: usize, b: usize) {
        // `neigh del` of an entry that is not there fails: healing is idempotent.
        sh(&format!(
            "ip -n {na} neigh del {ab} dev eth0; ip -n {nb} neigh del {aa} dev eth0",
            na = self.ns(a),
            nb = self.ns(b),
            aa = addr(a),
            ab = addr(b)
        ));
    }

    /// `node`'s cable pulled: its port on the switch goes down (and its own `eth0`
    /// loses carrier). Everyone else still hears each other.
    pub fn isolate(&self, node: usize) {
        let _ = self.ns(node);
        must(
            &format!("ip -n {} link set p{node} down", self.switch()),
            &format!("isolating {}", node_name(node)),
        );
    }

    /// Undo `isolate`.
    pub fn rejoin(&self, node: usize) {
        let _ = self.ns(node);
        must(
            &format!("ip -n {} link set p{node} up", self.switch()),
            &format!("rejoining {}", node_name(node)),
        );
    }

    /// `node`'s link rate-limited to `kbit` kbit/s both ways: tc's token bucket
    /// (`tbf`, a queue of 1 s at that rate, what does not fit is dropped) on its own
    /// `eth0` (what it sends) and on its switch port (what it is sent). The kernel has
    /// no netem: a slow link, not a long one. Everyone else's links are untouched.
    pub fn slow(&self, node: usize, kbit: u32) {
        let _ = self.ns(node);
        let tbf = format!("root tbf rate {kbit}kbit burst 1600 latency 1s");
        must(
            &format!(
                "ip netns exec {ns} tc qdisc replace dev eth0 {tbf} && \
                 ip netns exec {sw} tc qdisc replace dev p{node} {tbf}",
                ns = self.ns(node),
                sw = self.switch()
            ),
            &format!("slowing {}", node_name(node)),
        );
    }

    /// Undo `slow`; idempotent.
    pub fn unslow(&self, node: usize) {
        let _ = self.ns(node);
        // `qdisc del` of a root that has none fails: unslowing is idempotent.
        sh(&format!(
            "ip netns exec {ns} tc qdisc del dev eth0 root; ip netns exec {sw} tc qdisc del dev p{node} root",
            ns = self.ns(node),
            sw = self.switch()
        ));
    }

    /// Delete every namespace (with their veth pairs and the bridge); idempotent.
    pub fn delete(&mut self) {
        if !self.deleted {
            self.delete_namespaces();
            self.deleted = true;
        }
    }

    fn delete_namespaces(&self) {
        for ns in self.namespaces() {
            delete_netns(&ns);
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.delete();
    }
}

/// Kill what still runs in network namespace `ns` (ours: a laptop command left
/// behind, a container's straggler), then delete it. Nothing if it is not there.
fn delete_netns(ns: &str) {
    let Ok(meta) = fs::metadata(format!("/run/netns/{ns}")) else {
        return;
    };
    use std::os::unix::fs::MetadataExt;
    let link = format!("net:[{}]", meta.ino());
    for pid in pids() {
        if fs::read_link(format!("/proc/{pid}/ns/net")).is_ok_and(|l| l.to_string_lossy() == link) {
            // SAFETY: kill(2) has no memory effects.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
    let _ = Command::new("ip")
        .args(["netns", "del", ns])
        .stderr(Stdio::null())
        .status();
}

fn pids() -> Vec<u32> {
    fs::read_dir("/proc")
        .map(|d| d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default()
}

/// A process's state letter and start time (clock ticks after boot): with its PID,
/// who it is, even once the PID could be another's.
fn proc_stat(pid: u32) -> Option<(char, u64)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command's closing parenthesis: 3 (state) onwards; 22 is
    // the start time.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some((fields.first()?.chars().next()?, fields.get(19)?.parse().ok()?))
}

/// The process that was `pid` when it started at `start` is alive and not an
/// exited, unreaped child.
fn running(pid: u32, start: Option<u64>) -> bool {
    matches!(proc_stat(pid), Some((state, t)) if Some(t) == start && state != 'Z' && state != 'X')
}

/// This process's own group in every cgroup hierarchy: where scripts/nspawn-boot.sh
/// puts its `hhl-NAME` groups.
fn own_cgroups() -> Vec<PathBuf> {
    let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = Vec::new();
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrl, path) = (parts.next(), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let base = match ctrl {
            "" if Path::new("/sys/fs/cgroup/unified").is_dir() => "/sys/fs/cgroup/unified".to_string(),
            "" => "/sys/fs/cgroup".to_string(),
            "name=systemd" => "/sys/fs/cgroup/systemd".to_string(),
            c => format!("/sys/fs/cgroup/{c}"),
        };
        let dir = PathBuf::from(format!("{base}{path}"));
        if dir.is_dir() && !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    dirs
}

/// The directories of cgroup `hhl-NAME` that exist, in every hierarchy.
fn cgroup_dirs(name: &str) -> Vec<PathBuf> {
    own_cgroups()
        .into_iter()
        .map(|d| d.join(format!("hhl-{name}")))
        .filter(|d| d.is_dir())
        .collect()
}

/// What a harness made in test process `pid` (another one: a child that was
/// aborted) and is still there: namespaces `hhlmhPID...`, cgroups `hhl-PIDx...`,
/// nspawn processes of machines `hhlPIDx...`, directories in /var/tmp.
pub fn leftovers_of_process(pid: u32) -> Vec<String> {
    // `hhlmh12` must not match `hhlmh1234sw`.
    let ours = |name: &str, prefix: &str| {
        name.strip_prefix(prefix)
            .is_some_and(|rest| !rest.starts_with(|c: char| c.is_ascii_digit()))
    };
    let mut left = Vec::new();
    let mh = format!("hhlmh{pid}");
    for line in sh("ip netns list").stdout.lines() {
        let ns = line.split_whitespace().next().unwrap_or("");
        if ours(ns, &mh) {
            left.push(format!("namespace {ns}"));
        }
    }
    let cg = format!("hhl-{pid}x");
    for dir in own_cgroups() {
        for e in fs::read_dir(&dir).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().starts_with(&cg) {
                left.push(format!("cgroup {}", e.path().display()));
            }
        }
    }
    let machine = format!("--machine=hhl{pid}x");
    for p in pids() {
        let cmdline = fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
        if cmdline.split(|&b| b == 0).any(|a| a.starts_with(machine.as_bytes())) {
            left.push(format!("process {p} of a machine hhl{pid}x..."));
        }
    }
    let root = format!("hhlroot-{pid}-");
    for e in fs::read_dir("/var/tmp").into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if ours(&name, &mh) || name.starts_with(&root) {
            left.push(format!("directory {}", e.path().display()));
        }
    }
    left
}

/// The container's group in the unified (v2) hierarchy: this machine mounts it
/// beside the v1 ones (hybrid), and it has `cgroup.freeze` and `cgroup.kill`.
fn unified_group(name: &str) -> Option<PathBuf> {
    cgroup_dirs(name).into_iter().find(|d| d.join("cgroup.freeze").exists())
}

/// Freeze (`true`) or thaw the container's group and wait, bounded, until the
/// kernel says every process in it is so.
fn set_frozen(name: &str, frozen: bool) -> Result<(), String> {
    let group = unified_group(name).ok_or_else(|| format!("no cgroup v2 group hhl-{name} with cgroup.freeze"))?;
    fs::write(group.join("cgroup.freeze"), if frozen { "1" } else { "0" })
        .map_err(|e| format!("writing {}/cgroup.freeze: {e}", group.display()))?;
    let want = if frozen { "frozen 1" } else { "frozen 0" };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let events = fs::read_to_string(group.join("cgroup.events")).unwrap_or_default();
        if events.lines().any(|l| l == want) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("{} still says {events:?} after 10 s", group.display()));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

struct Boot {
    spawned: Spawned,
    start: Option<u64>,
    reaped: bool,
}

/// What teardown must end, known as soon as it exists: shared with the watchdog.
#[derive(Default)]
struct Registry {
    /// Containers' nspawn processes: their start times, and `reaped` once their
    /// `Container` was dropped.
    boots: Vec<Boot>,
    netns: Vec<String>,
    dirs: Vec<PathBuf>,
    done: bool,
}

impl Registry {
    /// End everything by PID and name, without the `Container`s: thaw, SIGTERM,
    /// bounded wait, SIGKILL, cgroups, mount points, namespaces, directories.
    fn teardown(&mut self) {
        if self.done {
            return;
        }
        for b in &self.boots {
            let _ = set_frozen(&b.spawned.name, false);
        }
        let live: Vec<(u32, Option<u64>)> = self
            .boots
            .iter()
            .filter(|b| !b.reaped && running(b.spawned.pid, b.start))
            .map(|b| (b.spawned.pid, b.start))
            .collect();
        for &(pid, _) in &live {
            // SAFETY: kill(2) has no memory effects.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline && live.iter().any(|&(p, t)| running(p, t)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        for &(pid, _) in live.iter().filter(|&&(p, t)| running(p, t)) {
            // SAFETY: as above.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        for s in self.boots.iter().map(|b| &b.spawned) {
            // Whatever is left of the container in its group (the group is ours).
            if let Some(g) = unified_group(&s.name) {
                let _ = fs::write(g.join("cgroup.kill"), "1");
            }
            let _ = Command::new(repo().join("scripts/nspawn-boot.sh"))
                .args(["--cleanup", &s.name])
                .stderr(Stdio::null())
                .status();
            let _ = fs::remove_dir(&s.mountpoint);
        }
        for ns in &self.netns {
            delete_netns(ns);
        }
        for d in &self.dirs {
            let _ = fs::remove_dir_all(d);
        }
        self.done = true;
    }

    fn trace(&self) -> Trace {
        Trace {
            netns: self.netns.clone(),
            containers: self.boots.iter().map(|b| b.spawned.clone()).collect(),
            starts: self.boots.iter().map(|b| b.start).collect(),
            dirs: self.dirs.clone(),
        }
    }
}

/// Note a container's nspawn process, as soon as it runs, for teardown.
fn register(reg: &Mutex<Registry>, sp: &Spawned) {
    lock(reg).boots.push(Boot {
        spawned: sp.clone(),
        start: proc_stat(sp.pid).map(|(_, t)| t),
        reaped: false,
    })
}

/// Where persistent host `node` keeps its writes, in the harness's directory `dir`.
fn upper_dir(dir: &Path, node: usize) -> PathBuf {
    dir.join(format!("{}-root", node_name(node)))
}

fn lock(reg: &Mutex<Registry>) -> std::sync::MutexGuard<'_, Registry> {
    reg.lock().unwrap_or_else(|e| e.into_inner())
}

/// The names a harness used, to check after its teardown that none is left.
#[derive(Clone, Debug)]
pub struct Trace {
    pub netns: Vec<String>,
    pub containers: Vec<Spawned>,
    starts: Vec<Option<u64>>,
    pub dirs: Vec<PathBuf>,
}

impl Trace {
    /// What is still there: namespaces in `ip netns list`, nspawn processes (by PID,
    /// or by machine name in any process's command line), cgroups, directories.
    pub fn leftovers(&self) -> Vec<String> {
        let mut left = Vec::new();
        let listed = sh("ip netns list").stdout;
        for ns in &self.netns {
            if listed.lines().any(|l| l.split_whitespace().next() == Some(ns)) {
                left.push(format!("namespace {ns}"));
            }
        }
        for (s, &start) in self.containers.iter().zip(&self.starts) {
            if running(s.pid, start) {
                left.push(format!("nspawn process {}", s.pid));
            }
            let machine = format!("--machine=hhl{}", s.name);
            for pid in pids() {
                let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                if cmdline.split(|&b| b == 0).any(|a| a == machine.as_bytes()) {
                    left.push(format!("process {pid} of machine hhl{}", s.name));
                }
            }
            for d in cgroup_dirs(&s.name) {
                left.push(format!("cgroup {}", d.display()));
            }
            if s.mountpoint.exists() {
                left.push(format!("directory {}", s.mountpoint.display()));
            }
        }
        for d in &self.dirs {
            if d.exists() {
                left.push(format!("directory {}", d.display()));
            }
        }
        left
    }
}

/// One booted host: a `Container` (all its methods: `sh`, `ok`, `hhlctl`, ...) in its
/// own namespace of the LAN.
pub struct Host {
    pub node: usize,
    /// `hhlN`: its hostname, and its entry in every node's /etc/hosts.
    pub name: String,
    pub addr: String,
    /// Its own ed25519 host key, `ssh-ed25519 AAAA... root@hhlN`.
    pub host_key: String,
    c: Container,
}

impl Deref for Host {
    type Target = Container;
    fn deref(&self) -> &Container {
        &self.c
    }
}

impl Host {
    /// Wait (bounded) until `script` succeeds inside.
    #[track_caller]
    pub fn eventually(&self, script: &str, what: &str, secs: u64) {
        eventually(&format!("{}: {what}", self.name), secs, || self.sh(script));
    }
}

/// The developer's machine: its own network namespace (10.77.0.10), and its own home:
/// `home` is bound over /root in a mount namespace of each command's own, so ssh
/// (which reads the passwd entry's home, not $HOME) and git find only the laptop's
/// files; its /etc/hosts names every node.
pub struct Laptop {
    ns: String,
    pub home: PathBuf,
    hosts_file: PathBuf,
}

/// The laptop's ssh command line as identity `id` (its key `keys/<id>`), every host's
/// key pinned (`known_hosts`, written by `Hosts::day_one`).
pub fn ssh_as(id: &str) -> String {
    format!(
        "ssh -i /root/keys/{id} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes \
         -o UserKnownHostsFile=/root/known_hosts -o ConnectTimeout=5 -o LogLevel=ERROR"
    )
}

impl Laptop {
    /// `ssh hhl@<host node> <command>` as identity `id`.
    pub fn ssh(&self, id: &str, host: usize, command: &str) -> Run {
        self.sh(&format!("{} hhl@{} {command}", ssh_as(id), addr(host)))
    }

    /// In `id`'s clone of socketserver (cloned from the primary on first use): make
    /// main.lua say `text`, commit, push HEAD to `branch` on host `host`; git's lines
    /// (its `remote:` ones) on stdout.
    pub fn push_lua(&self, id: &str, host: usize, branch: &str, text: &str) -> Run {
        self.sh(&format!(
            "mkdir -p /root/{id} && cd /root/{id} && \
             {{ [ -d socketserver ] || git clone -q --config core.sshCommand='{s}' hhl@{p}:socketserver 2>&1; }} && \
             cd socketserver && git config user.name {id} && git config user.email {id}@pc && \
             printf 'ngx.say(\"{text}\")\\n' > main.lua && git add -A && git commit -qm '{text}' && \
             git push hhl@{h}:socketserver HEAD:{branch} 2>&1",
            s = ssh_as(id),
            p = addr(1),
            h = addr(host)
        ))
    }

    /// A shell script on the laptop, as root in its home, with a plain environment.
    pub fn sh(&self, script: &str) -> Run {
        Command::new("ip")
            .args([
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
                "mount --bind '{}' /root && mount --bind '{}' /etc/hosts && cd /root && {{ {script}\n}}",
                self.home.display(),
                self.hosts_file.display()
            ))
            .env_clear()
            .env("PATH", PATH)
            .env("HOME", "/root")
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::null())
            .output()
            .expect("running ip netns exec")
            .into()
    }

    /// On the laptop; it must succeed. Returns stdout.
    #[track_caller]
    pub fn ok(&self, script: &str) -> String {
        let r = self.sh(script);
        assert_eq!(
            r.code, 0,
            "laptop: `{script}` failed:\nstdout: {}\nstderr: {}",
            r.stdout, r.stderr
        );
        r.stdout
    }

    /// Wait (bounded) until `script` succeeds on the laptop.
    #[track_caller]
    pub fn eventually(&self, script: &str, what: &str, secs: u64) {
        eventually(&format!("laptop: {what}"), secs, || self.sh(script));
    }
}

/// n hosts and a laptop on one LAN, with faults to inject, torn down when dropped or
/// when the watchdog's bound passes.
pub struct Hosts {
    hosts: Vec<Host>,
    pub laptop: Laptop,
    net: Net,
    reg: Arc<Mutex<Registry>>,
    /// Dropped after teardown: tells the watchdog to stand down.
    watchdog: Option<mpsc::Sender<()>>,
    /// How long booting the hosts took (side by side).
    pub boot_time: Duration,
}

impl Hosts {
    /// `boot_within(n, DEFAULT_BOUND)`.
    pub fn boot(n: usize) -> Hosts {
        Hosts::boot_within(n, DEFAULT_BOUND)
    }

    /// `boot_persistent(n, &[], bound)`: every host ephemeral.
    pub fn boot_within(n: usize, bound: Duration) -> Hosts {
        Hosts::boot_persistent(n, &[], bound)
    }

    /// Make the net, boot n hosts side by side (one thread each) into it, each with
    /// hhlctl's units (as `Container::boot`), hostname `hhlN`, /etc/hosts naming every
    /// node, fresh ssh host keys and sshd running; make the laptop. The watchdog starts
    /// first: if the harness still exists `bound` from now, it tears everything down
    /// and aborts the test binary.
    ///
    /// The hosts in `persistent` (node numbers) are persistent containers
    /// (`Container::boot_persistent_in_netns`): their writes go to
    /// `/var/tmp/<prefix>/hhlN-root` (removed at teardown), ssh.service is enabled, so
    /// `power_cut` and `boot_again` bring them back as they were. The others are
    /// ephemeral, as `boot_within`'s.
    pub fn boot_persistent(n: usize, persistent: &[usize], bound: Duration) -> Hosts {
        assert!(
            Command::new("id")
                .arg("-u")
                .output()
                .map(|o| o.stdout == b"0\n")
                .unwrap_or(false),
            "multi-host tests need root: run `bash scripts/test.sh` as root"
        );
        let k = COUNTER.fetch_add(1, Ordering::SeqCst);
        let prefix = match k {
            0 => format!("hhlmh{}", std::process::id()),
            k => format!("hhlmh{}n{k}", std::process::id()),
        };
        let reg = Arc::new(Mutex::new(Registry::default()));
        let watchdog = start_watchdog(reg.clone(), bound);

        let dir = PathBuf::from(format!("/var/tmp/{prefix}"));
        let net = Net::plan(&prefix, n);
        {
            let mut r = lock(&reg);
            r.dirs.push(dir.clone());
            r.netns = net.namespaces();
        }
        net.create();

        let mut etc_hosts = String::new();
        for node in (1..=n).chain([LAPTOP]) {
            etc_hosts.push_str(&format!("{} {}\n", addr(node), node_name(node)));
        }
        let _ = fs::remove_dir_all(&dir);
        let home = dir.join("laptop");
        fs::create_dir_all(&home).unwrap();
        let hosts_file = dir.join("laptop-hosts");
        for &node in persistent {
            assert!(
                (1..=n).contains(&node),
                "no host {node} to make persistent: hosts are 1..={n}"
            );
            lock(&reg).dirs.push(upper_dir(&dir, node));
        }
        fs::write(&hosts_file, format!("127.0.0.1 localhost\n::1 localhost\n{etc_hosts}")).unwrap();
        let laptop = Laptop {
            ns: net.ns(LAPTOP),
            home,
            hosts_file,
        };

        let mut me = Hosts {
            hosts: Vec::new(),
            laptop,
            net,
            reg,
            watchdog: Some(watchdog),
            boot_time: Duration::ZERO,
        };
        let started = Instant::now();
        let results: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (1..=n)
                .map(|node| {
                    let ns = me.net.ns(node);
                    let reg = me.reg.clone();
                    let etc_hosts = etc_hosts.clone();
                    let upper = persistent.contains(&node).then(|| upper_dir(&dir, node));
                    s.spawn(move || {
                        let registered = |sp: &Spawned| register(&reg, sp);
                        let c = match &upper {
                            Some(upper) => Container::boot_persistent_in_netns(&ns, upper, registered),
                            None => Container::boot_in_netns(&ns, registered),
                        };
                        let name = node_name(node);
                        // The machine's own host keys are in the image: each host
                        // makes its own, or they would all be one host to ssh.
                        c.ok(&format!(
                            "hostname {name} && echo {name} > /etc/hostname && \
                             printf '%s' '{etc_hosts}' >> /etc/hosts && rm -f /etc/ssh/ssh_host_*"
                        ));
                        entry::start_sshd(&c);
                        if upper.is_some() {
                            // Back by itself after a reboot, with the keys it made.
                            c.ok("systemctl enable -q ssh.service");
                        }
                        let host_key = c.ok("cat /etc/ssh/ssh_host_ed25519_key.pub").trim().to_string();
                        Host {
                            node,
                            name,
                            addr: addr(node),
                            host_key,
                            c,
                        }
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join()).collect()
        });
        let mut failure = None;
        for r in results {
            match r {
                Ok(h) => me.hosts.push(h),
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        if let Some(e) = failure {
            // `me` drops while unwinding: everything booted so far is torn down.
            std::panic::resume_unwind(e);
        }
        me.boot_time = started.elapsed();
        me
    }

    /// `n` hosts booted (the watchdog's bound `bound`), then `day_one` with the example
    /// (`admins` as its admins) and `placement` (owner → host node). The hosts, and
    /// their hhl.yaml.
    pub fn with_config(
        n: usize,
        ids: &[&str],
        admins: &[&str],
        placement: &[(&str, usize)],
        bound: Duration,
    ) -> (Hosts, String) {
        let hs = Hosts::boot_within(n, bound);
        let example = super::example_yaml();
        assert!(example.contains("admins: []"), "the example changed: {example}");
        let base = example.replace("admins: []", &format!("admins: [{}]", admins.join(", ")));
        let mut placed = String::from("placement:\n");
        for (owner, node) in placement {
            placed.push_str(&format!("  {owner}: {}\n", node_name(*node)));
        }
        let yaml = hs.day_one(&base, ids, &placed);
        (hs, yaml)
    }

    /// Day one of several hosts, as docs/ops/hosts.md lays it out: an ed25519 key per
    /// identity of `ids` made on the laptop (`keys/<id>`, and `known_hosts` pinning
    /// every host), the primary's peer key (`hhlctl hosts key` on host 1), and one
    /// hhl.yaml for all: `base` with every key under `keys:`, every host under `hosts:`
    /// (host 1 the primary) and `placement` (`placement:\n  dev2: hhl2\n`, or "")
    /// appended; each host writes it and runs `hhlctl apply && hhlctl repo init`
    /// itself, side by side. Returns that hhl.yaml.
    pub fn day_one(&self, base: &str, ids: &[&str], placement: &str) -> String {
        // The page's own commands, as written (its `sh tested` blocks).
        let steps = super::blocks("docs/ops/hosts.md", "sh tested");
        let [host_key_step, peer_key_step, apply_step] = &steps[..] else {
            panic!(
                "docs/ops/hosts.md: expected 3 `sh tested` blocks, found {}",
                steps.len()
            );
        };
        for h in self.hosts() {
            assert_eq!(
                h.ok(host_key_step).trim(),
                h.host_key,
                "{}: the page's host key step",
                h.name
            );
        }
        self.laptop.ok(&format!(
            "mkdir -p keys && for id in {}; do ssh-keygen -q -t ed25519 -N '' -C $id@pc -f keys/$id; done",
            ids.join(" ")
        ));
        fs::write(self.laptop.home.join("known_hosts"), self.known_hosts()).unwrap();
        let mut keys = String::from("keys:\n");
        for id in ids {
            let public = self.laptop.ok(&format!("cat keys/{id}.pub"));
            keys.push_str(&format!("  {id}: [\"{}\"]\n", public.trim()));
        }
        let primary = self.host(1);
        primary.write(super::container::CFG, "developers: []\nservers: {}\n");
        let peer_key = primary.ok(peer_key_step).trim().to_string();
        assert!(peer_key.starts_with("ssh-ed25519 "), "{peer_key}");
        let mut yaml = format!("{base}{keys}hosts:\n");
        for h in self.hosts() {
            yaml.push_str(&format!(
                "  - name: {}\n    address: {}\n    host_key: {}\n",
                h.name, h.addr, h.host_key
            ));
            if h.node == 1 {
                yaml.push_str(&format!("    primary: true\n    peer_key: {peer_key}\n"));
            }
        }
        yaml.push_str(placement);
        std::thread::scope(|s| {
            for h in self.hosts() {
                let yaml = &yaml;
                s.spawn(move || {
                    h.write(super::container::CFG, yaml);
                    let r = h.sh(apply_step);
                    assert_eq!(r.code, 0, "{}: apply, repo init:\n{}\n{}", h.name, r.stdout, r.stderr);
                });
            }
        });
        yaml
    }

    /// Host `node` (1-based).
    #[track_caller]
    pub fn host(&self, node: usize) -> &Host {
        assert!(
            (1..=self.hosts.len()).contains(&node),
            "no host {node}: hosts are 1..={}",
            self.hosts.len()
        );
        &self.hosts[node - 1]
    }

    /// Every host, in order.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    pub fn net(&self) -> &Net {
        &self.net
    }

    /// `script` on node `node` (a host, or `LAPTOP`).
    pub fn on(&self, node: usize, script: &str) -> Run {
        if node == LAPTOP {
            self.laptop.sh(script)
        } else {
            self.host(node).sh(script)
        }
    }

    /// For each (from, to): does `from` connect to `to`'s TCP `port` within 3 s?
    /// Side by side: a refused pair costs its 3 s once, not once per pair.
    pub fn reaches(&self, pairs: &[(usize, usize)], port: u16) -> Vec<bool> {
        std::thread::scope(|s| {
            let handles: Vec<_> = pairs
                .iter()
                .map(|&(from, to)| s.spawn(move || self.on(from, &tcp_script(to, port)).code == 0))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }

    /// Does `to`'s sshd greet `from` (`SSH-` within 2 s)?
    pub fn greets(&self, from: usize, to: usize) -> bool {
        let r = self.on(from, &banner_script(to));
        r.code == 0 && r.stdout == "SSH-"
    }

    /// known_hosts lines for every host, by name and address.
    pub fn known_hosts(&self) -> String {
        self.hosts
            .iter()
            .map(|h| {
                let key: Vec<&str> = h.host_key.split_whitespace().take(2).collect();
                format!("{},{} {}\n", h.name, h.addr, key.join(" "))
            })
            .collect()
    }

    /// See `Net::cut`; nodes are hosts 1..=n or `LAPTOP`.
    pub fn cut(&self, a: usize, b: usize) {
        self.net.cut(a, b);
    }

    /// See `Net::heal`.
    pub fn heal(&self, a: usize, b: usize) {
        self.net.heal(a, b);
    }

    /// See `Net::isolate`.
    pub fn isolate(&self, node: usize) {
        self.net.isolate(node);
    }

    /// See `Net::rejoin`.
    pub fn rejoin(&self, node: usize) {
        self.net.rejoin(node);
    }

    /// Every process of host `node` stopped (its systemd, sshd, nspawn itself): the
    /// kernel's cgroup freezer on the container's group in the unified (v2)
    /// hierarchy, `cgroup.freeze` (this cgroup v1 machine mounts it beside the v1
    /// hierarchies; a v2 machine has it too). Unlike the v1 freezer's, frozen
    /// processes stay killable, so a teardown cannot hang on them. Its kernel still
    /// answers (a TCP connect completes), nothing in it runs. Returns once the kernel
    /// says all of it is frozen. Commands run by `sh` are not in that group: they
    /// still run, and see it as it stopped.
    #[track_caller]
    pub fn freeze(&self, node: usize) {
        let h = self.host(node);
        if let Err(e) = set_frozen(h.name(), true) {
            panic!("freezing {}: {e}", h.name);
        }
    }

    /// Undo `freeze`.
    #[track_caller]
    pub fn thaw(&self, node: usize) {
        let h = self.host(node);
        if let Err(e) = set_frozen(h.name(), false) {
            panic!("thawing {}: {e}", h.name);
        }
    }

    /// Host `node` loses its power: its cable goes dark first (a dead machine sends
    /// nothing: no FIN or RST of its connections, no ARP answer), then every process
    /// of its container is killed at once (`Container::power_cut`), nothing shut down
    /// cleanly. Those connected to it notice as they would a dead host: by their
    /// keep-alive or deadline. Its `sh` fails until `boot_again`.
    #[track_caller]
    pub fn power_cut(&self, node: usize) {
        let h = self.host(node);
        let _ = set_frozen(h.name(), false);
        self.net.isolate(node);
        h.c.power_cut();
    }

    /// Power back on after `power_cut`: its cable back, the same container booted
    /// again in its namespace (a persistent host on what it wrote, an ephemeral one
    /// from nothing), `systemctl is-system-running --wait`, then its sshd greeting the
    /// laptop by itself (bounded). How long from power on until sshd answered.
    #[track_caller]
    pub fn boot_again(&mut self, node: usize) -> Duration {
        let t = Instant::now();
        self.net.rejoin(node);
        let reg = self.reg.clone();
        let h = &mut self.hosts[node - 1];
        assert_eq!(h.node, node);
        h.c.boot_again(|sp| register(&reg, sp));
        until(&format!("{}'s sshd back after its boot", node_name(node)), 30, || {
            self.greets(LAPTOP, node)
        });
        t.elapsed()
    }

    /// See `Net::slow`: node `node`'s link limited to `kbit` kbit/s both ways.
    pub fn slow(&self, node: usize, kbit: u32) {
        self.net.slow(node, kbit);
    }

    /// See `Net::unslow`.
    pub fn unslow(&self, node: usize) {
        self.net.unslow(node);
    }

    /// The names in use, for `Trace::leftovers` after teardown.
    pub fn trace(&self) -> Trace {
        lock(&self.reg).trace()
    }

    /// End everything: hosts thawed and shut down cleanly side by side (each
    /// `Container`'s own drop: SIGTERM, bounded wait, SIGKILL, cgroups), then by PID
    /// whatever remains, the namespaces and the laptop's files. Idempotent; Drop
    /// calls it.
    pub fn teardown(&mut self) {
        let reg = self.reg.clone();
        let mut r = lock(&reg);
        if r.done {
            return;
        }
        for h in &self.hosts {
            let _ = set_frozen(h.name(), false);
        }
        let hosts = std::mem::take(&mut self.hosts);
        let names: Vec<String> = hosts.iter().map(|h| h.name().to_string()).collect();
        std::thread::scope(|s| {
            for h in hosts {
                s.spawn(move || drop(h));
            }
        });
        for b in r.boots.iter_mut() {
            if names.contains(&b.spawned.name) {
                b.reaped = true;
            }
        }
        r.teardown();
        self.net.delete();
        drop(r);
        self.watchdog.take();
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// After `bound`, unless told to stand down (its sender dropped): tear down what the
/// registry names, say so on stderr (straight to the descriptor: libtest's capture
/// would swallow it) and abort the whole test binary.
fn start_watchdog(reg: Arc<Mutex<Registry>>, bound: Duration) -> mpsc::Sender<()> {
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(bound) {
            let mut r = lock(&reg);
            if r.done {
                return;
            }
            let mut err = std::io::stderr();
            let _ = writeln!(
                err,
                "\n*** multihost watchdog: the test still runs after {} s: tearing everything down and aborting ***",
                bound.as_secs()
            );
            r.teardown();
            let _ = writeln!(err, "*** multihost watchdog: torn down; aborting ***");
            std::process::abort();
        }
    });
    tx
}
