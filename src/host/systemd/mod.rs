//! Talking to systemd over D-Bus (zbus), and reading the journal.

pub mod cgroup;
pub mod client;
pub mod dbus;
pub mod hup;
pub mod jobs;
pub mod journal;
pub mod private;
pub mod states;
pub mod workers;

pub use client::Systemd;
pub use states::{unit_states, UnitState};
