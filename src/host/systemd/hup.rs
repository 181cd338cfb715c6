//! A deploy's reload without a reload job. `systemctl reload` runs the unit's
//! ExecReload (`nginx -t`, then HUP) in the unit's sandbox, whose set-up alone costs
//! ~80 ms here; a deploy changes code, not the config (only `hhlctl apply` writes
//! that, and tests it first). So the deploy asks systemd to send SIGHUP to the unit's
//! main process (`KillUnit`: nothing is spawned) and then watches nginx do the
//! reload: the master re-reads its config itself and, if that fails, logs why and keeps
//! its old workers, so a broken config still never reaches the running master. The
//! reload happened once a new worker runs under the master; a master that starts none
//! within the limit did not take the reload, and the caller reports it failed. Then,
//! as after a reload job, wait (bounded) until every worker from before has stopped
//! accepting (see `workers`), so that the push returns when new code answers. Most of
//! a reload is nginx's: new workers ~25 ms after the HUP, then a fixed 100 ms pause
//! (`ngx_msleep(100)` in the master) before it tells the old ones to quit.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Result;
use futures_util::{stream, StreamExt};

use super::client::{manager_proxy, Systemd};
use super::workers;
use crate::core::systemd_types::{JobKind, JobOutcome};

/// How long a master may take to re-read its config and start new workers.
pub const HUP_WAIT: Duration = Duration::from_secs(10);

/// What became of the HUPs.
pub struct Hupped {
    /// One per unit signalled: `reload_ok` is false for a master that kept its old workers.
    pub outcomes: Vec<JobOutcome>,
    /// Units systemd did not signal (not running, or the caller may not: polkit),
    /// with why; the caller reloads those with a job instead.
    pub not_sent: Vec<(String, String)>,
}

impl Systemd {
    /// SIGHUP to the master of each of the nginx `units` and wait, at most `limit`,
    /// until each has new workers and none of its old ones accepts.
    pub fn hup_nginx(&self, units: &[String], limit: Duration) -> Result<Hupped> {
        let states = self.states(units)?;
        let mut masters: Vec<(String, u32)> = Vec::new();
        let mut not_sent: Vec<(String, String)> = Vec::new();
        for unit in units {
            match states.get(unit) {
                Some(s) if s.active_state.is_active() && s.main_pid != 0 => masters.push((unit.clone(), s.main_pid)),
                _ => not_sent.push((unit.clone(), "not running".into())),
            }
        }
        let pids: Vec<u32> = masters.iter().map(|(_, p)| *p).collect();
        let old = workers::children(&pids);
        let sent: Vec<Option<String>> = zbus::block_on(async {
            let manager = match manager_proxy(self.connection()).await {
                Ok(m) => m,
                Err(e) => return vec![Some(e.to_string()); masters.len()],
            };
            let calls = masters.iter().map(|(unit, _)| {
                let manager = &manager;
                async move {
                    manager
                        .kill_unit(unit, "main", libc::SIGHUP)
                        .await
                        .err()
                        .map(|e| e.to_string())
                }
            });
            stream::iter(calls).buffered(64).collect().await
        });
        let mut waiting: Vec<(String, u32)> = Vec::new();
        for ((unit, pid), err) in masters.into_iter().zip(sent) {
            match err {
                None => waiting.push((unit, pid)),
                Some(e) => not_sent.push((unit, e)),
            }
        }
        let signalled: Vec<String> = waiting.iter().map(|(u, _)| u.clone()).collect();
        let mut done: HashMap<String, bool> = HashMap::new();
        let deadline = Instant::now() + limit;
        loop {
            let now = workers::children(&waiting.iter().map(|(_, p)| *p).collect::<Vec<_>>());
            waiting.retain(|(unit, master)| {
                let before = old.get(master).map(Vec::as_slice).unwrap_or_default();
                let reloaded = now.get(master).is_some_and(|c| c.iter().any(|p| !before.contains(p)));
                if reloaded {
                    done.insert(unit.clone(), true);
                }
                !reloaded
            });
            if waiting.is_empty() || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        // Old workers busy in a long handler take the QUIT late: warned, as after a job.
        let old_of_reloaded: Vec<u32> = masters_of(&signalled, &states)
            .filter(|(u, _)| done.contains_key(*u))
            .flat_map(|(_, m)| old.get(&m).cloned().unwrap_or_default())
            .collect();
        let left = workers::wait_stopped_accepting(&old_of_reloaded, Duration::from_secs(5));
        if !left.is_empty() {
            eprintln!("warning: nginx worker(s) {left:?} still accept 5 s after the reload");
        }
        let outcomes = signalled
            .into_iter()
            .map(|unit| {
                let ok = done.contains_key(&unit);
                JobOutcome {
                    active_state: states.get(&unit).map(|s| s.active_state.clone()).unwrap_or_default(),
                    unit,
                    kind: JobKind::Reload,
                    reload_ok: Some(ok),
                    killed: false,
                }
            })
            .collect();
        Ok(Hupped { outcomes, not_sent })
    }
}

/// Each of `units` with its master's pid as read before the signal.
fn masters_of<'u>(
    units: &'u [String],
    states: &'u HashMap<String, super::states::UnitState>,
) -> impl Iterator<Item = (&'u String, u32)> + 'u {
    units.iter().filter_map(move |u| Some((u, states.get(u)?.main_pid)))
}
