//! hhlctl: per-developer OpenResty and Redis instances on a shared development
//! server, declared in hhl.yaml and run by systemd.
//!
//! The layers, each importing only those above it in this list (`tests/layers.rs`
//! holds the rule; `docs/internals/design.md` says where new code goes):
//! - `core`: pure: `config` (hhl.yaml as written) → `model` (validated instances) →
//!   `render` (artifacts as data), `access` (who may do what), the package's own names
//!   and systemd's words as types. No I/O.
//! - `host`: this machine: files, users, releases, repositories, git, systemd, journal.
//! - `ops`: the operations the command line, ssh and the console share.
//! - `ssh` (the forced-command entry point developers reach with their keys) and `web`
//!   (the log page and console): the servers; neither imports the other.
//! - `cmd` (one module per subcommand) and `cli` (their parser): the command line,
//!   which may start either server.

pub mod cli;
pub mod cmd;
pub mod core;
pub mod host;
pub mod ops;
pub mod ssh;
pub mod web;
