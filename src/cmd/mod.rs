//! One module per subcommand; each has its clap `Args` and a `run`.

pub mod import;
pub mod plan;
pub mod render;

use anyhow::Result;

use crate::cli::{Arguments, Command};

/// Run the chosen subcommand; returns the exit code.
pub fn dispatch(args: Arguments) -> Result<i32> {
    match args.command {
        Command::Render(a) => render::run(&args.config, a),
        Command::Plan(a) => plan::run(&args.config, a),
        Command::ImportLegacy(a) => import::run(a),
    }
}
