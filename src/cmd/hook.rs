//! `hhlctl hook pre-receive|post-receive`: what the repositories' git hooks run, as the
//! pushing unix user. pre-receive refuses a push (before any ref moves) that is not
//! the pusher's to make or that would not work; post-receive deploys, reloads or
//! applies, and reports into the pusher's terminal (git prints it as `remote:`).

use std::io::BufRead;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::apply::report;
use crate::core::access::{self, Action};
use crate::core::artifact::Content;
use crate::core::model::{Kind, Model};
use crate::core::render;
use crate::core::repos::{self, PushOptions, RefUpdate, Repo, RepoKind, MAIN_BRANCH};
use crate::host::fsapply::{self, Ownership};
use crate::host::load::{self, Loaded};
use crate::host::lua_syntax::{self, Outcome};
use crate::host::release;
use crate::host::systemd::hup::HUP_WAIT;
use crate::host::systemd::{JobKind, JobOutcome, Systemd};
use crate::host::users;
use crate::host::validate;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Hook {
    PreReceive,
    PostReceive,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(value_enum)]
    pub hook: Hook,
}

use crate::core::package::{APPLIED_COMMIT, APPLY_LOG, APPLY_UNIT};

pub fn run(config: &Path, args: Args) -> Result<i32> {
    let loaded = load::load(config)?;
    let model = &loaded.model;
    let here = std::env::current_dir()?.canonicalize()?;
    let Some(repo) = repos::repos(model)
        .into_iter()
        .find(|r| r.path.canonicalize().is_ok_and(|p| p == here))
    else {
        bail!(
            "{} is not one of hhl's repositories (git.root in {} is {})",
            here.display(),
            config.display(),
            model.git.root.display()
        );
    };
    let updates: Vec<RefUpdate> = std::io::stdin()
        .lock()
        .lines()
        .map_while(|l| l.ok())
        .filter_map(|l| RefUpdate::parse(&l))
        .collect();
    let options = match repos::parse_push_options(&push_options()) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("refused: {e}");
            return Ok(1);
        }
    };
    match args.hook {
        Hook::PreReceive => pre_receive(&loaded, &repo, &updates),
        Hook::PostReceive => post_receive(&loaded, &repo, &updates, &options),
    }
}

/// Who is pushing: the identity `hhlctl ssh` set (clients cannot set it: see
/// `package::IDENTITY_ENV`), or root at the console.
fn identity() -> Result<String> {
    if let Ok(id) = std::env::var(crate::core::package::IDENTITY_ENV) {
        return Ok(id);
    }
    let me = users::current()?;
    if me == "root" {
        return Ok(me);
    }
    bail!("pushes come through ssh (`git push <entry>@server:<repo>`); unix user `{me}` pushed without an identity")
}

