//! The operations the command line, ssh and the console share, written once: act on
//! instances (start, stop, restart, reload, roll back), select them, wait until they
//! answer, run the remote apply, and check a push. Each front end parses its own input,
//! calls these, and prints the outcome its own way.

pub mod act;
pub mod deploy;
pub mod forward;
pub mod hosts;
pub mod logs;
pub mod moving;
pub mod plan;
pub mod pre_receive;
pub mod push_checks;
pub mod ready;
pub mod redis_data;
pub mod remote_apply;
pub mod report;
pub mod select;
pub mod serverctrl;
pub mod status;
pub mod web_link;
