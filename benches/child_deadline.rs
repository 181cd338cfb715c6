//! The deadline wrapper's own cost (benches/deadlines.sh): `git rev-parse HEAD` on a
//! small repository (the kind of git call a push makes a dozen of) run RUNS times
//! through std's `Command::output` and through `host::child::output` (its own process
//! group, a watchdog thread, reader threads, `waitid`), alternating which goes first;
//! `true` through std as the anchor (the cost of any fork and exec).
use std::process::Command;
use std::time::{Duration, Instant};

use hhlctl::host::child;

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}

fn main() {
    let runs: usize = std::env::var("RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(401);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let git = |args: &[&str]| {
        let ok = Command::new("git")
            .arg("-C")
            .arg(dir.path())
            .args([
                "-c",
                "user.name=b",
                "-c",
                "user.email=b@b",
                "-c",
                "init.defaultBranch=master",
            ])
            .args(args)
            .output()
            .expect("git")
            .status
            .success();
        assert!(ok, "git {args:?}");
    };
    git(&["init", "-q"]);
    git(&["commit", "-q", "--allow-empty", "-m", "x"]);
    let rev_parse = || {
        let mut c = Command::new("git");
        c.arg("-C").arg(dir.path()).args(["rev-parse", "HEAD"]);
        c
    };
    let (mut plain, mut wrapped, mut anchor) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..runs {
        let mut time_plain = || {
            let t = Instant::now();
            let out = rev_parse().output().expect("git");
            assert!(out.status.success());
            plain.push(t.elapsed());
        };
        let mut time_wrapped = || {
            let t = Instant::now();
            let out = child::output(&mut rev_parse(), child::GIT).expect("git");
            assert!(out.status.success());
            wrapped.push(t.elapsed());
        };
        if i % 2 == 0 {
            time_plain();
            time_wrapped();
        } else {
            time_wrapped();
            time_plain();
        }
        let t = Instant::now();
        Command::new("true").output().expect("true");
        anchor.push(t.elapsed());
    }
    let (p, w, a) = (median(plain), median(wrapped), median(anchor));
    println!(
        "git rev-parse HEAD: std {p:.3} ms  host::child {w:.3} ms  child/std {:.3}  (+{:.1} µs)  anchor `true` {a:.3} ms  (medians of {runs})",
        w / p,
        (w - p) * 1e3
    );
}
