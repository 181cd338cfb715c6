//! A narrow, blocking interface to systemd for the commands, over D-Bus (zbus): the
//! connection, and the calls every part shares. Jobs are run in `jobs`, unit state is
//! read in `states`. Inside, calls are pipelined on one connection (async zbus driven
//! by `block_on`), so reading 400 units costs one round trip's latency, not 400.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result};
use futures_util::{stream, StreamExt};
use zbus::zvariant::{OwnedObjectPath, OwnedValue};
use zbus::Connection;

use super::dbus::ManagerProxy;
use crate::core::systemd_types::list_patterns;

pub struct Systemd {
    conn: Connection,
}

const SERVICE: &str = "org.freedesktop.systemd1";
/// Calls in flight at once: the system bus refuses more than 128 pending replies per
/// connection.
pub(super) const IN_FLIGHT: usize = 120;

/// How long one D-Bus call may take before systemd counts as stuck. systemctl's own
/// default is 25 s; daemon-reload of a few hundred units takes well under a second.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// `CALL_TIMEOUT`, or `HHL_DBUS_TIMEOUT` (seconds) where set: tests shorten it to prove
/// that a stuck systemd is reported.
pub(super) fn call_timeout() -> Duration {
    std::env::var("HHL_DBUS_TIMEOUT")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(CALL_TIMEOUT)
}
impl Systemd {
    /// Connect to the system bus; every call on the connection then gives up after
    /// `call_timeout()` with an error naming it.
    pub fn connect() -> Result<Systemd> {
        let timeout = call_timeout();
        let connect = async {
            zbus::connection::Builder::system()?
                .method_timeout(timeout)
                .build()
                .await
        };
        let conn = zbus::block_on(within(timeout, connect))
            .and_then(|r| r.map_err(Into::into))
            .map_err(|e| stuck_or(e, "Hello (connecting to the system bus)", timeout))
            .context(
                "cannot reach systemd on the system bus (is systemd PID 1 here, and /run/dbus/system_bus_socket there?)",
            )?;
        Ok(Systemd { conn })
    }

    pub(super) fn manager(&self) -> Result<ManagerProxy<'_>> {
        Ok(zbus::block_on(manager_proxy(&self.conn))?)
    }

    /// `systemctl daemon-reload`: re-read unit files and drop-ins.
    pub fn daemon_reload(&self) -> Result<()> {
        zbus::block_on(self.manager()?.reload())
            .map_err(|e| self.explain_call(e, "Reload (daemon-reload)"))
            .context("daemon-reload")
    }

    /// `systemctl reset-failed` on each unit, so a unit that hit its start limit starts
    /// again. The calls are pipelined on the connection under one deadline (the call
    /// timeout): a stalled bus costs one deadline, not one per unit. Best effort for
    /// each unit (one systemd has not loaded has nothing to reset, one the caller may
    /// not reset is refused by the job that follows); an error only when systemd did
    /// not answer them in time.
    pub fn reset_failed<'u>(&self, units: impl Iterator<Item = &'u str>) -> Result<()> {
        let units: Vec<&str> = units.collect();
        if units.is_empty() {
            return Ok(());
        }
        let timeout = self.conn.method_timeout().unwrap_or(CALL_TIMEOUT);
        let batch = async {
            let manager = manager_proxy(&self.conn).await?;
            let calls = units.iter().map(|unit| {
                let manager = &manager;
                async move { manager.reset_failed_unit(unit).await }
            });
            let results: Vec<zbus::Result<()>> = stream::iter(calls).buffered(IN_FLIGHT).collect().await;
            Ok::<_, zbus::Error>(results)
        };
        let call = match units.as_slice() {
            [one] => format!("ResetFailedUnit {one}"),
            many => format!("ResetFailedUnit of {} units ({}, ...)", many.len(), many[0]),
        };
        let results = zbus::block_on(within(timeout, batch))
            .and_then(|r| r.map_err(Into::into))
            .map_err(|e| stuck_or(e, &call, timeout))?;
        match results.into_iter().find_map(|r| r.err().filter(is_timeout)) {
            Some(e) => Err(self.explain_call(e, &call)),
            None => Ok(()),
        }
    }

    pub(super) async fn list(&self, units: &[String]) -> Result<HashMap<String, super::dbus::UnitRow>> {
        let manager = manager_proxy(&self.conn).await?;
        let patterns = list_patterns(units);
        let patterns: Vec<&str> = patterns.iter().map(String::as_str).collect();
        let rows = manager
            .list_units_by_patterns(&[], &patterns)
            .await
            .map_err(|e| self.explain_call(e, "ListUnitsByPatterns"))?;
        Ok(rows.into_iter().map(|r| (r.name.clone(), r)).collect())
    }

    /// Numeric properties, pipelined.
    pub(super) async fn numbers(&self, props: &[(&str, &str, &str)]) -> Vec<Option<u64>> {
        let calls = props.iter().map(|(path, iface, prop)| async move {
            let path = OwnedObjectPath::try_from(*path).ok()?;
            number(self.get(&path, iface, prop).await?)
        });
        stream::iter(calls).buffered(IN_FLIGHT).collect().await
    }

    pub(super) async fn get(&self, path: &OwnedObjectPath, iface: &str, prop: &str) -> Option<OwnedValue> {
        let reply = self
            .conn
            .call_method(
                Some(SERVICE),
                path.as_str(),
                Some("org.freedesktop.DBus.Properties"),
                "Get",
                &(iface, prop),
            )
            .await
            .ok()?;
        let body = reply.body();
        // Get returns a variant holding the value.
        match body.deserialize::<zbus::zvariant::Value>().ok()? {
            zbus::zvariant::Value::Value(inner) => OwnedValue::try_from(*inner).ok(),
            other => OwnedValue::try_from(other).ok(),
        }
    }
}

