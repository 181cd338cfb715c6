//! post-receive: deploy what a push moved. A logic server's branch becomes a new
//! release of its instance, reloaded (by SIGHUP to the nginx master) or restarted; the
//! Lua library's master reloads every OpenResty instance; serverctrl's master is
//! applied as root through hhl-apply.service. Reported into the pusher's terminal.
//!
//! The same path deploys a branch left ahead of its live release (a deploy that failed
//! or was killed): `ssh <entry>@server deploy`, and the next push of an up-to-date
//! branch (`converge`). `apply`, as root, deploys such a branch itself and reloads it
//! with its other jobs.

use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};

use crate::core::access::{self, Action};
use crate::core::kind::Kind;
use crate::core::model::{Instance, Model};
use crate::core::render;
use crate::core::repos::{self, PushOptions, RefUpdate, Repo, RepoKind, MAIN_BRANCH};
use crate::core::systemd_types::{JobKind, JobOutcome, UnitName};
use crate::host::load::Loaded;
use crate::host::release;
use crate::host::release_info::{self, Deployment};
use crate::host::systemd::hup::HUP_WAIT;
use crate::host::systemd::Systemd;
use crate::ops::remote_apply;
use crate::ops::report::{self, report_since};

pub fn post_receive(loaded: &Loaded, repo: &Repo, updates: &[RefUpdate], opts: &PushOptions, me: &str) -> Result<i32> {
    let model = &loaded.model;
    let mut failed = 0;
    for u in updates.iter().filter(|u| !u.is_delete()) {
        let Some(branch) = u.branch() else { continue };
        // pre-receive refused these already; run by hand, this hook must not deploy them.
        if let Err(why) = access::may(model, me, Action::Push { repo, update: u }) {
            eprintln!("not deployed: {why}");
            failed += 1;
            continue;
        }
        // Several hosts: the owner's host deploys (its pre-receive took the ref).
        if let (RepoKind::Server(server), Some(host)) = (&repo.kind, model.elsewhere(branch)) {
            failed += crate::ops::forward::deploy_there(model, host, me, server, branch, opts)?;
            continue;
        }
        if opts.no_deploy {
            println!("{} {branch}: updated; not deployed (-o no-deploy)", repo.name);
            // Held: apply and the next up-to-date push leave it; `deploy` deploys it.
            if let RepoKind::Server(server) = &repo.kind {
                if let Some(inst) = repos::instance_for(model, server, branch) {
                    release::hold(&inst.app_dir(), &u.new, "-o no-deploy")?;
                }
            }
            continue;
        }
        let ok = match &repo.kind {
            RepoKind::Server(server) => deploy_server(model, repo, server, branch, u, opts)?,
            RepoKind::Lualib if branch == MAIN_BRANCH => {
                let here = deploy_lualib(model, repo, u)?;
                crate::ops::forward::lualib_to_others(model, repo, u, me)? == 0 && here
            }
            RepoKind::Serverctrl if branch == MAIN_BRANCH => apply_serverctrl(model, u)?,
            _ => {
                println!("{} {branch}: updated; only {MAIN_BRANCH} deploys", repo.name);
                true
            }
        };
        if !ok {
            failed += 1;
        }
    }
    Ok(if failed > 0 { 1 } else { 0 })
}

/// What a deploy target keeps: git.keep releases, within git.max_releases_size.
pub fn keep(model: &Model) -> release::Keep {
    release::Keep {
        count: model.git.keep,
        bytes: model.git.max_releases_size,
    }
}

pub fn short(commit: &str) -> &str {
    &commit[..commit.len().min(10)]
}

fn deploy_server(
    model: &Model,
    repo: &Repo,
    server_name: &str,
    branch: &str,
    u: &RefUpdate,
    opts: &PushOptions,
) -> Result<bool> {
    let Some(inst) = repos::instance_for(model, server_name, branch) else {
        println!("{} {branch}: no instance to deploy to", repo.name);
        return Ok(true);
    };
    server(model, repo, inst, &u.new, opts)
}

