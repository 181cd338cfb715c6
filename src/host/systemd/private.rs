//! systemd's private socket (`/run/systemd/private`, root only): the Manager API with
//! no bus daemon in between, the way `systemctl` itself talks to systemd when run as
//! root. `status` reads three properties of each of hundreds of units; through
//! dbus-daemon every call and reply is routed twice, which was most of status's time.
//! (zbus cannot speak to this socket: systemd signs its replies there with its
//! well-known name, which zbus rejects as a sender, so this uses libsystemd's sd-bus.)

use std::ffi::CString;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use foreign_types::ForeignType;
use systemd::bus::{Bus, ContainerType, MessageRef, ObjectPathBuf};

pub const SOCKET: &str = "/run/systemd/private";
const DEST: &str = "org.freedesktop.systemd1";

/// One row of `ListUnitsByPatterns`, the fields status uses.
#[derive(Debug, Clone)]
pub struct Listed {
    pub name: String,
    pub load: String,
    pub active: String,
    pub sub: String,
    pub path: String,
}

pub struct Private {
    bus: Bus,
    timeout: Duration,
}

/// An sd-bus error as text (the crate's error carries the D-Bus name and message).
fn text(e: impl std::fmt::Debug) -> anyhow::Error {
    anyhow!("systemd's private socket: {e:?}")
}

impl Private {
    /// A connection to systemd's private socket, or `None` where there is none to be
    /// had (not root, no socket, refused): the caller then goes through the bus. An
    /// error if systemd did not complete the handshake within `timeout` (sd-bus's own
    /// limit for that is 90 s).
    pub fn connect(timeout: Duration) -> Option<Result<Private>> {
        // SAFETY: geteuid has no preconditions.
        if !rustix::process::geteuid().is_root() || !Path::new(SOCKET).exists() {
            return None;
        }
        let address = CString::new(format!("unix:path={SOCKET}")).ok()?;
        let mut raw = std::ptr::null_mut();
        // SAFETY: sd_bus_new hands back a new reference on success, which `Bus` then
        // owns (and unrefs on drop); the address is a NUL-terminated string sd-bus
        // copies.
        unsafe {
            if libsystemd_sys::bus::sd_bus_new(&mut raw) < 0 {
                return None;
            }
            let bus = Bus::from_ptr(raw);
            if libsystemd_sys::bus::sd_bus_set_address(raw, address.as_ptr()) < 0
                || libsystemd_sys::bus::sd_bus_start(raw) < 0
            {
                return None;
            }
            let mut private = Private { bus, timeout };
            let deadline = Instant::now() + timeout;
            loop {
                match libsystemd_sys::bus::sd_bus_is_ready(raw) {
                    r if r > 0 => return Some(Ok(private)),
                    r if r < 0 => return None,
                    _ => {}
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Some(Err(anyhow!(
                        "no handshake on {SOCKET} within {:.1} s",
                        timeout.as_secs_f64()
                    )));
                }
                match private.bus.process() {
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        if private.bus.wait(Some(left)).is_err() {
                            return None;
                        }
                    }
                    Err(_) => return None,
                }
            }
        }
    }

    fn usec(&self) -> u64 {
        self.timeout.as_micros().min(u64::MAX as u128 - 1) as u64
    }

    /// `ListUnitsByPatterns([], patterns)`.
    pub fn list(&mut self, patterns: &[&str]) -> Result<Vec<Listed>> {
        let usec = self.usec();
        let mut call = self
            .bus
            .new_method_call(
                DEST,
                "/org/freedesktop/systemd1",
                "org.freedesktop.systemd1.Manager",
                "ListUnitsByPatterns",
            )
            .map_err(text)?;
        call.append(Vec::<&str>::new()).map_err(text)?;
        call.append(patterns.to_vec()).map_err(text)?;
        let mut reply = call.call(usec).map_err(text)?;
        let mut it = reply.iter().map_err(text)?;
        let mut out = Vec::new();
        it.enter_container(ContainerType::Array, "(ssssssouso)").map_err(text)?;
        while it.enter_container(ContainerType::Struct, "ssssssouso").map_err(text)? {
            let mut s = || -> Result<String> { it.next::<String>().map_err(text)?.ok_or_else(|| anyhow!("short row")) };
            let (name, _description, load, active, sub, _following) = (s()?, s()?, s()?, s()?, s()?, s()?);
            let path: ObjectPathBuf = it.next().map_err(text)?.ok_or_else(|| anyhow!("short row"))?;
            let _job: Option<u32> = it.next().map_err(text)?;
            let _job_type: Option<String> = it.next().map_err(text)?;
            let _job_path: Option<ObjectPathBuf> = it.next().map_err(text)?;
            it.exit_container().map_err(text)?;
            let path = path.to_str().map_err(text)?.to_string();
            out.push(Listed {
                name,
                load,
                active,
                sub,
                path,
            });
        }
        Ok(out)
    }

    /// Each `(object path, interface, property)`'s value as a number (the properties
    /// read here are `u`, `t` or `i`), all calls in flight at once; `None` for one that
    /// could not be read.
    pub fn numbers(&mut self, props: &[(&str, &str, &str)]) -> Result<Vec<Option<u64>>> {
        let usec = self.usec();
        let results: Arc<Mutex<Vec<Option<Option<u64>>>>> = Arc::new(Mutex::new(vec![None; props.len()]));
        for (i, (path, iface, prop)) in props.iter().enumerate() {
            let mut call = self
                .bus
                .new_method_call(DEST, *path, "org.freedesktop.DBus.Properties", "Get")
                .map_err(text)?;
            call.append(*iface).map_err(text)?;
            call.append(*prop).map_err(text)?;
            let results = Arc::clone(&results);
            call.call_async(
                move |reply: &mut MessageRef| {
                    let value = number(reply);
                    if let Ok(mut r) = results.lock() {
                        r[i] = Some(value);
                    }
                    Ok(())
                },
                usec,
            )
            .map_err(text)?;
        }
        let deadline = Instant::now() + self.timeout;
        loop {
            let done = results.lock().map(|r| r.iter().all(Option::is_some)).unwrap_or(true);
            if done {
                break;
            }
            if Instant::now() >= deadline {
                bail!(
                    "no answer from systemd's private socket within {:.1} s",
                    self.timeout.as_secs_f64()
                );
            }
            // Dispatch everything that arrived; then wait for more.
            if self.bus.process().map_err(text)?.is_none() {
                self.bus.wait(Some(Duration::from_millis(100))).map_err(text)?;
            }
        }
        let results = results.lock().map_err(|_| anyhow!("poisoned"))?;
        Ok(results.iter().map(|r| r.flatten()).collect())
    }
}

/// The number in a `Get` reply (a variant of `u`, `t` or `i`); `None` for an error
/// reply or another type.
fn number(reply: &mut MessageRef) -> Option<u64> {
    if reply.error().is_some() {
        return None;
    }
    let mut it = reply.iter().ok()?;
    let (_, inner) = it.peek_type().ok()?;
    let inner = inner.to_string();
    it.enter_container(ContainerType::Variant, inner.as_str()).ok()?;
    match inner.as_str() {
        "u" => it.next::<u32>().ok()?.map(u64::from),
        "t" => it.next::<u64>().ok()?,
        "i" => it.next::<i32>().ok()?.and_then(|v| u64::try_from(v).ok()),
        _ => None,
    }
}
