//! nginx's reload is a HUP: the master starts new workers, then tells the old ones to
//! stop, and until each has closed its listening sockets both generations accept
//! (~100 ms). So that a reload job that is done (and a `git push` that returned) means
//! every new connection reaches the new code, the reload's caller waits, bounded, until
//! every worker from before says "shutting down" (nginx sets that title right before
//! it closes the listening sockets) or is gone. Read from /proc, outside the unit's
//! sandbox, which hides the workers from ExecReload.

use std::collections::HashMap;
use std::fs;
use std::time::{Duration, Instant};

/// The children of each of `parents` (nginx's workers of each master), from one pass
/// over /proc.
pub fn children(parents: &[u32]) -> HashMap<u32, Vec<u32>> {
    let mut out: HashMap<u32, Vec<u32>> = parents.iter().map(|p| (*p, Vec::new())).collect();
    let Ok(dir) = fs::read_dir("/proc") else {
        return out;
    };
    for pid in dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()) {
        // `pid (comm) state ppid ...`; comm may hold spaces, so split after the `)`.
        let ppid = fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.to_string()))
            .and_then(|rest| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if let Some(list) = ppid.and_then(|pp| out.get_mut(&pp)) {
            list.push(pid);
        }
    }
    out
}

/// Whether `pid` no longer accepts: gone, a zombie, or titled "... is shutting down".
/// An empty cmdline alone proves nothing: a process between exec and its new
/// arguments, or one releasing its memory on exit, reads empty for a moment.
fn stopped_accepting(pid: u32) -> bool {
    let state = fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| Some(s.rsplit_once(')')?.1.split_whitespace().next()?.to_string()));
    match state.as_deref() {
        None | Some("Z") | Some("X") => return true,
        _ => {}
    }
    match fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(b) => String::from_utf8_lossy(&b).contains("shutting down"),
        Err(_) => true,
    }
}

/// Wait until every one of `pids` stopped accepting, at most `limit`; returns those
/// that did not.
pub fn wait_stopped_accepting(pids: &[u32], limit: Duration) -> Vec<u32> {
    let deadline = Instant::now() + limit;
    loop {
        let left: Vec<u32> = pids.iter().copied().filter(|p| !stopped_accepting(*p)).collect();
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_its_own_children_and_sees_them_go() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let me = std::process::id();
        assert!(children(&[me])[&me].contains(&child.id()));
        // A running `sleep` is not shutting down...
        assert_eq!(
            wait_stopped_accepting(&[child.id()], Duration::from_millis(20)),
            vec![child.id()]
        );
        child.kill().unwrap();
        child.wait().unwrap();
        // ...and once gone, it accepts nothing.
        assert!(wait_stopped_accepting(&[child.id()], Duration::from_secs(1)).is_empty());
    }
}