/// Deploy `commit` of `repo` to `inst` (its developer's branch), reload or restart as
/// `opts` say, and report. `Ok(false)`: the release is live on disk but its reload
/// failed (reported, with the way back).
pub fn server(model: &Model, repo: &Repo, inst: &Instance, commit: &str, opts: &PushOptions) -> Result<bool> {
    let t = Instant::now();
    let d = release::deploy(&repo.path, commit, &inst.app_dir(), keep(model))
        .with_context(|| format!("deploying {} to {}", short(commit), inst.name))?;
    // For the console's deploys view; a deploy does not fail for want of it.
    let _ = crate::host::release_info::record_deployed(&inst.app_dir(), &d.id, &repo.path, commit, d.files, d.bytes);
    println!(
        "deployed {} to {} ({} file{}, release {}) in {} ms",
        short(commit),
        inst.name,
        d.files,
        if d.files == 1 { "" } else { "s" },
        d.id,
        t.elapsed().as_millis()
    );
    let owner_units = |kind: Option<Kind>| -> Vec<String> {
        model
            .instances
            .iter()
            .filter(|i| i.developer == inst.developer && kind.is_none_or(|k| i.kind == k))
            .map(|i| i.unit())
            .collect()
    };
    let mut jobs: Vec<(String, JobKind)> = Vec::new();
    if opts.restart_all {
        jobs.extend(owner_units(None).into_iter().map(|u| (u, JobKind::Restart)));
    } else {
        let kind = if opts.restart {
            JobKind::Restart
        } else {
            JobKind::Reload
        };
        jobs.push((inst.unit(), kind));
        if opts.restart_redis {
            jobs.extend(
                owner_units(Some(Kind::Redis))
                    .into_iter()
                    .map(|u| (u, JobKind::Restart)),
            );
        }
    }
    // The check after the reload (`core::smoke`): noted before it, made after.
    let smoke_path = match crate::core::smoke::path(inst) {
        Ok(p) => p,
        Err(e) => {
            println!("warning: {e}; no check after this deploy");
            None
        }
    };
    let systemd = Systemd::connect()?;
    let before = match smoke_path {
        Some(_) => {
            let states = systemd.states(std::slice::from_ref(&inst.unit()))?;
            let master = states.get(&inst.unit()).map(|s| s.main_pid).unwrap_or(0);
            Some(crate::host::smoke::before(master))
        }
        None => None,
    };
    let ok = run_jobs(&systemd, model, jobs, &inst.name, &d.previous)?;
    if !ok {
        return Ok(false);
    }
    release::reload_done(&inst.app_dir(), &release::deploy_record(&d.id))?;
    match (smoke_path, before) {
        (Some(path), Some(before)) => Ok(smoke_report(model, inst, &path, &before, &d.previous)),
        _ => Ok(true),
    }
}

/// Request the freshly reloaded instance and show its new workers' errors: a runtime
/// error (a nil index, a failing `require`) shows at push time, with `file:line` and
/// the way back. Returns whether it is clean.
fn smoke_report(
    model: &Model,
    inst: &crate::core::model::Instance,
    path: &str,
    before: &crate::host::smoke::Before,
    previous: &Option<String>,
) -> bool {
    let t = Instant::now();
    let checked = crate::host::smoke::check(inst, path, before);
    if !checked.failed && checked.errors.is_empty() {
        println!(
            "checked {}: {} in {} ms, no errors logged",
            inst.name,
            checked.answer,
            t.elapsed().as_millis()
        );
        return true;
    }
    let voice = crate::host::caller::voice(model);
    println!(
        "error: the new code of {} is live but failing: {}",
        inst.name, checked.answer
    );
    if checked.errors.is_empty() {
        println!(
            "  (no error line in its journal within {} ms)",
            crate::host::smoke::WINDOW.as_millis()
        );
    } else {
        println!("its new workers logged:");
        for line in &checked.errors {
            println!("  {line}");
        }
    }
    let back = match previous {
        Some(p) => format!("`{}` goes back to {p}; ", voice.cmd(&format!("rollback {}", inst.name))),
        None => String::new(),
    };
    println!(
        "{back}`{}` shows more (smoke_path in hhl.yaml sets the path checked)",
        voice.cmd(&format!("logs {}", inst.name))
    );
    false
}

/// `inst`'s branch against its live release, if it is a deploy target.
pub fn state_of(model: &Model, inst: &Instance) -> Option<(Repo, Deployment)> {
    let (repo, branch) = repos::source_of(model, inst)?;
    let pushed = release_info::heads(&repo.path).remove(&branch);
    let d = release_info::deployment(&inst.app_dir(), &repo.path, &branch, pushed);
    Some((repo, d))
}

