//! One module per subcommand; each has its clap `Args` and a `run`.

pub mod apply;
pub mod assets;
pub mod control;
pub mod hook;
pub mod hosts;
pub mod import;
pub mod logs;
pub mod moving;
pub mod plan;
pub mod redis_data;
pub mod render;
pub mod repo;
pub mod rollback;
pub mod status;
pub mod web;
