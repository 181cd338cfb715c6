//! systemd's vocabulary as types: what a job does to a unit. The host side speaks
//! these words to systemd; the core plans with them.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    Start,
    Stop,
    Restart,
    Reload,
}

impl JobKind {
    /// The command word: `restart`.
    pub fn command(self) -> &'static str {
        match self {
            JobKind::Start => "start",
            JobKind::Stop => "stop",
            JobKind::Restart => "restart",
            JobKind::Reload => "reload",
        }
    }
    pub fn verb(self) -> &'static str {
        match self {
            JobKind::Start => "starting",
            JobKind::Stop => "stopping",
            JobKind::Restart => "restarting",
            JobKind::Reload => "reloading",
        }
    }
    pub fn past(self) -> &'static str {
        match self {
            JobKind::Start => "started",
            JobKind::Stop => "stopped",
            JobKind::Restart => "restarted",
            JobKind::Reload => "reloaded",
        }
    }
}
