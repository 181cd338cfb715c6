//! The slice of systemd's D-Bus API hhlctl uses (org.freedesktop.systemd1).

use zbus::proxy;
use zbus::zvariant::OwnedObjectPath;

/// One row of `ListUnitsByPatterns` (signature `(ssssssouso)`), as systemd sends it.
#[derive(Debug, Clone, serde::Deserialize, zbus::zvariant::Type)]
pub struct UnitRow {
    pub name: String,
    pub description: String,
    pub load_state: String,
    pub active_state: String,
    pub sub_state: String,
    pub following: String,
    pub path: OwnedObjectPath,
    pub job_id: u32,
    pub job_type: String,
    pub job_path: OwnedObjectPath,
}

#[proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1",
    gen_blocking = false
)]
pub trait Manager {
    fn start_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn stop_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn restart_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn reload_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    /// `systemctl kill --kill-whom=WHOM --signal=SIGNAL UNIT`: no process is spawned.
    fn kill_unit(&self, name: &str, whom: &str, signal: i32) -> zbus::Result<()>;
    /// `systemctl reset-failed UNIT`: also clears its start rate limit.
    fn reset_failed_unit(&self, name: &str) -> zbus::Result<()>;
    /// The unit's object path, loading it (with its drop-ins) if it is not yet.
    fn load_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;
    /// `systemctl daemon-reload`.
    fn reload(&self) -> zbus::Result<()>;
    /// Queued and running jobs: id, unit, type, state, job path, unit path.
    fn list_jobs(&self) -> zbus::Result<Vec<(u32, String, String, String, OwnedObjectPath, OwnedObjectPath)>>;
    fn list_units_by_patterns(&self, states: &[&str], patterns: &[&str]) -> zbus::Result<Vec<UnitRow>>;
}
