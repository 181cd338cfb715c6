//! Decide what `apply` does to running units, from what changed on disk and what
//! systemd says is running. Pure: the shell gathers the facts and carries out the plan.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use crate::core::artifact::{Change, FileChange};
use crate::core::kind::Kind;
use crate::core::model::Model;
use crate::core::pending::Pending;
use crate::core::systemd_types::{ActiveState, JobKind};
use crate::core::units::DROPIN_NAME;

/// Units to stop before files are removed, and jobs to run after the new files are
/// in place and systemd has re-read them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Actions {
    pub stop: Vec<String>,
    pub jobs: Vec<(String, JobKind)>,
    /// Whether any unit file, drop-in, slice or link changed (needs daemon-reload).
    pub daemon_reload: bool,
}

impl Actions {
    /// What these owe systemd once the files are written (stops run before): the
    /// intent record an apply stores first.
    pub fn owed(&self) -> Pending {
        Pending {
            daemon_reload: self.daemon_reload,
            jobs: self.jobs.clone(),
        }
    }
}

/// The unit a generated drop-in belongs to: `<unit_dir>/<unit>.d/50-hhl.conf` → `<unit>`.
fn unit_of_dropin(unit_dir: &Path, path: &Path) -> Option<String> {
    if path.file_name()?.to_str()? != DROPIN_NAME {
        return None;
    }
    let dir = path.parent()?;
    if dir.parent()? != unit_dir {
        return None;
    }
    dir.file_name()?.to_str()?.strip_suffix(".d").map(str::to_string)
}

/// `active` maps unit names to systemd's ActiveState.
pub fn plan(model: &Model, changes: &[FileChange], active: &HashMap<String, ActiveState>) -> Actions {
    let unit_dir = &model.paths.unit_dir;
    let touched: BTreeSet<&Path> = changes
        .iter()
        .filter(|c| c.change != Change::Unchanged)
        .map(|c| c.path.as_path())
        .collect();
    let daemon_reload = touched.iter().any(|p| p.starts_with(unit_dir));

    let stop: Vec<String> = changes
        .iter()
        .filter(|c| c.change == Change::Removed)
        .filter_map(|c| unit_of_dropin(unit_dir, &c.path))
        .collect();

    let mut jobs = Vec::new();
    for inst in &model.instances {
        let unit = inst.unit();
        let running = is_running(active, &unit);
        let dropin_changed = touched.contains(crate::core::units::dropin_path(unit_dir, inst).as_path());
        let config_changed = touched.contains(inst.config_path.as_path());
        let job = if !running {
            Some(JobKind::Start)
        } else if dropin_changed {
            Some(JobKind::Restart)
        } else if config_changed {
            // nginx re-reads its config on HUP (ports included); Redis cannot.
            Some(match inst.kind {
                Kind::Openresty => JobKind::Reload,
                Kind::Redis => JobKind::Restart,
            })
        } else {
            None
        };
        if let Some(kind) = job {
            jobs.push((unit, kind));
        }
    }
    // rsyslog reads its rules only at start.
    if touched.contains(model.paths.rsyslog_conf.as_path()) && active.get(RSYSLOG).is_some_and(ActiveState::is_active) {
        jobs.push((RSYSLOG.to_string(), JobKind::Restart));
    }
    // hhl.target active makes `systemctl stop hhl.target` (and package removal) stop
    // every instance, as they are PartOf it.
    if !model.instances.is_empty() && !active.get(TARGET).is_some_and(ActiveState::is_active) {
        jobs.push((TARGET.to_string(), JobKind::Start));
    }
    Actions {
        stop,
        jobs,
        daemon_reload,
    }
}

pub fn is_running(active: &HashMap<String, ActiveState>, unit: &str) -> bool {
    active.get(unit).is_some_and(ActiveState::is_up_or_coming)
}

/// Fold in what an interrupted run still owed systemd (its intent record, and deploys
/// whose reload never happened): the files already match, so `plan` alone would see
/// nothing to do. Units no longer in the model are left to `plan` (their stop); a
/// stopped unit is started by `plan` anyway and reads everything then.
pub fn merge(model: &Model, actions: &mut Actions, owed: &Pending, active: &HashMap<String, ActiveState>) {
    actions.daemon_reload |= owed.daemon_reload;
    let known = |u: &str| u == RSYSLOG || u == TARGET || model.instances.iter().any(|i| i.unit() == u);
    for (unit, kind) in &owed.jobs {
        if !known(unit) || actions.stop.contains(unit) {
            continue;
        }
        if let Some((_, k)) = actions.jobs.iter_mut().find(|(u, _)| u == unit) {
            // A restart also re-reads what a reload would.
            if *k == JobKind::Reload && *kind == JobKind::Restart {
                *k = JobKind::Restart;
            }
            continue;
        }
        if is_running(active, unit) && *kind != JobKind::Start {
            actions.jobs.push((unit.clone(), *kind));
        }
    }
}

