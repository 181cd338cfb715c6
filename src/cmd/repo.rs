//! `hhlctl repo init`: the bare repositories developers push to (through the entry
//! account: `git push hhl@server:socketserver`) and their hooks. Idempotent: history
//! is never touched; hooks are brought up to date. Everything inside git.root is done
//! as the entry account, which owns it: root never writes into a tree another user
//! can change. A logic server's repository that repo init creates gets the example
//! game on master's branch, deployed to master's instance: a fresh server serves
//! code. Repositories that were there before are never seeded.

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::core::example;
use crate::core::model::TemplateRef;
use crate::core::repos::{self, Repo, RepoKind, MAIN_BRANCH};
use crate::host::load::{self, Loaded};
use crate::host::{child, users};

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Create missing repositories and the entry account, install hooks.
    Init,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

pub fn run(config: &Path, args: Args) -> Result<i32> {
    let Action::Init = args.action;
    if !rustix::process::geteuid().is_root() {
        bail!("repo init needs root: it creates the entry account and git.root");
    }
    let loaded = load::load(config)?;
    let model = &loaded.model;
    match users::entry_state(&model.access, &model.paths.entry_home) {
        users::Entry::Foreign(why) => bail!("{why}"),
        users::Entry::Convert(_) => bail!(
            "unix user `{}` is not the entry account yet (an older hhlctl made it for another role); \
             run `hhlctl apply` first: it converts it",
            model.access.entry
        ),
        users::Entry::Missing | users::Entry::Ready => {}
    }
    for user in users::create_missing(&model.access, &model.paths.entry_home)? {
        println!("created unix user {user}");
    }
    let entry = &model.access.entry;
    root_dir(&model.git.root, entry)?;
    let hhlctl = std::env::current_exe().context("finding hhlctl's own path")?;
    let config = config
        .canonicalize()
        .with_context(|| format!("resolving {}", config.display()))?;
    for repo in repos::repos(model) {
        let created = init_one(&repo, entry)?;
        let server = match &repo.kind {
            RepoKind::Server(s) => Some(s.clone()),
            _ => None,
        };
        if created && server.is_some() {
            // Marked before anything else: a run killed from here on leaves the mark,
            // and the next run seeds the repository it made (and only that one).
            write_as(entry, &repo.path.join(SEED_PENDING), "")?;
        }
        crate::host::fault::point("repo:created");
        for hook in ["pre-receive", "post-receive"] {
            write_as(
                entry,
                &repo.path.join("hooks").join(hook),
                &repos::hook_script(&hhlctl, &config, hook),
            )?;
        }
        // Seeded when its branch is missing, not when just created: a run killed in
        // between leaves a repository without it, and the next run seeds it.
        if repo.kind == RepoKind::Serverctrl && !has_branch(&repo, entry, MAIN_BRANCH) {
            seed_serverctrl(&loaded, &repo, entry)?;
        }
        println!(
            "{} {}",
            if created { "created" } else { "updated" },
            repo.path.display()
        );
        if let Some(server) = server {
            if repo.path.join(SEED_PENDING).exists() {
                seed_example(&loaded, &repo, &server, entry, &hhlctl, &config)?;
            }
        }
    }
    println!(
        "push: git push {entry}@<server>:<repo> HEAD:<your name> (repos: {}); options: {}",
        repos::repos(model)
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        repos::PUSH_OPTIONS
    );
    Ok(0)
}

