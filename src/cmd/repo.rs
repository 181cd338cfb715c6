//! `hhlctl repo init`: the bare repositories developers push to, their hooks, and the
//! group that may push. Idempotent: history is never touched; hooks and membership
//! are brought up to date.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::fsapply;
use crate::git;
use crate::load::{self, Loaded};
use crate::model::TemplateRef;
use crate::release::Scratch;
use crate::repos::{self, Repo, RepoKind, MAIN_BRANCH};
use crate::users;

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Create missing repositories, install hooks, set up the push group.
    Init,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

pub fn run(config: &Path, args: Args) -> Result<i32> {
    let Action::Init = args.action;
    if unsafe { libc::geteuid() } != 0 {
        bail!("repo init needs root: it creates a group, repositories and hooks under git.root");
    }
    let loaded = load::load(config)?;
    let model = &loaded.model;
    for user in users::create_missing(&model.access)? {
        println!("created unix user {user}");
    }
    let group = &model.git.group;
    if users::ensure_group(group)? {
        println!("created group {group}");
    }
    // Everybody who pushes: developers and admins.
    let pushers = model
        .developers
        .iter()
        .map(|d| model.access.user_of(d).to_string())
        .chain(model.access.admins.iter().cloned());
    for user in pushers {
        if users::add_to_groups(&user, std::slice::from_ref(group))? {
            println!("added {user} to {group}");
        }
    }
    let hhlctl = std::env::current_exe().context("finding hhlctl's own path")?;
    let config = config
        .canonicalize()
        .with_context(|| format!("resolving {}", config.display()))?;
    for repo in repos::repos(model) {
        let created = init_one(&repo, group)?;
        crate::fault::point("repo:created");
        let hooks = repo.path.join("hooks");
        for gone in fsapply::clear_temps(&hooks) {
            println!("removed {}, left by an interrupted run", gone.display());
        }
        for hook in ["pre-receive", "post-receive"] {
            fsapply::write_file(
                &repo.path.join("hooks").join(hook),
                repos::hook_script(&hhlctl, &config, hook).as_bytes(),
                0o755,
            )?;
        }
        // Seeded when its branch is missing, not when just created: a run killed in
        // between leaves a repository without it, and the next run seeds it.
        if repo.kind == RepoKind::Serverctrl && !has_branch(&repo, MAIN_BRANCH) {
            seed_serverctrl(&loaded, &repo)?;
        }
        println!(
            "{} {}",
            if created { "created" } else { "updated" },
            repo.path.display()
        );
    }
    println!(
        "push: git push <clone of {}/<server>.git> HEAD:<your name>; options: {}",
        model.git.root.display(),
        repos::PUSH_OPTIONS
    );
    Ok(0)
}

fn has_branch(repo: &Repo, branch: &str) -> bool {
    git::run(
        git::at(&repo.path),
        &["rev-parse", "--verify", "--quiet", &format!("refs/heads/{branch}")],
    )
    .is_ok()
}

/// Returns whether the repository was created. `git init` runs every time: on an
/// existing repository it only fills in what is missing (a run killed inside `git init`
/// leaves a partial one) and never touches history.
fn init_one(repo: &Repo, group: &str) -> Result<bool> {
    let path = &repo.path;
    let created = !path.join("HEAD").exists();
    {
        let out = Command::new("git")
            .args(["init", "-q", "--bare", "--shared=0660", "--initial-branch", MAIN_BRANCH])
            .arg(path)
            .output()
            .context("running git init")?;
        if !out.status.success() {
            bail!(
                "git init {} failed: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    git::run(git::at(path), &["config", "receive.advertisePushOptions", "true"])?;
    // The pushers' git refuses a repository another user owns unless it is declared safe.
    let s = path.display().to_string();
    let safe = Command::new("git")
        .args(["config", "--system", "--get-all", "safe.directory"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().any(|l| l == s))
        .unwrap_or(false);
    if !safe {
        let st = Command::new("git")
            .args(["config", "--system", "--add", "safe.directory", &s])
            .status()
            .context("running git config --system")?;
        if !st.success() {
            bail!("could not add {s} to git's system safe.directory list");
        }
    }
    let st = Command::new("chgrp").args(["-R", group]).arg(path).status()?;
    if !st.success() {
        bail!("chgrp -R {group} {} failed", path.display());
    }
    Ok(created)
}

/// The first commit of serverctrl: the live hhl.yaml and the template files it names.
fn seed_serverctrl(loaded: &Loaded, repo: &Repo) -> Result<()> {
    let dir = loaded.source.dir();
    let mut files = vec![loaded
        .source
        .path
        .file_name()
        .context("hhl.yaml")?
        .to_string_lossy()
        .into_owned()];
    for inst in &loaded.model.instances {
        if let TemplateRef::File(p) = &inst.template {
            if let Ok(rel) = p.strip_prefix(dir) {
                let rel = rel.display().to_string();
                if !files.contains(&rel) {
                    files.push(rel);
                }
            }
        }
    }
    let index = Scratch::new("seed")?;
    let run = |args: &[&str]| -> Result<String> {
        let mut cmd = git::at(&repo.path);
        cmd.arg("--work-tree")
            .arg(dir)
            .args(["-c", "user.name=hhlctl", "-c", "user.email=hhlctl@localhost"])
            .env("GIT_INDEX_FILE", index.0.join("index"));
        git::run(cmd, args)
    };
    let mut add = vec!["add", "--"];
    add.extend(files.iter().map(String::as_str));
    run(&add)?;
    let tree = run(&["write-tree"])?;
    let commit = run(&[
        "commit-tree",
        &tree,
        "-m",
        "hhl.yaml and templates, as found by `hhlctl repo init`",
    ])?;
    run(&["update-ref", &format!("refs/heads/{MAIN_BRANCH}"), &commit])?;
    let _ = Command::new("chgrp")
        .args(["-R", &loaded.model.git.group])
        .arg(&repo.path)
        .status();
    println!("seeded {} with {}", repo.path.display(), files.join(", "));
    Ok(())
}
