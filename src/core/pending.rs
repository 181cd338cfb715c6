//! The intent record: what an `apply` owes systemd for the files it is about to write.
//! It is stored (atomically, in `state_dir`) before any file changes and removed only
//! once those jobs succeeded, so an apply killed in between leaves it behind and the
//! next apply runs those jobs too, even though the files on disk already match. Plain
//! text, one job a line, for a human to read. Pure: the shell reads and writes it.

use std::path::Path;

use crate::core::systemd_types::JobKind;

pub const FILE: &str = "apply.pending";

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pending {
    pub daemon_reload: bool,
    pub jobs: Vec<(String, JobKind)>,
}

impl Pending {
    pub fn is_empty(&self) -> bool {
        !self.daemon_reload && self.jobs.is_empty()
    }

    pub fn to_text(&self) -> String {
        let mut s = String::from(
            "# Jobs hhlctl apply owes systemd for files it wrote; the next apply runs them if this one was killed.\n",
        );
        if self.daemon_reload {
            s += "daemon-reload\n";
        }
        for (unit, kind) in &self.jobs {
            s += &format!("{} {unit}\n", kind.command());
        }
        s
    }

    /// Parse the record; `Err((line number, what is wrong))` for a line hhlctl did not write.
    pub fn parse(text: &str) -> Result<Pending, (usize, String)> {
        let mut p = Pending::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line == "daemon-reload" {
                p.daemon_reload = true;
                continue;
            }
            let kind = match line.split_once(' ') {
                Some(("start", u)) => Some((u, JobKind::Start)),
                Some(("restart", u)) => Some((u, JobKind::Restart)),
                Some(("reload", u)) => Some((u, JobKind::Reload)),
                _ => None,
            };
            match kind {
                Some((unit, kind)) if is_unit_name(unit) => p.jobs.push((unit.to_string(), kind)),
                _ => return Err((n + 1, format!("`{line}` is not a job hhlctl records"))),
            }
        }
        Ok(p)
    }
}

fn is_unit_name(s: &str) -> bool {
    !s.is_empty()
        && Path::new(s).file_name().is_some_and(|n| n == s)
        && s.chars().all(|c| c.is_ascii_alphanumeric() || "@-_.:".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusal() {
        let p = Pending {
            daemon_reload: true,
            jobs: vec![
                ("openresty@s-dev1.service".into(), JobKind::Reload),
                ("redis@6381.service".into(), JobKind::Restart),
                ("hhl.target".into(), JobKind::Start),
            ],
        };
        assert_eq!(Pending::parse(&p.to_text()), Ok(p));
        assert_eq!(Pending::parse("# only a comment\n\n"), Ok(Pending::default()));
        assert_eq!(
            Pending::parse("daemon-reload\nstop x.service\n"),
            Err((2, "`stop x.service` is not a job hhlctl records".into()))
        );
        assert!(Pending::parse("restart ../../etc\n").is_err());
    }
}
