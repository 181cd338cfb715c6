//! Child processes with a deadline. Every program hhlctl runs and waits for (git, tar,
//! journalctl, `nginx -t`, the user tools) runs here: in its own process group, with a
//! watchdog that, at the deadline, sends the group SIGTERM, then SIGKILL a moment
//! later; the caller then gets an error naming the command, how long it was given, and
//! what to look at. A program that hangs (a git waiting on a lock, an `init_by_lua`
//! that loops, NSS waiting for a directory server) so costs one deadline, never the
//! caller's whole life: the multi-host layer relies on every wait on a host ending.
//!
//! The leader is waited for without being reaped (`waitid(WNOWAIT)`), the watchdog
//! stopped, and only then reaped: the group's id cannot be reused while the watchdog
//! may still signal it.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use rustix::process::{Pid, Signal};

/// How long one kind of program may run, and what to look at when it did not end.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    pub limit: Duration,
    pub hint: &'static str,
}

/// git on the bare repositories (rev-parse, log, ls-tree, cat-file, for-each-ref,
/// update-ref) and the release's `git archive | tar -x`. The largest game repository
/// of a dev server (a few hundred MB) archives in seconds; two minutes is a git waiting
/// on a lock or a stalled disk, not a slow one.
pub const GIT: Deadline = Deadline {
    limit: Duration::from_secs(120),
    hint:
        "git (or tar) is stuck: look for a `*.lock` file in the repository and for git processes (`ps -ef | grep git`)",
};

/// `nginx -t` (and `openresty -t`) of one instance's rendered config, and the Lua
/// syntax check (luajit's parser inside nginx). Both run `init_by_lua*` code, which is
/// the developers': a test takes well under a second; a minute is code that loops or
/// waits on the network.
pub const NGINX_TEST: Deadline = Deadline {
    limit: Duration::from_secs(60),
    hint: "the config's `init_by_lua*` code (or a module it loads) may loop or wait on the network: run the same `-t` by hand to see where it stops",
};

/// `rsyslogd -N1` on the rendered rules: a syntax check, instant; 30 s is a stuck disk.
pub const RSYSLOG_TEST: Deadline = Deadline {
    limit: Duration::from_secs(30),
    hint: "run `rsyslogd -N1 -f /etc/rsyslog.d/hhl.conf` by hand to see where it stops",
};

/// journalctl reading a bounded number of lines (`-n`): tens of milliseconds on an
/// indexed journal, seconds on a large one read cold; 60 s is a journal it cannot read.
pub const JOURNAL: Deadline = Deadline {
    limit: Duration::from_secs(60),
    hint: "journalctl did not answer: `journalctl --verify` on the host checks the journal files, `systemctl status systemd-journald` journald itself",
};

/// getent, id, useradd, groupadd, usermod, and the few `runuser` steps of `repo init`
/// (git, rm): local files unless NSS asks a directory server, whose own timeouts are
/// tens of seconds. Above those, so an answer that comes late still counts.
pub const USER_TOOLS: Deadline = Deadline {
    limit: Duration::from_secs(90),
    hint: "the user database did not answer: check NSS (`getent passwd root`), and for useradd, a stale /etc/passwd.lock or /etc/.pwd.lock",
};

/// `repo init` running the post-receive hook as the entry account: a deploy, which
/// waits for its reload job (at most `systemd::jobs::JOB_DEADLINE`, 600 s) and for
/// the push-time check; above both.
pub const HOOK: Deadline = Deadline {
    limit: Duration::from_secs(660),
    hint: "the deploy hook did not end: `systemctl list-jobs` shows whether systemd is stuck on the reload",
};

/// Between SIGTERM and SIGKILL: git removes its lock files on SIGTERM.
const GRACE: Duration = Duration::from_secs(2);

/// `deadline`'s limit, or `HHL_CHILD_TIMEOUT` (seconds) where that is shorter: tests
/// shorten it to prove that a hung program is reported.
pub fn limit(deadline: &Deadline) -> Duration {
    shortened(deadline.limit, std::env::var("HHL_CHILD_TIMEOUT").ok().as_deref())
}

