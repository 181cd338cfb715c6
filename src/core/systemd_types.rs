//! systemd's vocabulary as types: a unit's active state, which of hhl's templates a
//! unit name belongs to, what a job does and how it ended. The host side parses
//! systemd's strings into these once (`ActiveState::parse`, `UnitName::parse`); every
//! other layer matches on them, exhaustively.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::core::kind::Kind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    Start,
    Stop,
    Restart,
    Reload,
}

impl JobKind {
    /// The command word: `restart`.
    pub fn command(self) -> &'static str {
        match self {
            JobKind::Start => "start",
            JobKind::Stop => "stop",
            JobKind::Restart => "restart",
            JobKind::Reload => "reload",
        }
    }
    pub fn verb(self) -> &'static str {
        match self {
            JobKind::Start => "starting",
            JobKind::Stop => "stopping",
            JobKind::Restart => "restarting",
            JobKind::Reload => "reloading",
        }
    }
    pub fn past(self) -> &'static str {
        match self {
            JobKind::Start => "started",
            JobKind::Stop => "stopped",
            JobKind::Restart => "restarted",
            JobKind::Reload => "reloaded",
        }
    }
}

/// A unit's `ActiveState` (systemd.unit(5), "ActiveState").
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ActiveState {
    Active,
    Reloading,
    #[default]
    Inactive,
    Failed,
    Activating,
    Deactivating,
    Maintenance,
    Refreshing,
    /// A word this build does not know (a newer systemd), kept as systemd said it.
    Other(String),
}

impl ActiveState {
    pub fn parse(word: &str) -> ActiveState {
        match word {
            "active" => ActiveState::Active,
            "reloading" => ActiveState::Reloading,
            "inactive" => ActiveState::Inactive,
            "failed" => ActiveState::Failed,
            "activating" => ActiveState::Activating,
            "deactivating" => ActiveState::Deactivating,
            "maintenance" => ActiveState::Maintenance,
            "refreshing" => ActiveState::Refreshing,
            other => ActiveState::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            ActiveState::Active => "active",
            ActiveState::Reloading => "reloading",
            ActiveState::Inactive => "inactive",
            ActiveState::Failed => "failed",
            ActiveState::Activating => "activating",
            ActiveState::Deactivating => "deactivating",
            ActiveState::Maintenance => "maintenance",
            ActiveState::Refreshing => "refreshing",
            ActiveState::Other(s) => s,
        }
    }

    /// Up and serving: only `active` (a reloading or starting unit is not yet).
    pub fn is_active(&self) -> bool {
        matches!(self, ActiveState::Active)
    }

    /// Running or on its way there: a restart, not a start, brings new files in.
    pub fn is_up_or_coming(&self) -> bool {
        matches!(
            self,
            ActiveState::Active | ActiveState::Reloading | ActiveState::Activating
        )
    }
}

impl fmt::Display for ActiveState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Serialized as systemd's word, so `--json` and the console read as before.
impl Serialize for ActiveState {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for ActiveState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let word = String::deserialize(d)?;
        Ok(ActiveState::parse(&word))
    }
}

/// A unit name as hhl reads it: an instance of one of its templates, or any other unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitName<'a> {
    /// `openresty@socketserver-dev1.service` or `redis@6381.service`: the kind and the
    /// instance string.
    Instance(Kind, &'a str),
    Other(&'a str),
}

impl<'a> UnitName<'a> {
    pub fn parse(unit: &'a str) -> UnitName<'a> {
        let instance = |prefix: &str| {
            unit.strip_prefix(prefix)?
                .strip_suffix(".service")
                .filter(|i| !i.is_empty())
        };
        if let Some(i) = instance("openresty@") {
            UnitName::Instance(Kind::Openresty, i)
        } else if let Some(i) = instance("redis@") {
            UnitName::Instance(Kind::Redis, i)
        } else {
            UnitName::Other(unit)
        }
    }

    /// The instance kind, for a unit of hhl's templates.
    pub fn kind(&self) -> Option<Kind> {
        match self {
            UnitName::Instance(k, _) => Some(*k),
            UnitName::Other(_) => None,
        }
    }
}

/// The template unit of each instance kind, and its instances' names.
pub fn template_unit(kind: Kind) -> &'static str {
    match kind {
        Kind::Openresty => "openresty@.service",
        Kind::Redis => "redis@.service",
    }
}

/// `openresty@<instance>.service`, `redis@<instance>.service`.
pub fn instance_unit(kind: Kind, instance: &str) -> String {
    match kind {
        Kind::Openresty => format!("openresty@{instance}.service"),
        Kind::Redis => format!("redis@{instance}.service"),
    }
}

/// A finished job and the unit's state afterwards.
#[derive(Debug, Clone)]
pub struct JobOutcome {
    pub unit: String,
    pub kind: JobKind,
    pub active_state: ActiveState,
    /// For a reload, whether the service's `ReloadResult` was `success`: a failed
    /// reload leaves the unit active, so its state alone cannot tell.
    pub reload_ok: Option<bool>,
    /// A stop (or a restart's stop) that outlived TimeoutStopSec and was finished by
    /// systemd with SIGKILL: not a clean stop, whatever the unit's state now.
    pub killed: bool,
}

impl JobOutcome {
    /// Whether the unit reached the state the job aimed at.
    pub fn ok(&self) -> bool {
        if self.killed {
            return false;
        }
        let active = self.active_state.is_active();
        match self.kind {
            JobKind::Stop => !active,
            JobKind::Reload => active && self.reload_ok == Some(true),
            JobKind::Start | JobKind::Restart => active,
        }
    }

    /// A oneshot's start (hhl-apply, hhl-plan) that ran to its end: the unit is
    /// inactive again, which `ok` would call a failed start.
    pub fn oneshot_ok(&self) -> bool {
        self.ok() || (self.kind == JobKind::Start && !self.killed && self.active_state == ActiveState::Inactive)
    }

    /// `done` or `failed`, as systemctl words a job's result.
    pub fn result(&self) -> &'static str {
        if self.killed {
            "the stop timed out and systemd finished it with SIGKILL"
        } else if self.ok() {
            "done"
        } else {
            "failed"
        }
    }
}

