//! An instance's health, read the one way `hhlctl status`, `ssh <entry> status` and
//! the console all read it: systemd's state of its unit (one bulk read) and, at the
//! same time, whether its port answers. Healthy means active and answering.

use std::time::{Duration, Instant};

use anyhow::Result;

use crate::core::model::Instance;
use crate::host::systemd::UnitState;

/// One instance's health.
#[derive(Debug, Clone, Default)]
pub struct Health {
    pub state: UnitState,
    /// Answers on its port (only an active unit counts as answering).
    pub port_answers: bool,
    pub healthy: bool,
}

/// The health of each of `instances`, in their order, and how long the two reads took
/// (from the start of this call: `HHL_TIMES` shows where status's time goes).
pub struct Read {
    pub health: Vec<Health>,
    pub states_at: Duration,
    pub ports_at: Duration,
}

pub fn read(instances: &[&Instance]) -> Result<Read> {
    let t0 = Instant::now();
    let units: Vec<String> = instances.iter().map(|i| i.unit()).collect();
    let ports: Vec<u16> = instances.iter().map(|i| i.port).collect();
    // Knock on the ports while systemd answers: the two do not depend on each other.
    let (states, (answering, ports_at), states_at) = std::thread::scope(|scope| {
        let knocking = scope.spawn(|| (crate::host::listening::ports_answering(&ports), t0.elapsed()));
        let states = crate::host::systemd::unit_states(&units);
        let states_at = t0.elapsed();
        (states, knocking.join().unwrap_or_default(), states_at)
    });
    let mut states = states?;
    let health = units
        .iter()
        .zip(answering.into_iter().chain(std::iter::repeat(false)))
        .map(|(unit, answers)| {
            let state = states.remove(unit).unwrap_or_default();
            let answers = state.active_state.is_active() && answers;
            Health {
                state,
                port_answers: answers,
                healthy: answers,
            }
        })
        .collect();
    Ok(Read {
        health,
        states_at,
        ports_at,
    })
}
