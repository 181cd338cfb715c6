//! Talking to systemd over D-Bus (zbus), and reading the journal.

pub mod cgroup;
pub mod client;
pub mod dbus;
pub mod hup;
pub mod journal;
pub mod private;
pub mod workers;

pub use crate::core::systemd_types::JobKind;
pub use client::{unit_states, JobOutcome, Systemd, UnitState};
