//! The one ssh entry point. Every identity's key in hhl.yaml lands in the entry
//! account's authorized_keys with a forced command, `hhlctl ssh <identity>`; sshd
//! hands it what the client asked for in SSH_ORIGINAL_COMMAND. `command` parses that
//! (pure), `authorized_keys` (in the core: pure) writes the keys, `dispatch` authorizes each
//! request with `access::may` and runs it.

pub use crate::core::authorized_keys;
pub mod command;
pub mod dispatch;
pub mod peer;
pub mod route;
