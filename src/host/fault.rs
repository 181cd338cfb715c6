//! A test hook, compiled in always and inert unless asked for: with `HHL_FAULT=<step>`
//! in its environment, hhlctl kills itself with SIGKILL when it reaches that step, as
//! a crash or `kill -9` would. The crash tests (`tests/converge.rs`) use it to prove
//! that the next run finishes whatever a killed one left half done. With
//! `HHL_FAULT=<step>:hang` it stops there instead, for good, as a run stuck on
//! something would: the deadline tests (`tests/converge.rs`, `tests/git.rs`) prove that whoever
//! waits for it gives up and the next run converges.
//!
//! Steps: see [`STEPS`]. Nothing else reads the variable.

/// Every step a run can be killed at, in the order a run reaches them.
pub const STEPS: &[&str] = &[
    // apply
    "apply:checked",
    "apply:intent",
    "apply:stopped",
    "apply:reowned",
    "apply:manifest-ahead",
    "apply:temp-written",
    "apply:first-file",
    "apply:files",
    "apply:manifest",
    "apply:daemon-reload",
    "apply:jobs",
    // apply, writing a secret (the owner's, its entry copy, a Redis ACL)
    "secrets:temp-written",
    // a push's post-receive, as it starts (before it notes anything)
    "hook:post-receive",
    // rollback, deploy (hook post-receive)
    "release:extracted",
    "release:switched",
    // repo init
    "repo:created",
    // hhlctl move, once each step is recorded in its journal
    "move:stop",
    "move:export",
    "move:import",
    "move:commit",
    "move:apply",
    "move:code",
    "move:verify",
];

/// Die here (SIGKILL, no clean-up, no destructors) when `HHL_FAULT` names `step`.
pub fn point(step: &str) {
    debug_assert!(STEPS.contains(&step), "unknown fault step {step}");
    let Some(fault) = std::env::var_os("HHL_FAULT") else {
        return;
    };
    if fault == step {
        let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    }
    if fault.to_str().and_then(|f| f.strip_suffix(":hang")) == Some(step) {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}
