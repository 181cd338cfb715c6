//! Talking to systemd over D-Bus (zbus), and reading the journal.

pub mod cgroup;
pub mod client;
pub mod dbus;
pub mod hup;
pub mod journal;
pub mod private;
pub mod workers;

pub use client::{unit_states, Systemd, UnitState};
