//! `hhlctl hook pre-receive|post-receive`: what the repositories' git hooks run, as the
//! entry account. It reads what git hands a hook (the ref updates on stdin, the push
//! options, the identity `hhlctl ssh` set) and runs the check (`ops::pre_receive`) or
//! the deploy (`ops::deploy`); git prints their output as `remote:` lines.

use std::io::BufRead;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{bail, Result};

use crate::core::repos::{self, RefUpdate};
use crate::host::load;
use crate::host::users;
use crate::ops::{deploy, pre_receive};

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
        Hook::PreReceive => {
            let code = pre_receive::run(&loaded, &repo, &updates, &identity()?)?;
            // For `hhlctl ssh`: refs will move, so a post-receive is owed; if none
            // notes its end, it was killed, however early.
            if code == 0 {
                note("accepted");
            }
            Ok(code)
        }
        Hook::PostReceive => {
            crate::host::fault::point("hook:post-receive");
            // For `hhlctl ssh`, which gives git push its exit code: a hook that began
            // and never ended was killed; one that ended failed says so.
            note("begin");
            let done = identity().and_then(|me| deploy::post_receive(&loaded, &repo, &updates, &options, &me));
            note(if matches!(done, Ok(0)) { "end ok" } else { "end failed" });
            done
        }
    }
}

/// Append `line` to the push's report file, if `hhlctl ssh` gave one
/// (`package::PUSH_REPORT_ENV`).
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
