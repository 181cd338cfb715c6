//! How the reader of a message runs hhl's commands, so that every hint names a command
//! in the exact form they type: admins at the server's shell type `hhlctl rollback …`;
//! developers have no shell, only their key, and type `ssh hhl@server rollback …`
//! (push output, `ssh` commands and the console all speak to them this way). Pure.

/// Who reads: someone at the server's shell, or an identity behind the entry account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Voice {
    /// `hhlctl <command>`.
    Shell,
    /// `ssh <login> <command>`, `login` being `<entry>@<host>` as the client reached us.
    Ssh { login: String },
}

/// What a host is called when nothing says how the client reached it.
pub const SOME_SERVER: &str = "<server>";

impl Voice {
    /// The ssh voice for entry account `entry` reached at `host` (`None`: unknown). A
    /// host that is not a plain name or address is not repeated: `<server>` instead.
    pub fn ssh(entry: &str, host: Option<&str>) -> Voice {
        let host = host
            .filter(|h| {
                !h.is_empty() && h.len() <= 253 && h.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:_".contains(&b))
            })
            .unwrap_or(SOME_SERVER);
        Voice::Ssh {
            login: format!("{entry}@{host}"),
        }
    }

    /// The command line to type for `args` (`rollback socketserver-dev1`), unquoted.
    pub fn cmd(&self, args: &str) -> String {
        match self {
            Voice::Shell => format!("hhlctl {args}"),
            Voice::Ssh { login } => format!("ssh {login} {args}"),
        }
    }

    /// The git remote URL of repository `repo`, for clone hints (ssh only).
    pub fn remote(&self, repo: &str) -> Option<String> {
        match self {
            Voice::Shell => None,
            Voice::Ssh { login } => Some(format!("{login}:{repo}")),
        }
    }

    /// `SSH_CONNECTION` (`client-ip client-port server-ip server-port`) → the address
    /// the client connected to, which is what it can type again.
    pub fn host_of_connection(conn: &str) -> Option<&str> {
        conn.split_whitespace().nth(2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reader_gets_the_form_they_type() {
        assert_eq!(
            Voice::Shell.cmd("rollback socketserver-dev1"),
            "hhlctl rollback socketserver-dev1"
        );
        let v = Voice::ssh("hhl", Some("10.0.0.5"));
        assert_eq!(
            v.cmd("rollback socketserver-dev1"),
            "ssh hhl@10.0.0.5 rollback socketserver-dev1"
        );
        assert_eq!(v.remote("socketserver").unwrap(), "hhl@10.0.0.5:socketserver");
        assert_eq!(Voice::ssh("hhl", None).cmd("help"), "ssh hhl@<server> help");
        assert_eq!(Voice::ssh("hhl", Some("a b;rm")).cmd("help"), "ssh hhl@<server> help");
        assert_eq!(Voice::ssh("hhl", Some("fe80::1")).cmd("help"), "ssh hhl@fe80::1 help");
        assert_eq!(
            Voice::host_of_connection("10.0.0.9 51234 10.0.0.5 22"),
            Some("10.0.0.5")
        );
        assert_eq!(Voice::host_of_connection(""), None);
    }
}
