//! One module per subcommand; each has its clap `Args` and a `run`.

pub mod apply;
pub mod assets;
pub mod control;
pub mod hook;
pub mod import;
pub mod logs;
pub mod plan;
pub mod render;
pub mod repo;
pub mod rollback;
pub mod status;
pub mod web;

use anyhow::Result;

use crate::cli::{Arguments, Command};
use crate::core::systemd_types::JobKind;

/// Run the chosen subcommand; returns the exit code.
pub fn dispatch(args: Arguments) -> Result<i32> {
    match args.command {
        Command::Render(a) => render::run(&args.config, a),
        Command::Plan(a) => plan::run(&args.config, a),
        Command::ImportLegacy(a) => import::run(a),
        Command::Apply(a) => apply::run(&args.config, a),
        Command::Status(a) => status::run(&args.config, a),
        Command::Start(s) => control::run(&args.config, JobKind::Start, s),
        Command::Stop(s) => control::run(&args.config, JobKind::Stop, s),
        Command::Restart(s) => control::run(&args.config, JobKind::Restart, s),
        Command::Reload(s) => control::run(&args.config, JobKind::Reload, s),
        Command::Logs(a) => logs::run(&args.config, a),
        Command::GenerateAssets(a) => assets::run(a),
        Command::Repo(a) => repo::run(&args.config, a),
        Command::Hook(a) => hook::run(&args.config, a),
        Command::Ssh(a) => crate::ssh::dispatch::run(&args.config, a),
        Command::Rollback(a) => rollback::run(&args.config, a),
        Command::Web(a) => web::run(&args.config, a),
    }
}
