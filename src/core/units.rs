//! systemd artifacts for each instance. The package ships static template units
//! (`units/openresty@.service`, `units/redis@.service`, `hhl.target`, `hhl.slice`);
//! hhlctl writes only what differs per instance: a drop-in with the instance's paths,
//! slice and log identifier, a per-developer slice, and the `hhl.target.wants` link
//! that enables it.

use std::path::{Path, PathBuf};

use crate::core::artifact::{generated_header, Artifact};
use crate::core::escape::{UnitValue, Unsafe};
use crate::core::kind::Kind;
use crate::core::model::access::Limits;
use crate::core::model::{Flavor, Instance, Model};

/// Where the package installs the static template units.
pub const SYSTEM_UNIT_DIR: &str = "/usr/lib/systemd/system";
/// The drop-in file name hhlctl owns inside each `<unit>.d/`.
pub const DROPIN_NAME: &str = "50-hhl.conf";

/// A Redis of this release: the template unit's start line plus its ACL file.
pub const REDIS_EXEC_START: &str = "@/usr/bin/redis-check-rdb redis-server ${HHL_REDIS_CONF} --aclfile ${HHL_REDIS_ACL} --supervised systemd --daemonize no";

/// One unit-file word: `%` doubled, quoted when needed, control characters refused.
fn v(s: impl AsRef<str>) -> Result<String, Unsafe> {
    UnitValue::word(s.as_ref()).map(|u| u.as_str().to_string())
}

/// A whole-line setting: `%` doubled, control characters refused, never quoted.
fn t(s: impl AsRef<str>) -> Result<String, Unsafe> {
    UnitValue::text(s.as_ref()).map(|u| u.as_str().to_string())
}

fn pv(p: &Path) -> Result<String, Unsafe> {
    v(p.display().to_string())
}

pub fn slice_name(developer: &str) -> String {
    format!("hhl-{developer}.slice")
}

pub fn dropin_path(unit_dir: &Path, inst: &Instance) -> PathBuf {
    unit_dir.join(format!("{}.d", inst.unit())).join(DROPIN_NAME)
}

fn dropin(model: &Model, inst: &Instance, source: &Path) -> Result<String, Unsafe> {
    // No SourcePath=: systemd would flag the unit NeedDaemonReload whenever hhl.yaml is
    // newer than the last daemon-reload, even when no generated file changed. This file
    // is the unit's source; apply rewrites it (and reloads systemd) when it changes.
    let mut s = generated_header(source, None);
    s += "[Service]\n";
    s += &format!("Slice={}\n", t(slice_name(&inst.developer))?);
    s += &format!("SyslogIdentifier={}\n", t(inst.syslog_identifier())?);
    s += &format!("User={}\n", t(&inst.user)?);
    match inst.kind {
        Kind::Openresty => {
            s += &format!("Environment={}\n", v(format!("HHL_PREFIX={}/", inst.dir.display()))?);
            // The template unit mounts the whole file system read-only. What the
            // instance may write (its logs/ and temp/, its code's scratch, POSIX shared
            // memory) is each a tmpfs of limits.<owner>.disk (charged to the owner's
            // memory too), never the root file system or the host's /dev/shm. A full
            // one fails the write with ENOSPC, which nginx logs ("No space left on
            // device").
            let size = model
                .access
                .limits
                .get(&inst.developer)
                .and_then(|l| l.disk.as_deref())
                .unwrap_or(crate::core::model::access::DEFAULT_DISK);
            let opts = format!("mode=1777,size={size},nosuid,nodev");
            s += "PrivateTmp=no\n";
            s += &format!(
                "TemporaryFileSystem={} {} {} {} {}\n",
                v(format!("{}:{opts}", inst.dir.join("logs").display()))?,
                v(format!("{}:{opts}", inst.dir.join("temp").display()))?,
                v(format!("/tmp:{opts}"))?,
                v(format!("/var/tmp:{opts}"))?,
                v(format!("/dev/shm:{opts}"))?
            );
            // nginx forks its master once its config loaded (see units/openresty@.service;
            // the template unit keeps the foreground start older instances expect), and
            // writes its PID where `{{> hhl_main}}` says.
            let bin = model.flavor.binary();
            if model.flavor == Flavor::Openresty {
                // The template unit names Debian's nginx (ExecReload reads HHL_NGINX).
                s += &format!("Environment=HHL_NGINX={bin}\n");
            }
            s += "Type=forking\n";
            // No PIDFile=: systemd reads it from outside the sandbox, so it would have
            // to be on a file system the instance can fill. The master is the one
            // process of the unit that systemd is left as parent of once the launcher
            // exited (its workers are the master's children), which is what it takes.
            s += "PIDFile=\n";
            s += "GuessMainPID=yes\n";
            s += "ExecStartPre=\n";
            s += "ExecStart=\n";
            s += &format!("ExecStart={bin} -e stderr -p ${{HHL_PREFIX}} -c conf/nginx.conf -g \"daemon on;\"\n");
        }
        Kind::Redis => {
            s += &format!(
                "Environment={}\n",
                v(format!("HHL_REDIS_CONF={}", inst.config_path.display()))?
            );
            s += &format!("Environment={}\n", v(format!("HHL_REDIS_DIR={}", inst.dir.display()))?);
            let acl = crate::core::redis_acl::acl_path(model, inst);
            s += &format!("Environment={}\n", v(format!("HHL_REDIS_ACL={}", acl.display()))?);
            s += &format!("ReadWritePaths={}\n", pv(&inst.dir)?);
            // The ACL is in the drop-in, not the template unit (units/redis@.service):
            // a unit file of another release never starts this Redis without it.
            // On the command line, so no template leaves it out; CONFIG SET is denied
            // to the application user (core::redis_acl). Past it, writes fail with
            // Redis's OOM error and nothing is evicted (unless the template's
            // maxmemory-policy says so).
            let maxmemory = model
                .access
                .limits
                .get(&inst.developer)
                .and_then(|l| l.redis.as_deref())
                .unwrap_or(crate::core::model::access::DEFAULT_REDIS);
            let bytes = crate::core::push_limits::parse_size(maxmemory)
                .map_err(|_| Unsafe(format!("limits.{}.redis: `{maxmemory}` is not a size", inst.developer)))?;
            s += "ExecStart=\n";
            s += &format!("ExecStart={REDIS_EXEC_START} --maxmemory {bytes}\n");
        }
    }
    Ok(s)
}

