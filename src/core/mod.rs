//! The pure core: hhl.yaml as written (`config`) → validated instances (`model`) →
//! artifacts as data (`render`, with `templates`, `units`, `rsyslog`, `polkit`), and
//! the one authorization function (`access`). No file, process or network I/O here:
//! everything is a function of its arguments, so it is tested without a host.

pub mod access;
pub mod artifact;
pub mod authorized_keys;
pub mod bounds;
pub mod config;
pub mod encoding;
pub mod error;
pub mod escape;
pub mod example;
pub mod identity;
pub mod kind;
pub mod layout;
pub mod legacy;
pub mod locate;
pub mod log_entry;
pub mod migrate;
pub mod model;
pub mod moving;
pub mod names;
pub mod package;
pub mod paths;
pub mod peers;
pub mod pending;
pub mod personal_help;
pub mod polkit;
pub mod push_limits;
pub mod reconcile;
pub mod redis_acl;
pub mod redis_bundle;
pub mod redis_cmd;
pub mod render;
pub mod repos;
pub mod rsyslog;
pub mod smoke;
pub mod strict;
pub mod systemd_types;
pub mod table;
pub mod templates;
pub mod units;
pub mod version;
pub mod voice;
