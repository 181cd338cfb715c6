//! The one ssh entry point. Every identity's key in hhl.yaml lands in the entry
//! account's authorized_keys with a forced command, `hhlctl ssh <identity>`; sshd
//! hands it what the client asked for in SSH_ORIGINAL_COMMAND. `command` parses that
//! (pure), `authorized_keys` (in the core: pure) writes the keys, `dispatch` authorizes each
//! request with `access::may` and runs it.

pub use crate::core::authorized_keys;
pub mod command;
pub mod dispatch;

/// The variable `hhlctl ssh` sets for the git hooks it starts: who is pushing. sshd
/// passes no client environment through a forced command (`restrict`, and
/// PermitUserEnvironment is off by default), so only hhlctl sets it.
pub const IDENTITY_ENV: &str = "HHL_IDENTITY";
