//! Who reads this process's messages, from its environment: a session of the entry
//! account (`hhlctl ssh`, and the git hooks it starts) speaks to an identity with a
//! key, so hints are `ssh <entry>@<host> …`, `host` being the address the client
//! connected to (`SSH_CONNECTION`); anyone else is at the server's shell.

use crate::core::model::Model;
use crate::core::package::IDENTITY_ENV;
use crate::core::voice::Voice;

pub fn voice(model: &Model) -> Voice {
    let over_ssh = std::env::var_os(IDENTITY_ENV).is_some() || std::env::var_os("SSH_ORIGINAL_COMMAND").is_some();
    if !over_ssh {
        return Voice::Shell;
    }
    let conn = std::env::var("SSH_CONNECTION").unwrap_or_default();
    Voice::ssh(&model.access.entry, Voice::host_of_connection(&conn))
}