fn shortened(limit: Duration, seconds: Option<&str>) -> Duration {
    seconds
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(Duration::from_secs_f64)
        .map_or(limit, |t| t.min(limit))
}

/// `cmd` as a shell would show it (program and arguments), shortened.
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    if s.chars().count() > 160 {
        s = s.chars().take(157).collect::<String>() + "...";
    }
    s
}

/// The error of a program killed at its deadline.
#[derive(Debug)]
pub struct TimedOut {
    pub command: String,
    pub after: Duration,
    pub hint: &'static str,
}

impl std::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` did not finish within {:.1} s, so hhlctl killed it (and every process it started)\n  hint: {}",
            self.command,
            self.after.as_secs_f64(),
            self.hint
        )
    }
}

impl std::error::Error for TimedOut {}

/// A running program under its deadline. Take its pipes from `child` as needed, then
/// `wait` (or `wait_with_output`); dropping it unwaited kills its group.
pub struct Bounded {
    child: Child,
    command: String,
    deadline: Deadline,
    limit: Duration,
    started: Instant,
    dog: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
    fired: Arc<AtomicBool>,
}

impl Bounded {
    /// Spawn `cmd` in a process group of its own, watched from now.
    pub fn spawn(cmd: &mut Command, deadline: Deadline) -> Result<Bounded> {
        let (child, command) = spawn_grouped(cmd)?;
        Bounded::watch(child, command, deadline)
    }

    /// A watchdog for `child`, the leader of its own process group.
    fn watch(child: Child, command: String, deadline: Deadline) -> Result<Bounded> {
        let limit = limit(&deadline);
        let fired = Arc::new(AtomicBool::new(false));
        let pid = child.id();
        let (tx, rx) = mpsc::channel::<()>();
        let dog_fired = Arc::clone(&fired);
        let dog = std::thread::Builder::new()
            .name("child-deadline".into())
            .spawn(move || {
                // Disconnected: the leader ended (or the caller gave up on it).
                if rx.recv_timeout(limit) != Err(mpsc::RecvTimeoutError::Timeout) {
                    return;
                }
                dog_fired.store(true, Ordering::SeqCst);
                signal_group(pid, Signal::TERM);
                if rx.recv_timeout(GRACE) == Err(mpsc::RecvTimeoutError::Timeout) {
                    signal_group(pid, Signal::KILL);
                }
            })
            .context("starting a deadline watchdog")?;
        Ok(Bounded {
            child,
            command,
            deadline,
            limit,
            started: Instant::now(),
            dog: Some((tx, dog)),
            fired,
        })
    }

    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Wait for the program; `TimedOut` if the watchdog had to end it.
    pub fn wait(mut self) -> Result<ExitStatus> {
        self.wait_unreaped();
        let fired = self.stop_watchdog();
        let status = self
            .child
            .wait()
            .with_context(|| format!("waiting for `{}`", self.command))?;
        if fired {
            return Err(self.timed_out());
        }
        Ok(status)
    }

    /// `wait`, with what the program wrote to its piped standard output and error
    /// (read meanwhile, so that a full pipe never blocks it) and `input` written to its
    /// piped standard input from a thread.
    pub fn wait_with_output(mut self, input: Option<Vec<u8>>) -> Result<Output> {
        let writer = match (input, self.child.stdin.take()) {
            (Some(input), Some(mut stdin)) => Some(std::thread::spawn(move || {
                let _ = stdin.write_all(&input);
            })),
            _ => None,
        };
        let out = self.child.stdout.take().map(reader);
        let err = self.child.stderr.take().map(reader);
        self.wait_unreaped();
        let fired = self.stop_watchdog();
        let status = self
            .child
            .wait()
            .with_context(|| format!("waiting for `{}`", self.command))?;
        if fired {
            return Err(self.timed_out());
        }
        // The pipes close when the group ends; a process that left the group (a
        // daemon) and kept them open is not waited for beyond the deadline.
        let left = self.limit.saturating_sub(self.started.elapsed()) + GRACE;
        let collect = |r: Option<mpsc::Receiver<Vec<u8>>>| r.map(|r| r.recv_timeout(left).unwrap_or_default());
        let stdout = collect(out).unwrap_or_default();
        let stderr = collect(err).unwrap_or_default();
        // Not joined: the writer ends when the input is written or the pipe's reader
        // is gone; a process that left the group could hold it past any deadline.
        drop(writer);
        Ok(Output { status, stdout, stderr })
    }

    fn timed_out(&self) -> anyhow::Error {
        anyhow!(TimedOut {
            command: self.command.clone(),
            after: self.limit,
            hint: self.deadline.hint,
        })
    }

    /// Block until the leader has ended, leaving it a zombie: its pid (the group's id)
    /// stays ours until `Child::wait` reaps it.
    fn wait_unreaped(&self) {
        let Some(pid) = Pid::from_raw(self.child.id() as i32) else {
            return;
        };
        loop {
            match rustix::process::waitid(
                rustix::process::WaitId::Pid(pid),
                rustix::process::WaitIdOptions::EXITED | rustix::process::WaitIdOptions::NOWAIT,
            ) {
                Err(rustix::io::Errno::INTR) => continue,
                _ => return,
            }
        }
    }

    /// Stop the watchdog; whether it fired. When it did, whatever the leader left in
    /// its group is killed now (the leader is not reaped yet, so the group id is
    /// still this one's).
    fn stop_watchdog(&mut self) -> bool {
        if let Some((tx, dog)) = self.dog.take() {
            drop(tx);
            let _ = dog.join();
        }
        let fired = self.fired.load(Ordering::SeqCst);
        if fired {
            signal_group(self.child.id(), Signal::KILL);
        }
        fired
    }
}

impl Drop for Bounded {
    fn drop(&mut self) {
        if self.dog.is_some() {
            // Dropped unwaited (an early return): end the group, reap the leader.
            signal_group(self.child.id(), Signal::KILL);
            self.stop_watchdog();
            let _ = self.child.wait();
        }
    }
}

fn signal_group(pid: u32, signal: Signal) {
    if let Some(pid) = Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process_group(pid, signal);
    }
}

/// A thread reading `pipe` to its end; its bytes arrive on the receiver.
fn reader(mut pipe: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx
}

/// `Command::output` under `deadline`: standard input from /dev/null, output and
/// error captured.
pub fn output(cmd: &mut Command, deadline: Deadline) -> Result<Output> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    run(cmd, deadline, None)
}

/// `output`, with `input` on the program's standard input.
pub fn output_with_input(cmd: &mut Command, deadline: Deadline, input: Vec<u8>) -> Result<Output> {
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    run(cmd, deadline, Some(input))
}

/// `Command::status` under `deadline` (standard streams as the caller set them).
pub fn status(cmd: &mut Command, deadline: Deadline) -> Result<ExitStatus> {
    run(cmd, deadline, None).map(|o| o.status)
}

fn spawn_grouped(cmd: &mut Command) -> Result<(Child, String)> {
    let command = describe(cmd);
    cmd.process_group(0);
    let child = cmd.spawn().with_context(|| format!("running `{command}`"))?;
    Ok((child, command))
}

/// Run `cmd` to its end on this thread alone: its piped output and a pidfd of the
/// leader polled together, until the deadline (then SIGTERM to the group, SIGKILL
/// after `GRACE`). No watchdog or reader threads, so a short git call costs
/// microseconds more than `Command::output`, not three threads. Where the kernel has
/// no pidfd (before 5.3), `Bounded` does it with threads.
fn run(cmd: &mut Command, deadline: Deadline, input: Option<Vec<u8>>) -> Result<Output> {
    use std::os::fd::{AsRawFd, OwnedFd};
    let (mut child, command) = spawn_grouped(cmd)?;
    let pid = child.id();
    let pidfd =
        match Pid::from_raw(pid as i32).map(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty())) {
            Some(Ok(fd)) => fd,
            _ => return Bounded::watch(child, command, deadline)?.wait_with_output(input),
        };
    let limit = limit(&deadline);
    let started = Instant::now();
    let writer = match (input, child.stdin.take()) {
        (Some(input), Some(mut stdin)) => Some(std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        })),
        _ => None,
    };
    let mut pipes: [(Option<std::fs::File>, Vec<u8>); 2] = [
        (child.stdout.take().map(|p| OwnedFd::from(p).into()), Vec::new()),
        (child.stderr.take().map(|p| OwnedFd::from(p).into()), Vec::new()),
    ];
    let mut exited = false;
    let mut term_sent: Option<Instant> = None;
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        if exited && pipes.iter().all(|(p, _)| p.is_none()) {
            break;
        }
        let now = Instant::now();
        let wake = term_sent.map_or(started + limit, |t| t + GRACE);
        if now >= wake {
            if term_sent.is_some() {
                // The group had its grace: what still holds the pipes is not waited for.
                break;
            }
            signal_group(pid, Signal::TERM);
            term_sent = Some(now);
            continue;
        }
        let mut fds: Vec<libc::pollfd> = pipes
            .iter()
            .map(|(p, _)| libc::pollfd {
                fd: p.as_ref().map_or(-1, |f| f.as_raw_fd()),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        fds.push(libc::pollfd {
            fd: if exited { -1 } else { pidfd.as_raw_fd() },
            events: libc::POLLIN,
            revents: 0,
        });
        // Rounded up, so that the wake-up is never early (no busy loop before it).
        let ms = i32::try_from((wake - now).as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
        // SAFETY: `fds` is a valid array of pollfd of the length given.
        if unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) } < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            signal_group(pid, Signal::KILL);
            let _ = child.wait();
            return Err(e).with_context(|| format!("waiting for `{command}`"));
        }
        for ((pipe, buf), fd) in pipes.iter_mut().zip(&fds) {
            if fd.revents == 0 {
                continue;
            }
            if let Some(f) = pipe {
                match f.read(&mut chunk) {
                    Ok(0) => *pipe = None,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => *pipe = None,
                }
            }
        }
        if fds[2].revents != 0 {
            exited = true;
        }
    }
    if term_sent.is_some() {
        // The leader is not reaped yet: the group id is still this one's.
        signal_group(pid, Signal::KILL);
    }
    let [(_, stdout), (_, stderr)] = pipes;
    let status = child.wait().with_context(|| format!("waiting for `{command}`"))?;
    // Not joined, as in `Bounded::wait_with_output`.
    drop(writer);
    if term_sent.is_some() {
        return Err(anyhow!(TimedOut {
            command,
            after: limit,
            hint: deadline.hint,
        }));
    }
    Ok(Output { status, stdout, stderr })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHORT: Deadline = Deadline {
        limit: Duration::from_millis(500),
        hint: "a test's hint",
    };

    fn alive(pid: i32) -> bool {
        // A zombie is not alive: it has ended, and only waits for its parent.
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')))
            .unwrap_or(false)
    }

    #[test]
    fn a_program_that_ends_in_time_gives_its_output_and_status() {
        let out = output(Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]), SHORT).unwrap();
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
        assert_eq!(out.status.code(), Some(3));
        let out = output_with_input(&mut Command::new("cat"), SHORT, b"fed".to_vec()).unwrap();
        assert_eq!(out.stdout, b"fed");
        assert!(status(Command::new("true").stdout(Stdio::null()), SHORT)
            .unwrap()
            .success());
        // More than a pipe holds, on both at once: neither side waits on the other.
        let out = output(
            Command::new("sh").args(["-c", "head -c 1000000 /dev/zero; head -c 700000 /dev/zero >&2"]),
            SHORT,
        )
        .unwrap();
        assert_eq!((out.stdout.len(), out.stderr.len()), (1_000_000, 700_000));
    }

    #[test]
    fn a_hung_program_and_its_group_are_killed_at_the_deadline() {
        let t = tempfile::tempdir().unwrap();
        let pids = t.path().join("pids");
        // The shell starts a second sleep in the background (same group), records both
        // pids, then waits: both must be gone when the call returns.
        let script = format!("sleep 30 & echo $! > {0}; echo $$ >> {0}; sleep 30", pids.display());
        let started = Instant::now();
        let err = output(Command::new("sh").args(["-c", &script]), SHORT).unwrap_err();
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(500),
            "returned after {took:?}, before the deadline"
        );
        assert!(took < Duration::from_secs(5), "took {took:?}");
        let t_out = err.downcast_ref::<TimedOut>().expect("a TimedOut");
        assert_eq!(t_out.after, Duration::from_millis(500));
        let text = err.to_string();
        assert!(
            text.starts_with(&format!(
                "`sh -c {script}` did not finish within 0.5 s, so hhlctl killed it (and every process it started)\n  hint: a test's hint"
            )),
            "{text}"
        );
        let pids: Vec<i32> = std::fs::read_to_string(&pids)
            .unwrap()
            .lines()
            .map(|l| l.trim().parse().unwrap())
            .collect();
        assert_eq!(pids.len(), 2);
        // The background sleep was reparented (to init or a subreaper) when the shell
        // died: give its reaper a bounded moment.
        let until = Instant::now() + Duration::from_secs(5);
        while pids.iter().any(|p| alive(*p)) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        for p in pids {
            assert!(!alive(p), "pid {p} of the group still runs");
        }
    }

    #[test]
    fn a_streamed_program_is_ended_at_the_deadline_which_ends_the_reading() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo first; sleep 30 & sleep 30"])
            .stdout(Stdio::piped());
        let started = Instant::now();
        let mut running = Bounded::spawn(&mut cmd, SHORT).unwrap();
        let mut text = String::new();
        running
            .child()
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        let err = running.wait().unwrap_err();
        assert_eq!(text, "first\n");
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        assert!(err.to_string().contains("did not finish within 0.5 s"), "{err}");
        // Dropped unwaited: its group is ended, the leader reaped.
        let mut cmd = Command::new("sleep");
        let running = Bounded::spawn(cmd.arg("30"), SHORT).unwrap();
        let pid = running.child.id() as i32;
        drop(running);
        assert!(!alive(pid));
    }

    #[test]
    fn the_threaded_path_gives_output_and_ends_hung_programs_too() {
        // What `run` falls back to without pidfds.
        let piped = |c: &mut Command| {
            c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        };
        let mut cat = Command::new("cat");
        piped(&mut cat);
        let out = Bounded::spawn(&mut cat, SHORT)
            .unwrap()
            .wait_with_output(Some(b"fed".to_vec()))
            .unwrap();
        assert_eq!((out.stdout.as_slice(), out.status.success()), (&b"fed"[..], true));
        let mut hung = Command::new("sh");
        hung.args(["-c", "sleep 30 & sleep 30"]);
        piped(&mut hung);
        let started = Instant::now();
        let err = Bounded::spawn(&mut hung, SHORT)
            .unwrap()
            .wait_with_output(None)
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        assert!(err.to_string().contains("did not finish within 0.5 s"), "{err}");
    }

    #[test]
    fn a_program_that_ignores_sigterm_is_killed_after_the_grace() {
        let started = Instant::now();
        let err = status(
            Command::new("sh").args(["-c", "trap '' TERM; while :; do sleep 0.05; done"]),
            SHORT,
        )
        .unwrap_err();
        let took = started.elapsed();
        assert!(took >= SHORT.limit + GRACE - Duration::from_millis(50), "{took:?}");
        assert!(took < SHORT.limit + GRACE + Duration::from_secs(3), "{took:?}");
        assert!(err.to_string().contains("did not finish within 0.5 s"), "{err}");
    }

    #[test]
    fn a_program_that_cannot_start_is_named() {
        let err = output(&mut Command::new("/nonexistent/prog"), SHORT).unwrap_err();
        assert!(
            format!("{err:#}").starts_with("running `/nonexistent/prog`: "),
            "{err:#}"
        );
    }

    #[test]
    fn the_test_override_only_shortens() {
        let l = SHORT.limit;
        assert_eq!(shortened(l, None), l);
        assert_eq!(shortened(l, Some("0.2")), Duration::from_millis(200));
        assert_eq!(shortened(l, Some("100")), l);
        for bad in ["", "x", "-1", "0", "inf", "NaN"] {
            assert_eq!(shortened(l, Some(bad)), l, "{bad}");
        }
    }
}
