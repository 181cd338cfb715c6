//! Talking to systemd over D-Bus (zbus), and reading the journal.

pub mod cgroup;
pub mod client;
pub mod dbus;
pub mod journal;
pub mod workers;

pub use client::{JobKind, JobOutcome, Systemd, UnitState};