/// The target every instance is part of.
pub const TARGET: &str = "hhl.target";
/// The syslog daemon that writes the per-developer log files.
pub const RSYSLOG: &str = "rsyslog.service";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::{self, Source};
    use crate::core::model::{self, Flavor};

    fn model() -> Model {
        let text = "developers: [dev1]\nservers:\n  s:\n    template: builtin:socketserver\n    values:\n      master: {port: 1080}\n      dev1: {port: 1081}\nredis:\n  template: builtin:redis\n  values:\n    master: {port: 6379}\n    dev1: {port: 6381}\n";
        let src = Source {
            path: "/etc/hhl/hhl.yaml".into(),
            text: text.into(),
        };
        model::build(&config::parse(&src.path, text).unwrap(), &src, Flavor::Debian).unwrap()
    }

    fn ch(path: &str, change: Change) -> FileChange {
        FileChange {
            path: path.into(),
            change,
            dir: false,
        }
    }

    fn all_active(m: &Model) -> HashMap<String, ActiveState> {
        m.instances
            .iter()
            .map(|i| i.unit())
            .chain([TARGET.to_string()])
            .map(|u| (u, ActiveState::Active))
            .collect()
    }

    #[test]
    fn the_target_is_started_when_inactive() {
        let m = model();
        let mut active = all_active(&m);
        active.remove(TARGET);
        assert_eq!(plan(&m, &[], &active).jobs, [(TARGET.to_string(), JobKind::Start)]);
    }

    #[test]
    fn nothing_changed_and_all_running_means_nothing_to_do() {
        let m = model();
        let a = plan(
            &m,
            &[ch("/opt/hhl/s/dev1/conf/nginx.conf", Change::Unchanged)],
            &all_active(&m),
        );
        assert_eq!(a, Actions::default());
    }

    #[test]
    fn stopped_units_are_started() {
        let m = model();
        let mut active = all_active(&m);
        active.insert("redis@6381.service".into(), ActiveState::Failed);
        let a = plan(&m, &[], &active);
        assert_eq!(a.jobs, [("redis@6381.service".to_string(), JobKind::Start)]);
    }

    #[test]
    fn config_change_reloads_nginx_and_restarts_redis() {
        let m = model();
        let changes = [
            ch("/opt/hhl/s/dev1/conf/nginx.conf", Change::Changed),
            ch("/opt/redis/etc/6379.conf", Change::Changed),
        ];
        let a = plan(&m, &changes, &all_active(&m));
        assert_eq!(
            a.jobs,
            [
                ("openresty@s-dev1.service".to_string(), JobKind::Reload),
                ("redis@6379.service".to_string(), JobKind::Restart)
            ]
        );
        assert!(!a.daemon_reload);
    }

    #[test]
    fn owed_jobs_are_merged_once_and_never_for_unknown_or_stopped_units() {
        let m = model();
        let mut active = all_active(&m);
        active.insert("redis@6381.service".into(), ActiveState::Failed);
        active.insert(RSYSLOG.into(), ActiveState::Active);
        let changes = [ch("/opt/hhl/s/dev1/conf/nginx.conf", Change::Changed)];
        let mut a = plan(&m, &changes, &active);
        let owed = Pending {
            daemon_reload: true,
            jobs: vec![
                ("openresty@s-dev1.service".into(), JobKind::Restart),
                ("redis@6379.service".into(), JobKind::Restart),
                ("redis@6381.service".into(), JobKind::Restart),
                ("redis@9999.service".into(), JobKind::Restart),
                (RSYSLOG.into(), JobKind::Restart),
            ],
        };
        merge(&m, &mut a, &owed, &active);
        assert!(a.daemon_reload);
        assert_eq!(
            a.jobs,
            [
                ("openresty@s-dev1.service".to_string(), JobKind::Restart),
                ("redis@6381.service".to_string(), JobKind::Start),
                ("redis@6379.service".to_string(), JobKind::Restart),
                (RSYSLOG.to_string(), JobKind::Restart),
            ]
        );
    }

    #[test]
    fn dropin_change_restarts_and_removed_dropin_stops() {
        let m = model();
        let changes = [
            ch(
                "/etc/systemd/system/openresty@s-master.service.d/50-hhl.conf",
                Change::Changed,
            ),
            ch("/etc/systemd/system/redis@6382.service.d/50-hhl.conf", Change::Removed),
            ch(
                "/etc/systemd/system/hhl.target.wants/redis@6382.service",
                Change::Removed,
            ),
        ];
        let a = plan(&m, &changes, &all_active(&m));
        assert_eq!(a.stop, ["redis@6382.service"]);
        assert_eq!(a.jobs, [("openresty@s-master.service".to_string(), JobKind::Restart)]);
        assert!(a.daemon_reload);
    }
}
