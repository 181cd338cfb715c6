//! Everything the console's home page shows about instances, read from the host:
//! systemd's state (the same bulk read `hhlctl status` uses), whether the port
//! answers, CPU time from the unit's cgroup, and the last time its main process
//! died, from systemd's own journal lines (fields `UNIT`, `EXIT_CODE`, `EXIT_STATUS`,
//! written by PID 1, so an instance cannot forge them).

use std::collections::HashMap;
use std::process::Command;

use anyhow::Result;
use serde::Serialize;

use crate::core::kind::Kind;
use crate::core::model::Instance;
use crate::core::systemd_types::ActiveState;

/// One instance as the console shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct View {
    /// As hhlctl names it (`socketserver-dev1`, `6381`).
    pub instance: String,
    /// As the journal and the log page name it (`socketserver-dev1`, `redis-dev1`).
    pub label: String,
    pub unit: String,
    pub owner: String,
    pub server: String,
    pub kind: &'static str,
    pub port: u16,
    pub active_state: ActiveState,
    pub sub_state: String,
    pub main_pid: u32,
    /// Microseconds since the epoch when it last became active; 0 if never.
    pub since_usec: u64,
    pub restarts: u32,
    pub memory: Option<u64>,
    /// CPU time used by the unit's cgroup, microseconds (the page turns two readings into a %).
    pub cpu_usec: Option<u64>,
    pub port_answers: bool,
    pub healthy: bool,
    pub last_exit: Option<Exit>,
    /// An OpenResty instance's code: its branch head against its live release.
    pub code: Option<crate::host::release_info::Deployment>,
    /// With several hosts, the one it runs on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Its host did not answer: the rest is what it last said (no CPU, no exit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreachable: Option<crate::core::peers::Unreachable>,
}

/// The last time the instance's main process ended other than by a clean stop.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Exit {
    /// Microseconds since the epoch (the journal's time of systemd's line).
    pub t: u64,
    /// `exited`, `killed` or `dumped`.
    pub code: String,
    /// Exit status, or the signal's number.
    pub status: i32,
    /// In words: `exit code 1`, `signal 9 (SIGKILL)`.
    pub reason: String,
    /// systemd's line.
    pub message: String,
}

impl Exit {
    /// What the journal fields say, in words. Pure.
    pub fn reason_of(code: &str, status: i32) -> String {
        match code {
            "exited" => format!("exit code {status}"),
            "killed" | "dumped" => {
                let name = signal_name(status).map(|n| format!(" (SIG{n})")).unwrap_or_default();
                let core = if code == "dumped" { ", core dumped" } else { "" };
                format!("signal {status}{name}{core}")
            }
            other => format!("{other} {status}"),
        }
    }
}

fn signal_name(n: i32) -> Option<&'static str> {
    Some(match n {
        1 => "HUP",
        2 => "INT",
        3 => "QUIT",
        4 => "ILL",
        6 => "ABRT",
        7 => "BUS",
        8 => "FPE",
        9 => "KILL",
        11 => "SEGV",
        13 => "PIPE",
        14 => "ALRM",
        15 => "TERM",
        _ => return None,
    })
}

/// The views of `instances`, in their order.
pub fn read(instances: &[&Instance], exits: &HashMap<String, Exit>) -> Result<Vec<View>> {
    let health = crate::host::health::read(instances)?.health;
    Ok(instances
        .iter()
        .zip(health)
        .map(|(i, h)| {
            let s = h.state;
            View {
                instance: i.name.clone(),
                label: i.syslog_identifier(),
                unit: i.unit(),
                owner: i.developer.clone(),
                server: i.server.clone(),
                kind: match i.kind {
                    Kind::Openresty => "openresty",
                    Kind::Redis => "redis",
                },
                port: i.port,
                cpu_usec: (s.main_pid > 0).then(|| cpu_of_pid(&i.unit(), s.main_pid)).flatten(),
                code: None,
                healthy: h.healthy,
                port_answers: h.port_answers,
                since_usec: if s.active_state.is_active() {
                    s.active_enter_usec
                } else {
                    0
                },
                restarts: s.restarts,
                memory: s.memory,
                main_pid: s.main_pid,
                active_state: s.active_state,
                sub_state: s.sub_state,
                last_exit: exits.get(&i.unit()).cloned(),
                host: None,
                unreachable: None,
            }
        })
        .collect())
}

/// CPU time of `unit`'s cgroup, found through its main process: cgroup v1's cpuacct
/// controller where the process has one (`cpuacct.usage`, ns), else the unified
/// tree's `cpu.stat` (`usage_usec`). Only the unit's own group counts.
fn cpu_of_pid(unit: &str, pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let counted = cpu_file(&text, unit).and_then(|(path, nanos)| {
        let v = std::fs::read_to_string(&path).ok()?;
        if nanos {
            v.trim().parse::<u64>().ok().map(|ns| ns / 1000)
        } else {
            v.lines()
                .find_map(|l| l.strip_prefix("usage_usec "))
                .and_then(|n| n.trim().parse().ok())
        }
    });
    counted.or_else(|| cpu_of_procs(&text, unit))
}