/// The patterns to list `units` by: one `template@*` per template the units are
/// instances of, the name itself for any other unit. systemd matches every loaded unit
/// against every pattern, so 404 names cost it 404 times what two globs do; the
/// caller keeps only the units it asked for. (Unit names cannot hold `*`, `?` or `[`:
/// a name is its own pattern.)
pub fn list_patterns(units: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for u in units {
        let p = match u.split_once('@') {
            Some((template, _)) => format!("{template}@*"),
            None => u.clone(),
        };
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_listed_by_one_glob_per_template() {
        let units: Vec<String> = [
            "openresty@socketserver-dev1.service",
            "redis@6380.service",
            "openresty@dtserver-dev2.service",
            "hhl-web.service",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(list_patterns(&units), ["openresty@*", "redis@*", "hhl-web.service"]);
        assert!(list_patterns(&[]).is_empty());
    }

    fn outcome(kind: JobKind, state: &str, reload_ok: Option<bool>) -> JobOutcome {
        JobOutcome {
            unit: "openresty@socketserver-dev1.service".into(),
            kind,
            active_state: ActiveState::parse(state),
            reload_ok,
            killed: false,
        }
    }

    #[test]
    fn outcomes_judge_the_state_the_job_aimed_at() {
        assert!(outcome(JobKind::Start, "active", None).ok());
        assert!(!outcome(JobKind::Restart, "failed", None).ok());
        assert!(outcome(JobKind::Stop, "inactive", None).ok());
        assert!(!outcome(JobKind::Stop, "active", None).ok());
        assert!(outcome(JobKind::Reload, "active", Some(true)).ok());
        let failed = outcome(JobKind::Reload, "active", Some(false));
        assert!(!failed.ok());
        assert_eq!(failed.result(), "failed");
        assert!(!outcome(JobKind::Reload, "active", None).ok());
        let killed = JobOutcome {
            killed: true,
            ..outcome(JobKind::Restart, "active", None)
        };
        assert!(!killed.ok());
        assert_eq!(
            killed.result(),
            "the stop timed out and systemd finished it with SIGKILL"
        );
        assert!(outcome(JobKind::Start, "inactive", None).oneshot_ok());
        assert!(!outcome(JobKind::Start, "failed", None).oneshot_ok());
    }

    #[test]
    fn words_round_trip_and_unknown_ones_are_kept() {
        for w in [
            "active",
            "reloading",
            "inactive",
            "failed",
            "activating",
            "deactivating",
            "maintenance",
            "refreshing",
        ] {
            assert_eq!(ActiveState::parse(w).as_str(), w);
        }
        assert_eq!(ActiveState::parse("napping"), ActiveState::Other("napping".into()));
        assert_eq!(serde_json::to_string(&ActiveState::Failed).unwrap(), "\"failed\"");
    }

    #[test]
    fn unit_names_say_their_template() {
        assert_eq!(
            UnitName::parse("openresty@socketserver-dev1.service"),
            UnitName::Instance(Kind::Openresty, "socketserver-dev1")
        );
        assert_eq!(
            UnitName::parse("redis@6381.service"),
            UnitName::Instance(Kind::Redis, "6381")
        );
        assert_eq!(UnitName::parse("redis@.service").kind(), None);
        assert_eq!(UnitName::parse("openresty@x.socket").kind(), None);
        assert_eq!(UnitName::parse("hhl-web.service"), UnitName::Other("hhl-web.service"));
        assert_eq!(instance_unit(Kind::Redis, "6381"), "redis@6381.service");
    }
}
