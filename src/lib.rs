//! hhlctl: per-developer OpenResty and Redis instances on a shared development
//! server, declared in hhl.yaml and run by systemd.
//!
//! - `core`: pure: `config` (hhl.yaml as written) → `model` (validated instances) →
//!   `render` (artifacts as data), and `access` (who may do what).
//! - `host`: the shell around it: files, users, releases, repositories, systemd.
//! - `cmd`: the subcommands (`cli` parses them); `ssh`: the forced-command entry point
//!   developers reach with their keys; `web`: the log page and console.
//!
//! Each module of `core` and `host` is re-exported at the crate root, so
//! `crate::model` and `crate::fsapply` name the same thing wherever they are used.

pub mod cli;
pub mod cmd;
pub mod core;
pub mod host;
pub mod ssh;
pub mod web;

pub use crate::core::access;
pub use crate::core::artifact;
pub use crate::core::authorized_keys;
pub use crate::core::bounds;
pub use crate::core::config;
pub use crate::core::error;
pub use crate::core::escape;
pub use crate::core::identity;
pub use crate::core::legacy;
pub use crate::core::locate;
pub use crate::core::model;
pub use crate::core::names;
pub use crate::core::paths;
pub use crate::core::polkit;
pub use crate::core::push_limits;
pub use crate::core::reconcile;
pub use crate::core::redis_acl;
pub use crate::core::render;
pub use crate::core::rsyslog;
pub use crate::core::strict;
pub use crate::core::table;
pub use crate::core::templates;
pub use crate::core::units;
pub use crate::host::fault;
pub use crate::host::fsapply;
pub use crate::host::git;
pub use crate::host::layout;
pub use crate::host::listening;
pub use crate::host::load;
pub use crate::host::lua_syntax;
pub use crate::host::optional;
pub use crate::host::overview;
pub use crate::host::parallel;
pub use crate::host::pending;
pub use crate::host::portholder;
pub use crate::host::release;
pub use crate::host::release_info;
pub use crate::host::repos;
pub use crate::host::secrets;
pub use crate::host::systemd;
pub use crate::host::users;
pub use crate::host::validate;
