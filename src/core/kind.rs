//! The two kinds of instance hhlctl runs. Its own module because both the model and
//! systemd's unit names (`core::systemd_types`) are built on it.

use serde::Serialize;

/// An OpenResty (nginx + Lua) logic server, or an owner's Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Openresty,
    Redis,
}