/// Deploy the branch head of each of `insts` whose live release is not it (or whose
/// last reload is owed), as `ssh … deploy` and an up-to-date push do; `forced`: also
/// a branch head held back (`-o no-deploy`, a rollback). Returns (deployed, failed).
pub fn converge(model: &Model, insts: &[&Instance], forced: bool) -> Result<(usize, usize)> {
    let (mut deployed, mut failed) = (0, 0);
    for inst in insts {
        let Some((repo, d)) = state_of(model, inst) else {
            continue;
        };
        let Some(head) = d.pushed.as_deref() else {
            if forced {
                println!(
                    "{}: nothing pushed to branch `{}` of {} yet",
                    inst.name, d.branch, repo.name
                );
            }
            continue;
        };
        let wanted = if forced { d.ahead() } else { d.behind() };
        if !wanted && !d.reload_pending {
            if forced {
                println!("{}: {} (branch `{}`) is live", inst.name, short(head), d.branch);
            }
            continue;
        }
        println!(
            "{}: branch `{}` is at {}, the live release at {}{}: deploying {}",
            inst.name,
            d.branch,
            short(head),
            d.live.as_deref().map(short).unwrap_or("initial"),
            if d.reload_pending { " (its reload is owed)" } else { "" },
            short(head)
        );
        deployed += 1;
        // The head is live already and only its reload is owed (a deploy cut off after
        // its switch): the reload, not a second release of the same commit.
        let ok = if !d.ahead() {
            owed_reload(model, inst, &repo, head)?
        } else {
            server(model, &repo, inst, head, &PushOptions::default())?
        };
        if !ok {
            failed += 1;
        }
    }
    Ok((deployed, failed))
}

/// The reload a switched release is owed, then its record cleared; the release's
/// own record (who, which commit), if the cut-off deploy did not get to write it.
fn owed_reload(model: &Model, inst: &Instance, repo: &Repo, head: &str) -> Result<bool> {
    let app = inst.app_dir();
    let Some(record) = release::reload_pending(&app) else {
        return Ok(true);
    };
    let systemd = Systemd::connect()?;
    let ok = run_jobs(&systemd, model, vec![(inst.unit(), JobKind::Reload)], &inst.name, &None)?;
    if ok {
        release::reload_done(&app, &record)?;
        if let Some(id) = record.strip_prefix("deploy ") {
            if !release_info::recorded(&app, id) {
                let _ = release_info::record(&app, id, &repo.path, head);
            }
        }
        println!(
            "reloaded {}: release {} of {} is live",
            inst.name,
            record.trim_start_matches("deploy "),
            short(head)
        );
    }
    Ok(ok)
}

/// Run `jobs` (a reload of a stopped unit becomes a start) and report; on failure, say
/// how to go back.
fn run_jobs(
    systemd: &Systemd,
    model: &Model,
    mut jobs: Vec<(String, JobKind)>,
    name: &str,
    previous: &Option<String>,
) -> Result<bool> {
    // The pusher reads this: commands as they type them (`ssh hhl@server …`).
    let voice = crate::host::caller::voice(model);
    let units: Vec<String> = jobs.iter().map(|(u, _)| u.clone()).collect();
    let active = systemd.active_states(&units)?;
    for (unit, kind) in &mut jobs {
        if *kind == JobKind::Reload && !active.get(unit).is_some_and(|s| s.is_active()) {
            *kind = JobKind::Start;
        }
    }
    // A deploy's reload of a running nginx is a SIGHUP (see `systemd::hup`).
    let (hups, jobs): (Vec<_>, Vec<_>) = jobs
        .into_iter()
        .partition(|(u, k)| *k == JobKind::Reload && UnitName::parse(u).kind() == Some(Kind::Openresty));
    let hups: Vec<String> = hups.into_iter().map(|(u, _)| u).collect();
    let (mut outcomes, mut failed) = reload_by_hup(systemd, &hups)?;
    if !jobs.is_empty() {
        let t = Instant::now();
        let since = SystemTime::now();
        let done = systemd.run_jobs(&jobs)?;
        failed += report_since(&done, Some(since));
        println!("systemd: {} job(s) in {} ms", jobs.len(), t.elapsed().as_millis());
        outcomes.extend(done);
    }
    failed += crate::ops::ready::wait_for_ports(model, &outcomes, &voice);
    if failed > 0 {
        if let Some(p) = previous {
            println!(
                "the new release is live but its unit failed; `{}` goes back to {p}; `{}` shows why",
                voice.cmd(&format!("rollback {name}")),
                voice.cmd(&format!("logs {name}"))
            );
        }
        return Ok(false);
    }
    Ok(true)
}

