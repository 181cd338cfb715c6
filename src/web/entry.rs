//! Journal entries as the log page shows them. Pure: parsing `journalctl -o json`
//! lines, levels, filters, and who may see which unit.

use serde::Serialize;

use crate::core::model::Model;

pub use crate::core::log_entry::{level_of, parse, Entry, Filter, LEVELS};

/// An instance the page can show.
#[derive(Debug, Clone, Serialize)]
pub struct Visible {
    pub instance: String,
    pub unit: String,
    pub developer: String,
}

/// The instances unix user `user` may read: their own; admins all.
pub fn visible(model: &Model, user: &str) -> Vec<Visible> {
    let admin = model.access.admins.iter().any(|a| a == user);
    model
        .instances
        .iter()
        .filter(|i| admin || i.developer == user)
        .map(|i| Visible {
            instance: i.syslog_identifier(),
            unit: i.unit(),
            developer: i.developer.clone(),
        })
        .collect()
}