impl Systemd {
    /// `explain`, and a call that timed out named with how long it was waited for.
    /// The connection, for the calls kept in sibling modules (`hup`).
    pub(super) fn connection(&self) -> &Connection {
        &self.conn
    }

    pub(super) fn explain_call(&self, e: zbus::Error, call: &str) -> anyhow::Error {
        let timeout = self.conn.method_timeout().unwrap_or(CALL_TIMEOUT);
        stuck_or(e.into(), call, timeout)
    }
}

/// A timeout said in words: which call, how long; any other error as it is (through
/// `explain` for zbus errors).
fn stuck_or(e: anyhow::Error, call: &str, timeout: Duration) -> anyhow::Error {
    let timed_out = match e.downcast_ref::<zbus::Error>() {
        Some(zbus::Error::InputOutput(io)) => io.kind() == std::io::ErrorKind::TimedOut,
        _ => e.downcast_ref::<TimedOut>().is_some(),
    };
    if timed_out {
        return anyhow::anyhow!(
            "no answer to {call} within {:.1} s: systemd (or the bus) is stuck or overloaded (`systemctl list-jobs` and `journalctl -b` on the host show what it is doing), so hhlctl stopped waiting",
            timeout.as_secs_f64()
        );
    }
    match e.downcast::<zbus::Error>() {
        Ok(z) => explain(z),
        Err(e) => e,
    }
}

fn is_timeout(e: &zbus::Error) -> bool {
    matches!(e, zbus::Error::InputOutput(io) if io.kind() == std::io::ErrorKind::TimedOut)
}

/// `future`, or `TimedOut` after `timeout`.
async fn within<T>(timeout: Duration, future: impl std::future::Future<Output = T>) -> Result<T> {
    use futures_util::future::{select, Either};
    let timer = tokio::time::sleep(timeout);
    match select(std::pin::pin!(future), std::pin::pin!(timer)).await {
        Either::Left((value, _)) => Ok(value),
        Either::Right(_) => Err(TimedOut.into()),
    }
}

#[derive(Debug)]
struct TimedOut;

impl std::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("timed out")
    }
}

impl std::error::Error for TimedOut {}

pub(super) fn capitalized(word: &str) -> String {
    let mut c = word.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

/// A numeric property value (`u`, `t` or `i`).
fn number(v: OwnedValue) -> Option<u64> {
    if let Ok(n) = u32::try_from(&v) {
        return Some(n.into());
    }
    if let Ok(n) = u64::try_from(&v) {
        return Some(n);
    }
    i32::try_from(&v).ok().and_then(|n| u64::try_from(n).ok())
}

/// A Manager proxy that asks the bus nothing when it is made (no property cache, so
/// no GetAll round trip per proxy).
pub(super) async fn manager_proxy(conn: &Connection) -> zbus::Result<ManagerProxy<'_>> {
    ManagerProxy::builder(conn)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
}

/// Turn systemd's access-denied into words a developer can act on.
fn explain(e: zbus::Error) -> anyhow::Error {
    let text = e.to_string();
    if text.contains("AccessDenied")
        || text.contains("InteractiveAuthorizationRequired")
        || text.contains("Interactive authentication required")
    {
        if !crate::host::optional::polkit_installed() {
            return anyhow::anyhow!(
                "systemd refused ({text}): {}\n  hint: ask an admin to `apt-get install polkitd`; until then, only root can do this",
                crate::host::optional::NO_POLKIT
            );
        }
        anyhow::anyhow!(
            "systemd refused: you may control only your own instances ({text})\n  \
             hint: `hhlctl status` lists the instances and their owners; admins are listed under `users.admins` in hhl.yaml"
        )
    } else {
        e.into()
    }
}
