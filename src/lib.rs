//! hhlctl: per-developer OpenResty and Redis instances on a shared development
//! server, declared in hhl.yaml and run by systemd.
//!
//! Pure core: `config` (hhl.yaml as written) → `model` (validated instances) →
//! `render` (artifacts as data, with `templates` and `units`). Shell: `load` (reads
//! files), `fsapply` (atomic writes under an injected root), `cmd` (subcommands).

pub mod access;
pub mod artifact;
pub mod bounds;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod error;
pub mod escape;
pub mod fault;
pub mod fsapply;
pub mod git;
pub mod identity;
pub mod layout;
pub mod legacy;
pub mod load;
pub mod locate;
pub mod lua_syntax;
pub mod model;
pub mod names;
pub mod optional;
pub mod parallel;
pub mod paths;
pub mod pending;
pub mod polkit;
pub mod portholder;
pub mod push_limits;
pub mod reconcile;
pub mod redis_acl;
pub mod release;
pub mod render;
pub mod repos;
pub mod rsyslog;
pub mod secrets;
pub mod ssh;
pub mod strict;
pub mod systemd;
pub mod table;
pub mod templates;
pub mod units;
pub mod users;
pub mod validate;
pub mod web;
