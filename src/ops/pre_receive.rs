//! pre-receive: refuse a push, before any ref moves, that is not the pusher's to make
//! or that would not work: objects and trees git can list (`push_checks`), Lua that
//! does not compile, a serverctrl commit that would not apply.

use std::path::Path;

use anyhow::Result;

use crate::core::access::{self, Action};
use crate::core::artifact::Content;
use crate::core::kind::Kind;
use crate::core::model::Model;
use crate::core::render;
use crate::core::repos::{RefUpdate, Repo, RepoKind, MAIN_BRANCH};
use crate::host::fsapply::{self, Ownership};
use crate::host::load::{self, Loaded};
use crate::host::lua_syntax::{self, Outcome};
use crate::host::release;
use crate::host::validate;
use crate::ops::push_checks;

pub fn run(loaded: &Loaded, repo: &Repo, updates: &[RefUpdate], me: &str) -> Result<i32> {
    let model = &loaded.model;
    let refusals: Vec<String> = updates
        .iter()
        .filter_map(|u| access::may(model, me, Action::Push { repo, update: u }).err())
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
        let code = repo.kind != RepoKind::Serverctrl;
        let new_branch = u.old.bytes().all(|b| b == b'0');
        // First the bounds, from git's own listings: nothing is diffed, extracted or
        // written before the tree that would deploy and the branch are known to fit.
        // A new code branch's entries are checked in the same listing. The listings
        // only read, each bounded (the tree's stops at its limit, the others list
        // objects once each), so they run side by side; their verdicts count in order.
        let (tree, branch, objects, foreign) = std::thread::scope(|s| {
            let branch = s.spawn(|| push_checks::branch_size(model, &repo.path, u));
            let objects = s.spawn(|| push_checks::objects(model, &repo.path, u));
            let foreign = s.spawn(|| foreign_objects(model, me, repo, u));
            let tree = push_checks::bounded_tree(model, &repo.path, u, code && new_branch);
            let panicked = "a push check panicked";
            (
                tree,
                branch.join().expect(panicked),
                objects.join().expect(panicked),
                foreign.join().expect(panicked),
            )
        });
        let mut problems = tree?;
        if problems.is_empty() {
            problems.extend(branch?);
        }
        if problems.is_empty() {
            problems = objects?;
        }
        if problems.is_empty() {
            problems.extend(foreign?);
        }
        // Code repositories: what changed on the branch (the tip it replaces passed
        // these checks); a new branch's whole tree was listed above.
        let changes = match repo.kind {
            RepoKind::Serverctrl => None,
            _ if !problems.is_empty() => None,
            _ => push_checks::changes(&repo.path, u)?,
        };
        if problems.is_empty() {
            if let Some(c) = &changes {
                problems = push_checks::changed_problems(c);
            }
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
    // Several hosts: the owner's host takes the update first, or nothing moves.
    if let RepoKind::Server(_) = repo.kind {
        for u in updates {
            // An owner on the move: its code follows it once the move is done.
            if let Some(why) = u.branch().and_then(|b| crate::ops::moving::under_way(model, b)) {
                eprintln!("refused: {why}");
                return Ok(1);
            }
            let Some(host) = u.branch().and_then(|b| model.elsewhere(b)) else {
                continue;
            };
            if let Err(why) = crate::ops::forward::push_ahead(model, host, repo, u, me)? {
                eprintln!("refused: {why}");
                return Ok(1);
            }
        }
    }
    Ok(0)
}

/// A push that names objects it neither brought nor may read (another developer's
/// commit or file, by id): refused, or they would be the pusher's to fetch.
fn foreign_objects(model: &Model, me: &str, repo: &Repo, u: &RefUpdate) -> Result<Option<String>> {
    let forwarded = std::env::var_os(crate::core::package::FORWARDED_ENV).is_some();
    if model.access.is_admin(me) || me == "root" || forwarded {
        return Ok(None);
    }
    let branches: Vec<&str> = match repo.kind {
        RepoKind::Server(_) => model.owners().collect(),
        _ => vec![MAIN_BRANCH],
    };
    let readable: Vec<String> = branches
        .into_iter()
        .filter(|b| access::may(model, me, Action::Read { repo, branch: b }).is_ok())
        .map(|b| format!("refs/heads/{b}"))
        .collect();
    let foreign = push_checks::foreign_objects(&repo.path, u, &readable)?;
    Ok(foreign.first().map(|first| {
        format!(
            "the push names {} object(s) it does not bring and you may not read (first {first}): \
             objects of branches hidden from you are not yours to reference; push your own files",
            foreign.len()
        )
    }))
}

/// Where a push's checks extract and test: `<repository>/hhl-scratch/`, the entry
/// account's own (0700), never the shared /tmp; the programs they run (luajit, nginx
/// -t) are pointed there too (TMPDIR). Bounded by the tree limits checked first.
pub const SCRATCH_DIR: &str = "hhl-scratch";

fn push_scratch(git_dir: &Path, what: &str) -> Result<release::Scratch> {
    let scratch = release::Scratch::new_in(&git_dir.join(SCRATCH_DIR), what)?;
    std::env::set_var("TMPDIR", &scratch.0);
    Ok(scratch)
}

/// Compile the `.lua` files the push changes (`changes`), or every one of a new branch.
fn check_lua(
    model: &Model,
    git_dir: &Path,
    u: &RefUpdate,
    changes: Option<&[push_checks::Changed]>,
) -> Result<Vec<String>> {
    if changes.is_some_and(|c| !c.iter().any(|c| c.path.ends_with(b".lua"))) {
        return Ok(Vec::new());
    }
    let scratch = push_scratch(git_dir, "check")?;
    let tree = scratch.0.join("tree");
    let nginx = scratch.0.join("nginx");
    std::fs::create_dir(&tree)?;
    std::fs::create_dir(&nginx)?;
    match changes {
        Some(c) => {
            push_checks::write_changed_lua(git_dir, c, &tree)?;
        }
        None => release::extract(git_dir, &u.new, &tree)?,
    }
    Ok(match lua_syntax::check(model.flavor, &tree, &nginx)? {
        Outcome::Clean(_) => Vec::new(),
        Outcome::Errors(e) => e,
    })
}

/// Everything apply would check, on the pushed tree, without touching the live system:
/// hhl.yaml and templates load and render, and every config that would change passes
/// `nginx -t` (rendered with its paths moved into a scratch directory).
fn check_serverctrl(live: &Loaded, git_dir: &Path, u: &RefUpdate) -> Result<Vec<String>> {
    let scratch = push_scratch(git_dir, "serverctrl")?;
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
