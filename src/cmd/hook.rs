//! `hhlctl hook pre-receive|post-receive`: what the repositories' git hooks run, as the
//! pushing unix user. pre-receive refuses a push (before any ref moves) that is not
//! the pusher's to make or that would not work; post-receive deploys, reloads or
//! applies, and reports into the pusher's terminal (git prints it as `remote:`).

use std::io::BufRead;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::core::access::{self, Action};
use crate::core::artifact::Content;
use crate::core::model::{Kind, Model};
use crate::core::render;
use crate::core::repos::{self, PushOptions, RefUpdate, Repo, RepoKind, MAIN_BRANCH};
use crate::host::fsapply::{self, Ownership};
use crate::host::load::{self, Loaded};
use crate::host::lua_syntax::{self, Outcome};
use crate::host::release;
use crate::host::systemd::{JobKind, Systemd};
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
        Hook::PostReceive => {
            // For `hhlctl ssh`, which gives git push its exit code: a hook that began
            // and never ended was killed; one that ended failed says so.
            note("begin");
            let done = post_receive(&loaded, &repo, &updates, &options);
            note(if matches!(done, Ok(0)) { "end ok" } else { "end failed" });
            done
        }
    }
}

/// Append `line` to the push's report file, if `hhlctl ssh` gave one.
fn note(line: &str) {
    use std::io::Write;
    if let Some(path) = std::env::var_os(crate::core::package::PUSH_REPORT_ENV) {
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path);
        if let Ok(mut f) = file {
            let _ = f.write_all(format!("{line}\n").as_bytes());
        }
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
            // Held: apply and the next up-to-date push leave it; `deploy` deploys it.
            if let RepoKind::Server(server) = &repo.kind {
                if let Some(inst) = repos::instance_for(model, server, branch) {
                    release::hold(&inst.app_dir(), &u.new, "-o no-deploy")?;
                }
            }
            continue;
        }
        let ok = match &repo.kind {
            RepoKind::Server(server) => match repos::instance_for(model, server, branch) {
                Some(inst) => crate::ops::deploy::server(model, repo, inst, &u.new, opts)?,
                None => {
                    println!("{} {branch}: no instance to deploy to", repo.name);
                    true
                }
            },
            RepoKind::Lualib if branch == MAIN_BRANCH => crate::ops::deploy::lualib(model, repo, &u.new)?,
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

use crate::ops::deploy::short;

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