/// `git push -o X` arrives as GIT_PUSH_OPTION_<n>.
fn push_options() -> Vec<String> {
    let n: usize = std::env::var("GIT_PUSH_OPTION_COUNT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (0..n)
        .filter_map(|i| std::env::var(format!("GIT_PUSH_OPTION_{i}")).ok())
        .collect()
}

fn pre_receive(loaded: &Loaded, repo: &Repo, updates: &[RefUpdate]) -> Result<i32> {
    let model = &loaded.model;
    let me = identity()?;
    let refusals: Vec<String> = updates
        .iter()
        .filter_map(|u| access::may(model, &me, Action::Push { repo, update: u }).err())
        .collect();
    if !refusals.is_empty() {
        for r in &refusals {
            eprintln!("refused: {r}");
        }
        eprintln!("nothing was changed or deployed.");
        return Ok(1);
    }
    let mut failed = false;
    for u in updates.iter().filter(|u| !u.is_delete()) {
        let mut problems = crate::ops::push_checks::objects(model, &repo.path, u)?;
        // Code repositories: what changed on the branch (the tip it replaces passed
        // these checks), or the whole tree of a new branch.
        let changes = match repo.kind {
            RepoKind::Serverctrl => None,
            _ => crate::ops::push_checks::changes(&repo.path, u)?,
        };
        if problems.is_empty() && repo.kind != RepoKind::Serverctrl {
            problems = match &changes {
                Some(c) => crate::ops::push_checks::changed_problems(c),
                None => crate::ops::push_checks::tree(&repo.path, u)?,
            };
        }
        if !problems.is_empty() {
            eprintln!("refused: {} {}:", repo.name, u.refname);
            for p in problems {
                eprintln!("  {p}");
            }
            failed = true;
            continue;
        }
        let problems = match &repo.kind {
            RepoKind::Server(_) | RepoKind::Lualib => check_lua(model, &repo.path, u, changes.as_deref())?,
            RepoKind::Serverctrl if u.branch() == Some(MAIN_BRANCH) => check_serverctrl(loaded, &repo.path, u)?,
            RepoKind::Serverctrl => Vec::new(),
        };
        if !problems.is_empty() {
            eprintln!("refused: {} {}:", repo.name, u.refname);
            for p in problems {
                eprintln!("  {p}");
            }
            failed = true;
        }
    }
    if failed {
        eprintln!("nothing was changed or deployed; fix the errors above and push again.");
        return Ok(1);
    }
    Ok(0)
}

/// Compile the `.lua` files the push changes (`changes`), or every one of a new branch.
fn check_lua(
    model: &Model,
    git_dir: &Path,
    u: &RefUpdate,
    changes: Option<&[crate::ops::push_checks::Changed]>,
) -> Result<Vec<String>> {
    if changes.is_some_and(|c| !c.iter().any(|c| c.path.ends_with(b".lua"))) {
        return Ok(Vec::new());
    }
    let scratch = release::Scratch::new("check")?;
    let tree = scratch.0.join("tree");
    let nginx = scratch.0.join("nginx");
    std::fs::create_dir(&tree)?;
    std::fs::create_dir(&nginx)?;
    match changes {
        Some(c) => {
            crate::ops::push_checks::write_changed_lua(git_dir, c, &tree)?;
        }
        None => release::extract(git_dir, &u.new, &tree)?,
    }
    Ok(match lua_syntax::check(model.flavor, &tree, &nginx)? {
        Outcome::Clean(_) => Vec::new(),
        Outcome::Errors(e) => e.into_iter().map(|l| format!("Lua syntax: {l}")).collect(),
    })
}

/// Everything apply would check, on the pushed tree, without touching the live system:
/// hhl.yaml and templates load and render, and every config that would change passes
/// `nginx -t` (rendered with its paths moved into a scratch directory).
fn check_serverctrl(live: &Loaded, git_dir: &Path, u: &RefUpdate) -> Result<Vec<String>> {
    let scratch = release::Scratch::new("serverctrl")?;
    let tree = scratch.0.join("tree");
    std::fs::create_dir(&tree)?;
    release::extract(git_dir, &u.new, &tree)?;
    // Messages name the file as the pusher knows it, not the scratch copy.
    let relabel = |text: String| text.replace(&format!("{}/", tree.display()), "serverctrl:");
    let pushed_yaml = tree.join("hhl.yaml");
    // Load as if it were the live file, so the render compares like with like.
    // Bounded and UTF-8 checked like any hhl.yaml (a pushed file is untrusted input).
    let text = match load::read_bounded(&pushed_yaml, crate::core::bounds::MAX_CONFIG_BYTES) {
        Ok(bytes) => match crate::core::config::text_of(&pushed_yaml, bytes) {
            Ok(t) => t,
            Err(d) => return Ok(vec![relabel(d.to_string())]),
        },
        Err(e) if pushed_yaml.exists() => return Ok(vec![relabel(format!("hhl.yaml: {e:#}"))]),
        Err(_) => return Ok(vec!["serverctrl has no hhl.yaml at its top level".into()]),
    };
    // Loaded from the pushed tree, so its template files are the pushed ones.
    let staged = match load::load_text(pushed_yaml, text) {
        Ok(l) => l,
        Err(e) => return Ok(vec![relabel(diagnostic_text(&e))]),
    };
    // Rendered as if it were the live file, so it compares like with like.
    let artifacts = match render::render(&staged.model, &staged.templates, &live.source.path) {
        Ok(a) => a,
        Err(d) => return Ok(vec![relabel(d.to_string())]),
    };
    // A config the pusher cannot read counts as changed: it is tested.
    let changed: Vec<&str> = staged
        .model
        .instances
        .iter()
        .filter(|i| i.kind == Kind::Openresty)
        .filter(|i| {
            let new = artifacts.iter().find(|a| a.path == i.config_path).map(|a| &a.content);
            !matches!(new, Some(Content::File(b)) if std::fs::read(&i.config_path).ok().as_ref() == Some(b))
        })
        .map(|i| i.name.as_str())
        .collect();
    let root = scratch.0.join("root");
    let moved = staged.model.relocated(&root);
    let moved_artifacts =
        render::render(&moved, &staged.templates, &staged.source.path).map_err(anyhow::Error::from)?;
    for a in &moved_artifacts {
        fsapply::write_artifact(Path::new("/"), a, Ownership::Ignore)?;
    }
    let to_test: Vec<_> = moved
        .instances
        .iter()
        .filter(|i| changed.contains(&i.name.as_str()))
        .collect();
    let problems: Vec<String> = validate::test_all(&moved, &to_test, "nginx.conf", false)?
        .into_iter()
        .map(|f| f.replace(&format!("{}/", root.display()), "/"))
        .collect();
    if problems.is_empty() {
        println!(
            "serverctrl: hhl.yaml and templates are valid; {} changed nginx config(s) passed nginx -t",
            to_test.len()
        );
    }
    Ok(problems)
}

fn diagnostic_text(e: &anyhow::Error) -> String {
    match e.downcast_ref::<crate::core::error::Diagnostics>() {
        Some(d) => d.to_string(),
        None => format!("{e:#}"),
    }
}

fn post_receive(loaded: &Loaded, repo: &Repo, updates: &[RefUpdate], opts: &PushOptions) -> Result<i32> {
    let model = &loaded.model;
    let me = identity()?;
    let mut failed = 0;
    for u in updates.iter().filter(|u| !u.is_delete()) {
        let Some(branch) = u.branch() else { continue };
        // pre-receive refused these already; run by hand, this hook must not deploy them.
        if let Err(why) = access::may(model, &me, Action::Push { repo, update: u }) {
            eprintln!("not deployed: {why}");
            failed += 1;
            continue;
        }
        if opts.no_deploy {
            println!("{} {branch}: updated; not deployed (-o no-deploy)", repo.name);
            continue;
        }
        let ok = match &repo.kind {
            RepoKind::Server(server) => deploy_server(model, repo, server, branch, u, opts)?,
            RepoKind::Lualib if branch == MAIN_BRANCH => deploy_lualib(model, repo, u)?,
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

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(10)]
}

fn deploy_server(
    model: &Model,
    repo: &Repo,
    server: &str,
    branch: &str,
    u: &RefUpdate,
    opts: &PushOptions,
) -> Result<bool> {
    let Some(inst) = repos::instance_for(model, server, branch) else {
        println!("{} {branch}: no instance to deploy to", repo.name);
        return Ok(true);
    };
    let t = Instant::now();
    let d = release::deploy(&repo.path, &u.new, &inst.app_dir(), model.git.keep)
        .with_context(|| format!("deploying {} to {}", short(&u.new), inst.name))?;
    // For the console's deploys view; a deploy does not fail for want of it.
    let _ = crate::host::release_info::record_deployed(&inst.app_dir(), &d.id, &repo.path, &u.new, d.files, d.bytes);
    println!(
        "deployed {} to {} ({} file{}, release {}) in {} ms",
        short(&u.new),
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
            .filter(|i| i.developer == branch && kind.is_none_or(|k| i.kind == k))
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
    let ok = run_jobs(model, jobs, &inst.name, &d.previous)?;
    if ok {
        release::reload_done(&inst.app_dir(), &release::deploy_record(&d.id))?;
    }
    Ok(ok)
}

/// Run `jobs` (a reload of a stopped unit becomes a start) and report; on failure, say
/// how to go back.
fn run_jobs(model: &Model, mut jobs: Vec<(String, JobKind)>, name: &str, previous: &Option<String>) -> Result<bool> {
    let systemd = Systemd::connect()?;
    let units: Vec<String> = jobs.iter().map(|(u, _)| u.clone()).collect();
    let active = systemd.active_states(&units)?;
    for (unit, kind) in &mut jobs {
        if *kind == JobKind::Reload && active.get(unit).map(String::as_str) != Some("active") {
            *kind = JobKind::Start;
        }
    }
    // A deploy's reload of a running nginx is a SIGHUP (see `systemd::hup`).
    let (hups, jobs): (Vec<_>, Vec<_>) = jobs
        .into_iter()
        .partition(|(u, k)| *k == JobKind::Reload && u.starts_with("openresty@"));
    let hups: Vec<String> = hups.into_iter().map(|(u, _)| u).collect();
    let (mut outcomes, mut failed) = reload_by_hup(&systemd, &hups)?;
    if !jobs.is_empty() {
        let t = Instant::now();
        let done = systemd.run_jobs(&jobs)?;
        failed += report(&done);
        println!("systemd: {} job(s) in {} ms", jobs.len(), t.elapsed().as_millis());
        outcomes.extend(done);
    }
    failed += crate::ops::ready::wait_for_ports(model, &outcomes);
    if failed > 0 {
        if let Some(p) = previous {
            println!("the new release is live but its unit failed; `hhlctl rollback {name}` goes back to {p}; `hhlctl logs {name}` shows why");
        }
        return Ok(false);
    }
    Ok(true)
}

/// Reload the running nginx `units` by SIGHUP to their masters and report each; those
/// systemd would not signal (polkit rules from before `kill` was granted: run
/// `hhlctl apply`) get a reload job instead. Returns the outcomes and how many failed.
fn reload_by_hup(systemd: &Systemd, units: &[String]) -> Result<(Vec<JobOutcome>, usize)> {
    if units.is_empty() {
        return Ok((Vec::new(), 0));
    }
    let t = Instant::now();
    let hupped = systemd.hup_nginx(units, HUP_WAIT)?;
    let ms = t.elapsed().as_millis();
    let mut failed = 0;
    for o in &hupped.outcomes {
        if o.ok() {
            println!("reloaded {} by SIGHUP to its master: new workers in {ms} ms", o.unit);
        } else {
            failed += 1;
            eprintln!(
                "error: reloading {} failed: its master started no new workers within {} s after SIGHUP, so the old workers go on serving (nginx keeps them when its config does not load)",
                o.unit,
                HUP_WAIT.as_secs()
            );
            eprintln!("  last lines of its journal (journalctl -u {}):", o.unit);
            for line in crate::host::systemd::journal::last_lines(&o.unit, 15).lines() {
                eprintln!("  | {line}");
            }
        }
    }
    let mut outcomes = hupped.outcomes;
    if !hupped.not_sent.is_empty() {
        let jobs: Vec<(String, JobKind)> = hupped.not_sent.into_iter().map(|(u, _)| (u, JobKind::Reload)).collect();
        let done = systemd.run_jobs(&jobs)?;
        failed += report(&done);
        outcomes.extend(done);
    }
    Ok((outcomes, failed))
}

fn deploy_lualib(model: &Model, repo: &Repo, u: &RefUpdate) -> Result<bool> {
    let t = Instant::now();
    let d = release::deploy(&repo.path, &u.new, &render::lib_app_dir(model), model.git.keep)
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
        .filter(|u| active.get(u).map(String::as_str) == Some("active"))
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
    let record = model.paths.state_dir.join(APPLIED_COMMIT);
    for _ in 0..3 {
        let t = Instant::now();
        let outcome = systemd.run_jobs(&[(APPLY_UNIT.to_string(), JobKind::Start)])?;
        let log = std::fs::read_to_string(APPLY_LOG).unwrap_or_default();
        for line in log.lines() {
            println!("apply: {line}");
        }
        // A oneshot that finished is inactive; one that failed is `failed`.
        let ok = outcome.iter().all(|o| o.ok() || o.active_state == "inactive");
        let applied = std::fs::read_to_string(&record).unwrap_or_default();
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
        "serverctrl {} was not applied after 3 tries; run `systemctl start {APPLY_UNIT}`",
        short(&u.new)
    );
    Ok(false)
}
