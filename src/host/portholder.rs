//! Who already listens on a TCP port: /proc/net/tcp{,6} listening sockets → socket
//! inode → the process holding it (/proc/*/fd) → its systemd unit (/proc/PID/cgroup).
//! apply asks before it changes anything, so a port taken by another program (Debian's
//! own redis-server.service on 6379, say) is refused with a name, not found later in
//! a crash-looping instance's journal.

use std::collections::HashMap;
use std::fs;

/// A process listening on a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    /// Its command line (arguments joined by spaces), or its `comm` for kernel threads.
    pub command: String,
    /// The systemd unit its cgroup belongs to (`redis-server.service`), if any.
    pub unit: Option<String>,
}

/// TCP ports in LISTEN state in a /proc/net/tcp or tcp6 table, with their socket inode.
pub fn listening(table: &str) -> Vec<(u16, u64)> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            if f.len() < 10 || f[3] != "0A" {
                return None;
            }
            let port = u16::from_str_radix(f[1].rsplit(':').next()?, 16).ok()?;
            let inode = f[9].parse().ok()?;
            Some((port, inode))
        })
        .collect()
}

/// The systemd unit a /proc/PID/cgroup names: the innermost `*.service` or `*.scope`
/// of the systemd hierarchy (cgroup v2 `0::`, or v1 `name=systemd`).
pub fn unit_of_cgroup(cgroup: &str) -> Option<String> {
    // On hybrid hosts `0::` is present but empty: then name=systemd has the path.
    let unified = cgroup.lines().filter(|l| l.starts_with("0::"));
    let named = cgroup.lines().filter(|l| l.contains(":name=systemd:"));
    unified.chain(named).find_map(|line| {
        line.splitn(3, ':')
            .nth(2)?
            .split('/')
            .rev()
            .find(|c| c.ends_with(".service") || c.ends_with(".scope"))
            .map(str::to_string)
    })
}

/// Who listens on each of `ports` (in this network namespace). Ports nobody holds are
/// absent; a socket whose process cannot be found (another namespace, a race) is
/// reported with pid 0.
pub fn holders(ports: &[u16]) -> HashMap<u16, Holder> {
    let mut inodes: HashMap<u64, u16> = HashMap::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = fs::read_to_string(table).unwrap_or_default();
        for (port, inode) in listening(&text) {
            if ports.contains(&port) {
                inodes.insert(inode, port);
            }
        }
    }
    let mut out = HashMap::new();
    if inodes.is_empty() {
        return out;
    }
    let procs = fs::read_dir("/proc").into_iter().flatten().flatten();
    for p in procs {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let fds = fs::read_dir(p.path().join("fd")).into_iter().flatten().flatten();
        for fd in fds {
            let Ok(target) = fs::read_link(fd.path()) else { continue };
            let t = target.to_string_lossy();
            let Some(inode) = t.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']')) else {
                continue;
            };
            if let Some(port) = inode.parse().ok().and_then(|i: u64| inodes.get(&i)) {
                out.entry(*port).or_insert_with(|| Holder {
                    pid,
                    command: command_of(pid),
                    unit: unit_of_cgroup(&fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default()),
                });
            }
        }
    }
    for port in inodes.values() {
        out.entry(*port).or_insert_with(|| Holder {
            pid: 0,
            command: "(a process this user cannot see)".into(),
            unit: None,
        });
    }
    out
}

fn command_of(pid: u32) -> String {
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    if args.is_empty() {
        fs::read_to_string(format!("/proc/{pid}/comm"))
            .unwrap_or_default()
            .trim()
            .to_string()
    } else {
        args.join(" ")
    }
}

/// Refuse, before anything changes, ports of hhl.yaml that another program listens on.
/// A port held by an hhl instance unit is fine: its own (running already), or another
/// one whose port apply is moving (stops run before starts).
pub fn refuse_taken(loaded: &crate::host::load::Loaded) -> anyhow::Result<()> {
    let model = &loaded.model;
    let ports: Vec<u16> = model.instances.iter().map(|i| i.port).collect();
    let held = holders(&ports);
    let mut errs = crate::core::error::Diagnostics::default();
    for inst in &model.instances {
        let Some(h) = held.get(&inst.port) else { continue };
        let ours = h
            .unit
            .as_deref()
            .is_some_and(|u| crate::core::systemd_types::UnitName::parse(u).kind().is_some());
        if ours {
            continue;
        }
        let mut path: Vec<&str> = inst.origin.iter().map(String::as_str).collect();
        path.extend(["values", inst.developer.as_str(), "port"]);
        let (who, hint) = match &h.unit {
            Some(u) if u.ends_with(".service") => (
                format!("pid {} (`{}`) of {u}", h.pid, h.command),
                format!(
                    "stop it for good (`systemctl disable --now {u}`), or give {} another port",
                    inst.name
                ),
            ),
            Some(u) => (
                format!("pid {} (`{}`) in {u}", h.pid, h.command),
                format!("stop that program, or give {} another port", inst.name),
            ),
            None => (
                format!("pid {} (`{}`)", h.pid, h.command),
                format!("stop that program, or give {} another port", inst.name),
            ),
        };
        errs.push(
            loaded
                .source
                .diag(
                    &path,
                    format!("port {} of {} is already in use by {who}", inst.port, inst.unit()),
                )
                .hint(hint),
        );
    }
    Ok(errs.into_result(())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listening_sockets_count() {
        let t = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   \
                 0: 0100007F:18EB 00000000:0000 0A 00000000:00000000 00:00000000 00000000   104        0 27153 1 0000000000000000 100 0 0 10 0\n   \
                 1: 0100007F:0438 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 27999 1 0000000000000000 100 0 0 10 0\n";
        assert_eq!(listening(t), vec![(6379, 27153)]);
        let t6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   \
                  0: 00000000000000000000000001000000:0438 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 31337 1 0000000000000000 100 0 0 10 0\n";
        assert_eq!(listening(t6), vec![(1080, 31337)]);
    }

    #[test]
    fn the_unit_is_the_innermost_service_or_scope() {
        assert_eq!(
            unit_of_cgroup("0::/system.slice/redis-server.service\n").as_deref(),
            Some("redis-server.service")
        );
        assert_eq!(
            unit_of_cgroup(
                "12:pids:/\n1:name=systemd:/hhl.slice/hhl-dev1.slice/openresty@socketserver-dev1.service\n0::/\n"
            )
            .as_deref(),
            Some("openresty@socketserver-dev1.service")
        );
        assert_eq!(
            unit_of_cgroup("0::/user.slice/user-0.slice/session-3.scope\n").as_deref(),
            Some("session-3.scope")
        );
        assert_eq!(unit_of_cgroup("0::/\n"), None);
    }
}
