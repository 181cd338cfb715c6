//! Check rendered nginx configs with the real nginx (`nginx -t`) before anything is
//! written or reloaded. Each config is tested in place under its own prefix, as a
//! staged file beside the live one, so relative includes and paths resolve as they
//! will, and as the user that will run it (so a file it cannot open fails here, not at
//! start); the staged files, and any directory made for the test, are removed after.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::core::artifact::FileChange;
use crate::core::artifact::{Artifact, Content};
use crate::core::kind::Kind;
use crate::core::model::{Instance, Model};
use crate::core::render;
use crate::host::child;
use crate::host::fsapply;
use crate::host::load::Loaded;
use crate::host::reown::Reown;
use crate::host::users;
use std::os::unix::process::CommandExt;

const STAGED: &str = ".nginx.conf.hhl-check";

/// `nginx -t` every OpenResty config that is new or changed. Returns how many were
/// tested; on failure, every refusal is in the error and the disk is as it was.
///
/// A config whose unix user does not exist yet (apply creates users only after every
/// check passed) is tested in a scratch copy of the whole tree instead (`relocated`),
/// so that a refusal leaves no user, directory or file behind. An instance whose files
/// apply will hand to another existing user (`reowns`) is tested as the user that owns
/// them now: they are that user's until apply re-owns them, after every check passed.
pub fn nginx_configs(
    loaded: &Loaded,
    artifacts: &[Artifact],
    changes: &[FileChange],
    reowns: &[Reown],
) -> Result<usize> {
    let model = &loaded.model;
    let written = fsapply::written(changes);
    let mut created: Vec<PathBuf> = Vec::new();
    let mut staged = Vec::new();
    let (fresh, existing): (Vec<&Instance>, Vec<&Instance>) = model
        .instances
        .iter()
        .filter(|i| i.kind == Kind::Openresty && written.contains(i.config_path.as_path()))
        .partition(|i| users::lookup(&i.user).is_none());
    for inst in existing {
        let Some(Content::File(bytes)) = artifacts
            .iter()
            .find(|a| a.path == inst.config_path)
            .map(|a| &a.content)
        else {
            continue;
        };
        for a in artifacts.iter().filter(|a| a.is_dir() && a.path.starts_with(&inst.dir)) {
            if !a.path.exists() {
                fsapply::write_artifact(Path::new("/"), a, fsapply::Ownership::Apply)?;
                created.push(a.path.clone());
            }
        }
        fsapply::write_file(&inst.dir.join("conf").join(STAGED), bytes, 0o644)?;
        staged.push(inst);
    }
    let results = test_as(
        model,
        &staged,
        STAGED,
        &|inst: &Instance| match crate::host::reown::current_owner(reowns, inst) {
            Some(ids) => Ok(Some(ids)),
            None => owner_ids(inst).map(Some),
        },
    );
    for inst in &staged {
        let _ = fs::remove_file(inst.dir.join("conf").join(STAGED));
    }
    let mut failures = results?;
    if !fresh.is_empty() {
        let names: Vec<&str> = fresh.iter().map(|i| i.name.as_str()).collect();
        failures.extend(relocated(loaded, &names)?);
    }
    if !failures.is_empty() {
        for d in created.iter().rev() {
            let _ = fs::remove_dir(d);
        }
        bail!(
            "{}\n{} config(s) failed nginx -t; nothing was written and no instance was touched.\nFix the template or values in hhl.yaml and run `hhlctl apply` again.",
            failures.join("\n"),
            failures.len()
        );
    }
    Ok(staged.len() + fresh.len())
}

/// `nginx -t` of the configs of the instances `names`, with every path of the model
/// moved into a scratch directory: the whole tree rendered there (as the user running
/// this, owners ignored), tested, removed. Nothing live is read but the templates, or
/// written. The reports name the live paths.
pub fn relocated(loaded: &Loaded, names: &[&str]) -> Result<Vec<String>> {
    let scratch = crate::host::release::Scratch::new("nginx-t")?;
    let root = scratch.0.join("root");
    let moved = loaded.model.relocated(&root);
    let artifacts = render::render(&moved, &loaded.templates, &loaded.source.path).map_err(anyhow::Error::from)?;
    for a in &artifacts {
        fsapply::write_artifact(Path::new("/"), a, fsapply::Ownership::Ignore)?;
    }
    let to_test: Vec<&Instance> = moved
        .instances
        .iter()
        .filter(|i| names.contains(&i.name.as_str()))
        .collect();
    Ok(test_all(&moved, &to_test, "nginx.conf", false)?
        .into_iter()
        .map(|f| f.replace(&format!("{}/", root.display()), "/"))
        .collect())
}