/// Where no controller counts the unit's CPU (cgroup v1 without CPUAccounting): the
/// user and system time of the processes in its group now (those that ended are not
/// counted, so the page never shows a negative share).
fn cpu_of_procs(proc_cgroup: &str, unit: &str) -> Option<u64> {
    let rel = proc_cgroup.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, controllers, rel) = (parts.next()?, parts.next()?, parts.next()?);
        let tracked = controllers.is_empty() || controllers == "name=systemd";
        (tracked && !rel.split('/').any(|p| p == "..") && rel.rsplit('/').next() == Some(unit)).then_some(rel)
    })?;
    let procs = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd", "/sys/fs/cgroup"]
        .iter()
        .find_map(|root| std::fs::read_to_string(format!("{root}{rel}/cgroup.procs")).ok())?;
    let ticks = rustix::param::clock_ticks_per_second();
    let ticks = Some(ticks).filter(|t| *t > 0)?;
    let total: u64 = procs
        .lines()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).ok())
        .filter_map(|stat| {
            // Fields after the command (which may hold spaces) in parentheses.
            let rest = &stat[stat.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split(' ').collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .sum();
    Some(total * 1_000_000 / ticks)
}

/// Where the CPU counter of `unit`'s group lives, and whether it counts nanoseconds.
/// Pure.
fn cpu_file(proc_cgroup: &str, unit: &str) -> Option<(String, bool)> {
    let mut unified = None;
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, rel) = (parts.next()?, parts.next()?, parts.next()?);
        if rel.split('/').any(|p| p == "..") || rel.rsplit('/').next() != Some(unit) {
            continue;
        }
        if controllers.split(',').any(|c| c == "cpuacct") {
            let dir = if std::path::Path::new("/sys/fs/cgroup/cpuacct").is_dir() {
                "cpuacct".to_string()
            } else {
                controllers.to_string()
            };
            return Some((format!("/sys/fs/cgroup/{dir}{rel}/cpuacct.usage"), true));
        }
        if controllers.is_empty() {
            unified = Some(format!("/sys/fs/cgroup{rel}/cpu.stat"));
        }
    }
    unified.map(|p| (p, false))
}

/// The newest abnormal end of each of `units`' main processes, from systemd's lines
/// in the journal.
pub fn last_exits(units: &[String]) -> HashMap<String, Exit> {
    let out = crate::host::child::output(
        Command::new("journalctl")
            .args(["--no-pager", "-q", "-o", "json", "-n", "2000", "_PID=1"])
            .args(["EXIT_CODE=exited", "EXIT_CODE=killed", "EXIT_CODE=dumped"]),
        crate::host::child::JOURNAL,
    );
    let text = out
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    exits_in(&text, units)
}

/// From `journalctl -o json` lines of PID 1, the newest exit of each of `units`. Pure.
pub fn exits_in(json_lines: &str, units: &[String]) -> HashMap<String, Exit> {
    let mut out = HashMap::new();
    for line in json_lines.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("");
        let unit = s("UNIT");
        if !units.iter().any(|u| u == unit) {
            continue;
        }
        let (Ok(t), Ok(status)) = (
            s("__REALTIME_TIMESTAMP").parse::<u64>(),
            s("EXIT_STATUS").parse::<i32>(),
        ) else {
            continue;
        };
        let code = s("EXIT_CODE");
        // nginx stops on SIGQUIT and exits 0: that is a stop, not a crash.
        if code == "exited" && status == 0 {
            continue;
        }
        out.insert(
            unit.to_string(),
            Exit {
                t,
                code: code.to_string(),
                status,
                reason: Exit::reason_of(code, status),
                message: s("MESSAGE").to_string(),
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_read_from_the_units_own_group() {
        let v2 = "0::/hhl.slice/hhl-dev1.slice/openresty@x.service\n";
        assert_eq!(
            cpu_file(v2, "openresty@x.service"),
            Some((
                "/sys/fs/cgroup/hhl.slice/hhl-dev1.slice/openresty@x.service/cpu.stat".into(),
                false
            ))
        );
        let v1 = "2:cpuacct:/hhl.slice/openresty@x.service\n0::/hhl.slice/openresty@x.service\n";
        let (path, nanos) = cpu_file(v1, "openresty@x.service").unwrap();
        assert!(
            path.ends_with("/hhl.slice/openresty@x.service/cpuacct.usage") && nanos,
            "{path}"
        );
        // Not its own group (no accounting), or a path that climbs out: nothing.
        assert_eq!(cpu_file("0::/\n", "openresty@x.service"), None);
        assert_eq!(cpu_file("0::/../openresty@x.service\n", "openresty@x.service"), None);
    }

    #[test]
    fn the_newest_exit_of_each_unit_in_words() {
        let line = |unit: &str, t: u64, code: &str, status: i32| {
            serde_json::json!({"UNIT": unit, "__REALTIME_TIMESTAMP": t.to_string(), "EXIT_CODE": code,
                "EXIT_STATUS": status.to_string(), "MESSAGE": format!("{unit}: Main process exited, code={code}, status={status}")})
            .to_string()
        };
        let text = [
            line("openresty@a.service", 1, "exited", 1),
            line("openresty@a.service", 2, "killed", 9),
            line("openresty@b.service", 3, "dumped", 11),
            line("openresty@c.service", 4, "exited", 0),
            line("sshd.service", 5, "killed", 9),
        ]
        .join("\n");
        let units: Vec<String> = ["a", "b", "c"]
            .iter()
            .map(|u| format!("openresty@{u}.service"))
            .collect();
        let got = exits_in(&text, &units);
        assert_eq!(got.len(), 2);
        let a = &got["openresty@a.service"];
        assert_eq!((a.t, a.reason.as_str()), (2, "signal 9 (SIGKILL)"));
        assert_eq!(got["openresty@b.service"].reason, "signal 11 (SIGSEGV), core dumped");
        assert_eq!(Exit::reason_of("exited", 3), "exit code 3");
    }
}