/// git.root: created by root (its parent is root's) as a 0700 directory of the entry
/// account. An existing one must be a real directory the entry account owns.
fn root_dir(root: &Path, entry: &str) -> Result<()> {
    let Some((uid, gid)) = users::lookup(entry) else {
        bail!("the entry account `{entry}` does not exist (users.create is off?)");
    };
    match std::fs::symlink_metadata(root) {
        Ok(m) if m.file_type().is_dir() && m.uid() == uid => return Ok(()),
        Ok(m) if m.file_type().is_dir() && m.uid() == 0 => {}
        Ok(_) => bail!(
            "{} is not a directory owned by `{entry}` or root (a symlink?); move it away and run `hhlctl repo init` again",
            root.display()
        ),
        Err(_) => std::fs::DirBuilder::new()
            .mode(0o700)
            .create(root)
            .with_context(|| format!("creating {}", root.display()))?,
    }
    // The directory is root's (just made, or left by an older hhlctl): hand it over
    // without following anything (lchown on a path in a root-owned parent).
    std::os::unix::fs::lchown(root, Some(uid), Some(gid)).with_context(|| format!("chown {}", root.display()))?;
    std::fs::set_permissions(root, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    Ok(())
}

fn git_as(entry: &str, repo: &Path, args: &[&str]) -> Result<String> {
    let mut cmd = users::as_user(entry, "git");
    cmd.arg("--git-dir").arg(repo);
    crate::host::git::run(cmd, args)
}

fn has_branch(repo: &Repo, entry: &str, branch: &str) -> bool {
    git_as(
        entry,
        &repo.path,
        &["rev-parse", "--verify", "--quiet", &format!("refs/heads/{branch}")],
    )
    .is_ok()
}

/// `path`'s content replaced atomically, written by `user`: a link planted at the
/// path or its temporary name is replaced (mv), never followed.
fn write_as(user: &str, path: &Path, text: &str) -> Result<()> {
    let out = child::output_with_input(
        users::as_user(user, "sh")
            .args([
                "-c",
                r#"set -e; umask 022; t="$1.tmp-$$"; rm -f "$t"; cat > "$t"; chmod 0755 "$t"; mv -fT "$t" "$1""#,
                "sh",
            ])
            .arg(path),
        child::USER_TOOLS,
        text.as_bytes().to_vec(),
    )?;
    if !out.status.success() {
        bail!("writing {} as {user} failed", path.display());
    }
    Ok(())
}

/// Returns whether the repository was created. `git init` runs every time: on an
/// existing repository it only fills in what is missing (a run killed inside `git init`
/// leaves a partial one) and never touches history.
fn init_one(repo: &Repo, entry: &str) -> Result<bool> {
    let path = &repo.path;
    let created = !path.join("HEAD").exists();
    adopt(path, entry)?;
    let out = child::output(
        users::as_user(entry, "git")
            .args(["init", "-q", "--bare", "--initial-branch", MAIN_BRANCH])
            .arg(path),
        child::GIT,
    )?;
    if !out.status.success() {
        bail!(
            "git init {} failed: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    git_as(entry, path, &["config", "receive.advertisePushOptions", "true"])?;
    // Objects of a refused push stay in git's quarantine and are dropped with it.
    git_as(entry, path, &["config", "receive.fsckObjects", "true"])?;
    Ok(created)
}

/// A repository an older hhlctl made (root's, group-writable by the push group, with
/// objects of every developer who pushed) becomes the entry account's, all of it:
/// git.root is the entry account's alone now. History is untouched.
fn adopt(path: &Path, entry: &str) -> Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    let Some((uid, gid)) = users::lookup(entry) else {
        bail!("the entry account `{entry}` does not exist");
    };
    if !meta.is_dir() || meta.uid() == uid {
        return Ok(());
    }
    let n = crate::host::reown::hand_over(path, (uid, gid))?;
    println!("adopted {} ({n} files) for the entry account {entry}", path.display());
    Ok(())
}

/// The mark of a logic server's repository that repo init created and has not seeded
/// yet (inside the repository, the entry account's).
const SEED_PENDING: &str = "hhl-seed.pending";

/// The example game (built in: `core::example`) committed as master's first commit
/// of a repository repo init made, then deployed to master's instance by the
/// post-receive hook, run as the entry account as a push would run it (identity
/// `root`: repo init is root's). If the hook's reload cannot happen (a host without
/// polkit), root reloads the instance. The mark goes last.
fn seed_example(loaded: &Loaded, repo: &Repo, server: &str, entry: &str, hhlctl: &Path, config: &Path) -> Result<()> {
    let model = &loaded.model;
    let zero = "0".repeat(40);
    let commit = match git_as(
        entry,
        &repo.path,
        &["rev-parse", "--verify", "--quiet", &format!("refs/heads/{MAIN_BRANCH}")],
    ) {
        // A run killed after the commit: deploy what it committed.
        Ok(c) => c,
        Err(_) => {
            let refs = git_as(entry, &repo.path, &["for-each-ref", "--count=1"])?;
            if !refs.is_empty() {
                // Someone pushed meanwhile: theirs stays, nothing is seeded.
                let _ = child::status(
                    users::as_user(entry, "rm").arg("-f").arg(repo.path.join(SEED_PENDING)),
                    child::USER_TOOLS,
                );
                return Ok(());
            }
            let feed = |args: &[&str], input: String| -> Result<String> {
                let mut cmd = users::as_user(entry, "git");
                cmd.arg("--git-dir")
                    .arg(&repo.path)
                    .env("GIT_AUTHOR_DATE", example::DATE)
                    .env("GIT_COMMITTER_DATE", example::DATE);
                let out = crate::host::git::feed(cmd, args, Some(input.into_bytes()))?;
                Ok(String::from_utf8_lossy(&out).trim().to_string())
            };
            // Blobs, then one tree per directory (one level: game/), then the root tree.
            let mut root: Vec<String> = Vec::new();
            let mut dirs: Vec<(String, Vec<String>)> = Vec::new();
            for (path, text) in example::GAME {
                let blob = feed(&["hash-object", "-w", "--stdin"], text.to_string())?;
                match path.split_once('/') {
                    Some((dir, name)) => {
                        let entry = format!("100644 blob {blob}\t{name}\n");
                        match dirs.iter_mut().find(|(d, _)| d == dir) {
                            Some((_, entries)) => entries.push(entry),
                            None => dirs.push((dir.to_string(), vec![entry])),
                        }
                    }
                    None => root.push(format!("100644 blob {blob}\t{path}\n")),
                }
            }
            for (dir, entries) in &dirs {
                let tree = feed(&["mktree"], entries.concat())?;
                root.push(format!("040000 tree {tree}\t{dir}\n"));
            }
            let tree = feed(&["mktree"], root.concat())?;
            // The fixed date (`feed` sets it): every host's `repo init` makes the same
            // commit, so master is one history across hosts.
            let commit = feed(
                &[
                    "-c",
                    "user.name=hhlctl",
                    "-c",
                    "user.email=hhlctl@localhost",
                    "commit-tree",
                    &tree,
                ],
                example::MESSAGE.to_string(),
            )?;
            // Only if master is still missing (the zero old value).
            git_as(
                entry,
                &repo.path,
                &["update-ref", &format!("refs/heads/{MAIN_BRANCH}"), &commit, &zero],
            )?;
            println!(
                "seeded {} with the example game ({} files) on {MAIN_BRANCH}",
                repo.path.display(),
                example::GAME.len()
            );
            commit
        }
    };
    if let Some(inst) = repos::instance_for(model, server, MAIN_BRANCH) {
        let out = child::output_with_input(
            users::as_user(entry, &hhlctl.to_string_lossy())
                .arg("--config")
                .arg(config)
                .args(["hook", "post-receive"])
                .current_dir(&repo.path)
                .env(crate::core::package::IDENTITY_ENV, "root")
                .env_remove("GIT_PUSH_OPTION_COUNT"),
            child::HOOK,
            format!("{zero} {commit} refs/heads/{MAIN_BRANCH}\n").into_bytes(),
        )
        .context("running the post-receive hook as the entry account")?;
        for line in String::from_utf8_lossy(&out.stdout)
            .lines()
            .chain(String::from_utf8_lossy(&out.stderr).lines())
        {
            println!("  {line}");
        }
        if !out.status.success() {
            println!("  reloading {} as root", inst.name);
            let reloaded = child::status(
                Command::new(hhlctl)
                    .arg("--config")
                    .arg(config)
                    .args(["reload", &inst.name]),
                child::HOOK,
            )?;
            if !reloaded.success() {
                bail!(
                    "the example game was committed to {}'s {MAIN_BRANCH} but {} did not reload\n  hint: see `hhlctl logs {}`, then run `hhlctl reload {}`",
                    repo.name,
                    inst.name,
                    inst.name,
                    inst.name
                );
            }
        }
    }
    let _ = child::status(
        users::as_user(entry, "rm").arg("-f").arg(repo.path.join(SEED_PENDING)),
        child::USER_TOOLS,
    );
    Ok(())
}

/// The first commit of serverctrl: the live hhl.yaml and the template files it names,
/// read by the entry account.
fn seed_serverctrl(loaded: &Loaded, repo: &Repo, entry: &str) -> Result<()> {
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
    let index = repo.path.join("hhl-seed.index");
    let run = |args: &[&str]| -> Result<String> {
        let mut cmd: Command = users::as_user(entry, "git");
        cmd.arg("--git-dir")
            .arg(&repo.path)
            .arg("--work-tree")
            .arg(dir)
            .args(["-c", "user.name=hhlctl", "-c", "user.email=hhlctl@localhost"])
            .env("GIT_INDEX_FILE", &index);
        crate::host::git::run(cmd, args)
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
    let _ = child::status(users::as_user(entry, "rm").arg("-f").arg(&index), child::USER_TOOLS);
    println!("seeded {} with {}", repo.path.display(), files.join(", "));
    Ok(())
}