/// Reload the running nginx `units` by SIGHUP to their masters and report each; those
/// systemd would not signal (polkit rules from before `kill` was granted: run
/// `hhlctl apply`) get a reload job instead. Returns the outcomes and how many failed.
/// A failure shows the journal lines logged since the SIGHUP, not older ones.
fn reload_by_hup(systemd: &Systemd, units: &[String]) -> Result<(Vec<JobOutcome>, usize)> {
    if units.is_empty() {
        return Ok((Vec::new(), 0));
    }
    let t = Instant::now();
    let since = SystemTime::now();
    let hupped = systemd.hup_nginx(units, HUP_WAIT)?;
    let ms = t.elapsed().as_millis();
    let mut failed = 0;
    for o in &hupped.outcomes {
        if o.ok() {
            println!("reloaded {} by SIGHUP to its master: new workers in {ms} ms", o.unit);
        } else {
            failed += 1;
            // nginx keeps its old workers when the new config does not load, but stops
            // them even when no new one could start (a fork refused: a task limit).
            let master = systemd
                .states(std::slice::from_ref(&o.unit))
                .ok()
                .and_then(|s| s.get(&o.unit).map(|s| s.main_pid))
                .unwrap_or(0);
            let serving = master != 0
                && crate::host::systemd::workers::children(&[master])
                    .get(&master)
                    .is_some_and(|w| !w.is_empty());
            let then = if serving {
                "so the old workers go on serving (nginx keeps them when its config does not load)"
            } else {
                "and its old workers are gone: the instance serves nothing until a reload succeeds (fix the cause, then `ssh <entry>@server deploy` or `reload`)"
            };
            eprintln!(
                "error: reloading {} failed: its master started no new workers within {} s after SIGHUP, {then}",
                o.unit,
                HUP_WAIT.as_secs()
            );
            eprintln!("  its journal since the SIGHUP (journalctl -u {}):", o.unit);
            let lines = crate::host::systemd::journal::lines_since(&o.unit, report::JOURNAL_LINES, Some(since));
            for line in lines.lines() {
                eprintln!("  | {line}");
            }
        }
    }
    let mut outcomes = hupped.outcomes;
    if !hupped.not_sent.is_empty() {
        let jobs: Vec<(String, JobKind)> = hupped.not_sent.into_iter().map(|(u, _)| (u, JobKind::Reload)).collect();
        let since = SystemTime::now();
        let done = systemd.run_jobs(&jobs)?;
        failed += report_since(&done, Some(since));
        outcomes.extend(done);
    }
    Ok((outcomes, failed))
}

fn deploy_lualib(model: &Model, repo: &Repo, u: &RefUpdate) -> Result<bool> {
    let t = Instant::now();
    let d = release::deploy(&repo.path, &u.new, &render::lib_app_dir(model), keep(model))
        .with_context(|| format!("deploying {} to {}", short(&u.new), model.paths.lua_lib_dir.display()))?;
    println!(
        "deployed {} to {} ({} file{}, release {}) in {} ms",
        short(&u.new),
        model.paths.lua_lib_dir.display(),
        d.files,
        if d.files == 1 { "" } else { "s" },
        d.id,
        t.elapsed().as_millis()
    );
    // Every OpenResty instance has the library on its lua_package_path.
    let systemd = Systemd::connect()?;
    let units: Vec<String> = model
        .instances
        .iter()
        .filter(|i| i.kind == Kind::Openresty)
        .map(|i| i.unit())
        .collect();
    let active = systemd.active_states(&units)?;
    let running: Vec<String> = units
        .into_iter()
        .filter(|u| active.get(u).is_some_and(|s| s.is_active()))
        .collect();
    let (_, failed) = reload_by_hup(&systemd, &running)?;
    if failed == 0 {
        release::reload_done(&render::lib_app_dir(model), &release::deploy_record(&d.id))?;
    }
    Ok(failed == 0)
}

/// Apply needs root: start the unit that runs `hhlctl apply --from-repo`, wait, and
/// show what it printed. A push that lands while an apply runs is merged into that
/// job by systemd, so go again until the pushed commit is the one applied.
fn apply_serverctrl(model: &Model, u: &RefUpdate) -> Result<bool> {
    let systemd = Systemd::connect()?;
    for _ in 0..3 {
        let t = Instant::now();
        let ran = remote_apply::apply(&systemd)?;
        remote_apply::print(&ran);
        let ok = ran.ok;
        let applied = remote_apply::applied_commit(model).unwrap_or_default();
        if ran.timed_out.is_some() {
            // Said by `print`: stopped midway, so not "as they were".
            return Ok(false);
        }
        if !ok {
            println!(
                "apply failed: the push is stored, the running instances are as they were. Fix it and push again."
            );
            return Ok(false);
        }
        if applied.trim() == u.new {
            println!("applied serverctrl {} in {} ms", short(&u.new), t.elapsed().as_millis());
            return Ok(true);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    println!(
        "serverctrl {} was not applied after 3 tries; `{}` applies it again",
        short(&u.new),
        crate::host::caller::voice(model).cmd("apply")
    );
    Ok(false)
}