fn slice(developer: &str, limits: Option<&Limits>, source: &Path) -> Result<String, Unsafe> {
    let mut s = format!(
        "{}[Unit]\nDescription={}\nBefore=slices.target\n",
        generated_header(source, None),
        t(format!("hhl instances of {developer}"))?
    );
    // Accounting makes `hhlctl status` and `systemctl status` show use per owner;
    // limits hold for all of this owner's instances together.
    s += "\n[Slice]\nCPUAccounting=yes\nMemoryAccounting=yes\nTasksAccounting=yes\n";
    if let Some(l) = limits {
        for (key, value) in [
            ("MemoryMax", &l.memory_max),
            ("CPUQuota", &l.cpu_quota),
            ("TasksMax", &l.tasks_max),
        ] {
            // Validated to digits, a unit suffix, `%` or `infinity` (`access`);
            // these settings take no specifiers, so `%` stays single.
            if let Some(value) = value {
                s += &format!("{key}={value}\n");
            }
        }
    }
    Ok(s)
}

fn template_unit(inst: &Instance) -> &'static str {
    crate::core::systemd_types::template_unit(inst.kind)
}

/// Every systemd artifact of `model`; `source` is the hhl.yaml they came from. Every
/// value goes through `UnitValue`; one that cannot (a control character in the
/// path of hhl.yaml itself) is refused.
pub fn artifacts(model: &Model, source: &Path) -> Result<Vec<Artifact>, Unsafe> {
    let dir = &model.paths.unit_dir;
    let mut out = Vec::new();
    for owner in model.owners() {
        if model.instances.iter().any(|i| i.developer == owner) {
            let text = slice(owner, model.access.limits.get(owner), source)?;
            out.push(Artifact::file(dir.join(slice_name(owner)), text, 0o644));
        }
    }
    for inst in &model.instances {
        out.push(Artifact::file(
            dropin_path(dir, inst),
            dropin(model, inst, source)?,
            0o644,
        ));
        out.push(Artifact::symlink(
            dir.join("hhl.target.wants").join(inst.unit()),
            Path::new(SYSTEM_UNIT_DIR).join(template_unit(inst)),
        ));
    }
    Ok(out)
}