/// `nginx -t` of every instance in `insts` (see `test_one`); the reports of those
/// nginx refuses.
pub fn test_all(model: &Model, insts: &[&Instance], conf: &str, as_owner: bool) -> Result<Vec<String>> {
    test_as(model, insts, conf, &|inst: &Instance| {
        if as_owner {
            owner_ids(inst).map(Some)
        } else {
            Ok(None)
        }
    })
}

/// (uid, gid) of the instance's user.
fn owner_ids(inst: &Instance) -> Result<(u32, u32)> {
    users::lookup(&inst.user).with_context(|| format!("unix user `{}` of {} does not exist", inst.user, inst.unit()))
}

type RunAs<'a> = dyn Fn(&Instance) -> Result<Option<(u32, u32)>> + Sync + 'a;

fn test_as(model: &Model, insts: &[&Instance], conf: &str, run_as: &RunAs) -> Result<Vec<String>> {
    // nginx -t loads the Lua module each time (tens of ms): test on every core.
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).min(8);
    let mut failures = Vec::new();
    for r in crate::host::parallel::map(insts, workers, |inst| test_one(model, inst, conf, run_as)) {
        failures.extend(r?);
    }
    Ok(failures)
}

/// `nginx -t` of `conf/<conf>` under the instance's prefix, as the user `run_as` names
/// when running as root; `Some(report)` when nginx refuses it.
fn test_one(model: &Model, inst: &Instance, conf: &str, run_as: &RunAs) -> Result<Option<String>> {
    let mut cmd = Command::new(model.flavor.binary());
    if rustix::process::geteuid().is_root() {
        if let Some((uid, gid)) = run_as(inst)? {
            // std drops root's supplementary groups when it sets the uid.
            cmd.uid(uid).gid(gid);
        }
    }
    cmd.args(["-t", "-q", "-e", "stderr", "-p"])
        .arg(format!("{}/", inst.dir.display()))
        .args(["-c", &format!("conf/{conf}")])
        // As the unit runs it (Type=forking): a template that says `daemon off;`, which
        // would hang the start job, is refused here as a duplicate directive.
        .args(["-g", "daemon on;"]);
    let out =
        child::output(&mut cmd, child::NGINX_TEST).with_context(|| format!("testing {}'s config", inst.unit()))?;
    if out.status.success() {
        return Ok(None);
    }
    let text = String::from_utf8_lossy(&out.stderr).replace(conf, "nginx.conf");
    Ok(Some(format!(
        "{}: nginx -t refused the rendered {}:\n{}",
        inst.unit(),
        inst.config_path.display(),
        text.trim_end()
    )))
}

/// `rsyslogd -N1` on the rules, when they change and rsyslog is installed, so a rule
/// rsyslog would refuse never replaces working ones.
pub fn rsyslog_rules(model: &Model, artifacts: &[Artifact], changes: &[FileChange]) -> Result<bool> {
    let path = &model.paths.rsyslog_conf;
    if !fsapply::written(changes).contains(path.as_path()) || !Path::new(RSYSLOGD).exists() {
        return Ok(false);
    }
    let Some(Content::File(bytes)) = artifacts.iter().find(|a| &a.path == path).map(|a| &a.content) else {
        return Ok(false);
    };
    let scratch = crate::host::release::Scratch::new("rsyslog")?;
    let staged = scratch.0.join("hhl.conf");
    // rsyslogd -N1 looks each fileGroup/dirGroup up: the groups of users apply has not
    // made yet (it makes them after every check) are tested as root's.
    let mut text = String::from_utf8_lossy(bytes).into_owned();
    for user in model.instances.iter().map(|i| i.user.as_str()) {
        if users::lookup(user).is_none() {
            text = text.replace(&format!("Group=\"{user}\""), "Group=\"root\"");
        }
    }
    fs::write(&staged, text)?;
    let out = child::output(
        Command::new(RSYSLOGD).args(["-N1", "-f"]).arg(&staged),
        child::RSYSLOG_TEST,
    )?;
    if !out.status.success() {
        let text =
            String::from_utf8_lossy(&out.stderr).replace(&staged.display().to_string(), &path.display().to_string());
        bail!(
            "rsyslogd -N1 refused the rendered {}:\n{}\nnothing was written and no instance was touched.",
            path.display(),
            text.trim_end()
        );
    }
    Ok(true)
}

const RSYSLOGD: &str = "/usr/sbin/rsyslogd";
