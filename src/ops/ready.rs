//! systemd calls an instance started once its process runs; nginx and Redis listen a
//! moment later, and nginx takes up a reloaded config (a new port) after its reload
//! job ended. Every command that starts, restarts or reloads waits here, bounded,
//! until the instance answers on its port, so that a `status` right after finds it
//! healthy.

use std::time::{Duration, Instant};

use crate::core::model::{Instance, Model};
use crate::core::systemd_types::{JobKind, JobOutcome};
use crate::core::voice::Voice;

/// How long an instance may take to answer after its job ended.
pub const PORT_WAIT: Duration = Duration::from_secs(20);

/// Wait until every instance whose start, restart or reload succeeded answers on its
/// port; print an error for each that does not within `PORT_WAIT`, with the logs
/// command as `voice`'s reader types it. Returns how many never answered.
pub fn wait_for_ports(model: &Model, outcomes: &[JobOutcome], voice: &Voice) -> usize {
    let pending = silent_ports(model, outcomes);
    for i in &pending {
        eprintln!(
            "error: {} is running but port {} does not answer after {} s; `{}` shows why",
            i.unit(),
            i.port,
            PORT_WAIT.as_secs(),
            voice.cmd(&format!("logs {}", i.name))
        );
    }
    pending.len()
}

/// `wait_for_ports` without the printing: the instances that never answered.
pub fn silent_ports<'m>(model: &'m Model, outcomes: &[JobOutcome]) -> Vec<&'m Instance> {
    let mut pending: Vec<&Instance> = outcomes
        .iter()
        .filter(|o| o.ok() && o.kind != JobKind::Stop)
        .filter_map(|o| model.instances.iter().find(|i| i.unit() == o.unit))
        .collect();
    let deadline = Instant::now() + PORT_WAIT;
    loop {
        let ports: Vec<u16> = pending.iter().map(|i| i.port).collect();
        let answers = crate::host::listening::ports_answering(&ports);
        pending = pending
            .into_iter()
            .zip(answers)
            .filter(|(_, up)| !up)
            .map(|(i, _)| i)
            .collect();
        if pending.is_empty() || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    pending
}
