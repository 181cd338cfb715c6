//! Unit state read in bulk: one listing by pattern, then a few properties per unit,
//! pipelined; memory from the cgroup files. `unit_states` goes over systemd's private
//! socket where it may (as root).

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use anyhow::Result;
use serde::Serialize;

use super::client::{call_timeout, Systemd};
use super::private::{Listed, Private};
use crate::core::systemd_types::{list_patterns, ActiveState};

/// What status shows for one unit.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct UnitState {
    pub load_state: String,
    pub active_state: ActiveState,
    pub sub_state: String,
    pub main_pid: u32,
    /// Bytes; `None` when systemd does not account memory for the unit.
    pub memory: Option<u64>,
    /// Microseconds since the epoch when the unit last became active; 0 if never.
    pub active_enter_usec: u64,
    pub restarts: u32,
}
impl Systemd {
    /// The active state of each unit (`inactive` for units systemd does not know).
    pub fn active_states(&self, units: &[String]) -> Result<HashMap<String, ActiveState>> {
        let rows = zbus::block_on(self.list(units))?;
        Ok(units.iter().map(|u| (u.clone(), active_state(&rows, u))).collect())
    }

    /// Full state of each unit, read in one pipelined batch.
    pub fn states(&self, units: &[String]) -> Result<HashMap<String, UnitState>> {
        zbus::block_on(self.states_async(units))
    }

    /// One listing for the states, then three properties per unit pipelined (see
    /// `assemble`).
    async fn states_async(&self, units: &[String]) -> Result<HashMap<String, UnitState>> {
        let rows = self.list(units).await?;
        let listed: Vec<Listed> = units
            .iter()
            .filter_map(|u| rows.get(u))
            .map(|r| Listed {
                name: r.name.clone(),
                load: r.load_state.clone(),
                active: r.active_state.clone(),
                sub: r.sub_state.clone(),
                path: r.path.to_string(),
            })
            .collect();
        let values = self.numbers(&state_props(&listed)).await;
        let (mut out, ask) = assemble(&listed, &values, &memories_of(&listed));
        let memories = self.numbers(&memory_props(&ask)).await;
        finish(&mut out, &ask, memories, units);
        Ok(out)
    }
}

/// Full state of each unit, for `status`: over systemd's private socket where hhlctl
/// may use it (as root), else through the bus. Both read the same properties.
pub fn unit_states(units: &[String]) -> Result<HashMap<String, UnitState>> {
    let timeout = call_timeout();
    let started = Instant::now();
    // A systemd that did not answer here in time would not on the bus either: say so
    // now rather than wait as long again.
    let stuck = |e: anyhow::Error| {
        e.context(format!(
            "no answer from systemd within {:.1} s: systemd is stuck or overloaded (`systemctl list-jobs` and `journalctl -b` on the host show what it is doing)",
            timeout.as_secs_f64()
        ))
    };
    match Private::connect(timeout) {
        Some(Ok(mut private)) => match states_private(&mut private, units) {
            Ok(states) => return Ok(states),
            Err(e) if started.elapsed() >= timeout => return Err(stuck(e)),
            Err(_) => {}
        },
        Some(Err(e)) => return Err(stuck(e)),
        None => {}
    }
    Systemd::connect()?.states(units)
}

fn states_private(p: &mut Private, units: &[String]) -> Result<HashMap<String, UnitState>> {
    let patterns = list_patterns(units);
    let patterns: Vec<&str> = patterns.iter().map(String::as_str).collect();
    let mut listed = p.list(&patterns)?;
    let wanted: HashSet<&str> = units.iter().map(String::as_str).collect();
    listed.retain(|l| wanted.contains(l.name.as_str()));
    // The cgroup files do not depend on systemd's answers: read them meanwhile.
    let (values, memories) = std::thread::scope(|scope| {
        let memories = scope.spawn(|| memories_of(&listed));
        let values = p.numbers(&state_props(&listed));
        (values, memories.join().unwrap_or_default())
    });
    let (mut out, ask) = assemble(&listed, &values?, &memories);
    let memories = p.numbers(&memory_props(&ask))?;
    finish(&mut out, &ask, memories, units);
    Ok(out)
}

/// What status reads of each unit besides the listing: the only per-unit reads left,
/// since memory comes from the unit's cgroup file.
const STATE_PROPS: [(&str, &str); 3] = [
    ("org.freedesktop.systemd1.Service", "MainPID"),
    ("org.freedesktop.systemd1.Service", "NRestarts"),
    ("org.freedesktop.systemd1.Unit", "ActiveEnterTimestamp"),
];

fn state_props(listed: &[Listed]) -> Vec<(&str, &'static str, &'static str)> {
    listed
        .iter()
        .flat_map(|l| {
            STATE_PROPS
                .iter()
                .map(move |(iface, prop)| (l.path.as_str(), *iface, *prop))
        })
        .collect()
}

fn memory_props(ask: &[Listed]) -> Vec<(&str, &'static str, &'static str)> {
    ask.iter()
        .map(|l| (l.path.as_str(), "org.freedesktop.systemd1.Service", "MemoryCurrent"))
        .collect()
}

/// Each listed unit's memory from its cgroup file (what systemd reads for
/// `MemoryCurrent`), `None` where there is none to read here.
fn memories_of(listed: &[Listed]) -> Vec<Option<u64>> {
    let groups = super::cgroup::MemoryGroups::read();
    listed.iter().map(|l| groups.memory(&l.name)).collect()
}

/// Each listed unit's state from its `STATE_PROPS` values (in order) and its memory
/// (`memories_of`). Also returns the units whose memory systemd must be asked for.
fn assemble(
    listed: &[Listed],
    values: &[Option<u64>],
    memories: &[Option<u64>],
) -> (HashMap<String, UnitState>, Vec<Listed>) {
    let mut out = HashMap::new();
    let mut ask = Vec::new();
    for (i, (l, vals)) in listed.iter().zip(values.chunks(STATE_PROPS.len())).enumerate() {
        let at = |i: usize| vals.get(i).copied().flatten().unwrap_or(0);
        let main_pid = u32::try_from(at(0)).unwrap_or(0);
        let memory = memories.get(i).copied().flatten();
        if memory.is_none() {
            ask.push(l.clone());
        }
        out.insert(
            l.name.clone(),
            UnitState {
                load_state: l.load.clone(),
                active_state: ActiveState::parse(&l.active),
                sub_state: l.sub.clone(),
                main_pid,
                memory,
                restarts: u32::try_from(at(1)).unwrap_or(0),
                active_enter_usec: at(2),
            },
        );
    }
    (out, ask)
}

/// Memory systemd reported for `ask` (`u64::MAX`: not accounted), and a row for every
/// unit systemd does not know.
fn finish(out: &mut HashMap<String, UnitState>, ask: &[Listed], memories: Vec<Option<u64>>, units: &[String]) {
    for (l, memory) in ask.iter().zip(memories) {
        if let Some(state) = out.get_mut(&l.name) {
            state.memory = memory.filter(|m| *m != u64::MAX);
        }
    }
    for u in units {
        out.entry(u.clone()).or_insert_with(|| UnitState {
            load_state: "not-loaded".into(),
            active_state: ActiveState::Inactive,
            sub_state: "dead".into(),
            ..Default::default()
        });
    }
}

/// A listed unit's active state; `inactive` for units systemd does not know.
pub(super) fn active_state(rows: &HashMap<String, super::dbus::UnitRow>, unit: &str) -> ActiveState {
    rows.get(unit)
        .map(|r| ActiveState::parse(&r.active_state))
        .unwrap_or_default()
}
