//! A unit's memory read from its cgroup, the file systemd itself reads for
//! `MemoryCurrent`: no D-Bus round trip. The cgroup is found through the unit's main
//! process (`/proc/PID/cgroup`), so no slice layout is assumed.

use std::path::{Path, PathBuf};

/// The memory charged to `unit`'s cgroup, found through its main process `pid`
/// (bytes), or `None` when it cannot be read here (the caller then asks systemd).
pub fn memory_of_pid(unit: &str, pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let file = memory_file(&text, Path::new("/sys/fs/cgroup"))?;
    // Only the unit's own group: where systemd did not give the unit a memory group
    // (no accounting), the process sits in a parent's or the root's, whose figure
    // would be the wrong one.
    if file.parent()?.file_name()? != unit {
        return None;
    }
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

/// Where the memory counter of the cgroup in `proc_cgroup` (a `/proc/PID/cgroup`
/// text) lives: cgroup v1's memory controller (`memory.usage_in_bytes`, what systemd
/// reads on a v1 or hybrid host) if the process has one, else the unified tree's
/// `memory.current`. `None` if the path would leave `root`.
fn memory_file(proc_cgroup: &str, root: &Path) -> Option<PathBuf> {
    let mut unified = None;
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        if path.split('/').any(|p| p == "..") {
            return None;
        }
        let rel = path.trim_start_matches('/');
        if controllers.split(',').any(|c| c == "memory") {
            return Some(root.join("memory").join(rel).join("memory.usage_in_bytes"));
        }
        if controllers.is_empty() {
            unified = Some(rel.to_string());
        }
    }
    let rel = unified?;
    // On a hybrid host the unified tree is mounted at root/unified and has no memory
    // controller: no memory.current there, so the read fails and systemd is asked.
    Some(root.join(rel).join("memory.current"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_memory_controller_wins_over_the_unified_tree() {
        let text = "12:pids:/hhl.slice/a.service\n\
                    5:memory:/hhl.slice/hhl-dev1.slice/openresty@x.service\n\
                    0::/hhl.slice/hhl-dev1.slice/openresty@x.service\n";
        assert_eq!(
            memory_file(text, Path::new("/sys/fs/cgroup")).unwrap(),
            Path::new("/sys/fs/cgroup/memory/hhl.slice/hhl-dev1.slice/openresty@x.service/memory.usage_in_bytes")
        );
    }

    #[test]
    fn unified_only_reads_memory_current() {
        assert_eq!(
            memory_file("0::/system.slice/r.service\n", Path::new("/sys/fs/cgroup")).unwrap(),
            Path::new("/sys/fs/cgroup/system.slice/r.service/memory.current")
        );
    }

    #[test]
    fn a_process_outside_its_units_memory_group_is_not_read() {
        // The root's figure is the whole machine's, not the unit's.
        assert_eq!(memory_of_pid("openresty@x.service", std::process::id()), None);
    }

    #[test]
    fn a_path_that_climbs_out_is_refused() {
        assert_eq!(memory_file("0::/../../etc\n", Path::new("/sys/fs/cgroup")), None);
        assert_eq!(memory_file("garbage", Path::new("/sys/fs/cgroup")), None);
    }
}
