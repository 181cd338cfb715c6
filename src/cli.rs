//! Command-line arguments (clap derive) and dispatch.

use std::path::PathBuf;

use anyhow::Result;
use clap::{CommandFactory, Parser, Subcommand};

use crate::cmd;
use crate::core::error::Diagnostics;
use crate::core::package::DEFAULT_CONFIG;
use crate::core::systemd_types::JobKind;

/// Per-developer OpenResty and Redis instances on one shared development server.
///
/// hhlctl reads one declarative file, hhl.yaml (developers, servers, Redis, and each
/// developer's overrides of master's values), renders every instance's configuration
/// from handlebars templates, and runs each instance as a systemd unit:
/// openresty@<server>-<developer>.service and redis@<port>.service.
///
/// Start with `hhlctl plan` to see the instances and what would change, then
/// `hhlctl render --out DIR` to inspect every generated file, then `hhlctl apply`.
///
/// Developers are ssh keys (hhl.yaml's `keys:`), not unix users: through the one
/// entry account (`hhl`) they deploy with `git push hhl@server:socketserver
/// HEAD:dev1`, control their own instances (`ssh hhl@server restart
/// socketserver-dev1`), read their logs (`ssh hhl@server logs`) and get a sign-in link
/// for the console (`ssh hhl@server web`). See hhl-ssh(7) and hhl.yaml(5).
#[derive(Debug, Parser)]
#[command(name = "hhlctl", version = crate::core::version::long(), propagate_version = true, max_term_width = 100)]
pub struct Arguments {
    /// The hhl.yaml to read.
    #[arg(long, short, global = true, env = "HHL_CONFIG", default_value = DEFAULT_CONFIG, value_name = "FILE")]
    pub config: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write every generated file under DIR, at the path it would have on the host.
    ///
    /// A dry run anyone can inspect and diff: nothing outside DIR is touched. If
    /// hhl.yaml or a template has errors, all of them are reported and nothing is
    /// written.
    #[command(after_help = "Example:\n  hhlctl -c examples/hhl.yaml render --out /tmp/hhl && find /tmp/hhl -type f")]
    Render(cmd::render::Args),

    /// Show the instances and which files would be added, changed or removed.
    ///
    /// Compares what hhl.yaml renders to with what is on disk (under --root) and with
    /// what hhlctl generated last time. Changes nothing.
    #[command(
        after_help = "Example:\n  hhlctl -c examples/hhl.yaml plan --root /tmp/empty\n  hhlctl plan --json | jq '.instances[].unit'"
    )]
    Plan(cmd::plan::Args),

    /// Make the host match hhl.yaml: write configs and units, start, reload, stop.
    ///
    /// Renders everything, checks every new or changed nginx config with `nginx -t`,
    /// and only then writes files (atomically), runs daemon-reload, starts new
    /// instances, reloads changed nginx instances gracefully, restarts changed Redis
    /// instances or changed units, and stops and disables removed ones. A second apply
    /// with no change touches nothing. If any check fails, nothing on disk and nothing
    /// running changes.
    #[command(after_help = "Example:\n  hhlctl plan && hhlctl apply")]
    Apply(cmd::apply::Args),

    /// One row per instance: state, PID, memory, uptime, restarts, and whether its port answers.
    ///
    /// Read from systemd over D-Bus, so it agrees with systemctl. Exits 1 when any
    /// shown instance is unhealthy (not active, or its port does not answer).
    #[command(
        after_help = "Example:\n  hhlctl status --dev dev1\n  hhlctl status --json | jq '.[] | select(.healthy | not)'"
    )]
    Status(cmd::status::Args),

    /// Start instances and wait until they are up.
    Start(crate::ops::select::Selection),
    /// Stop instances (gracefully) and wait until they are down.
    Stop(crate::ops::select::Selection),
    /// Restart instances and wait until they are up again.
    Restart(crate::ops::select::Selection),
    /// Reload instances gracefully (nginx: config test, then HUP).
    Reload(crate::ops::select::Selection),

    /// Show an instance's journal (nginx errors, Lua ngx.log, Redis).
    #[command(after_help = "Example:\n  hhlctl logs socketserver-dev1 -f")]
    Logs(cmd::logs::Args),

    /// Set up the git repositories developers push to (run as root, again after changes).
    ///
    /// Creates the ssh entry account (users.entry) and, under git.root, owned by it,
    /// one bare repository per logic server, `serverctrl` (seeded with hhl.yaml and its
    /// templates) and `lualib`, with hooks that run `hhlctl hook`. A logic server's
    /// repository it creates gets the example game on master, deployed to master's
    /// instance. Re-running it updates the hooks and never touches history.
    #[command(after_help = "Example:
  hhlctl repo init
  # as dev1 (an identity in keys:), on their own machine:
  git clone hhl@server:socketserver && cd socketserver
  git push origin HEAD:dev1            # deploy to socketserver-dev1, graceful reload
  git push -o restart origin HEAD:dev1 # ... and restart instead
  git push -o restart=redis origin HEAD:dev1
  git push -o no-deploy origin HEAD:dev1")]
    Repo(cmd::repo::Args),

    /// Go back to the previous release of an instance's code, and reload it.
    ///
    /// Each deploy keeps its release (git.keep of them); rollback points `src` at the
    /// one before the current one. Developers roll back their own instances with `ssh
    /// hhl@server rollback INSTANCE`.
    #[command(after_help = "Example:
  hhlctl rollback socketserver-dev1")]
    Rollback(cmd::rollback::Args),

    /// The console: developers' instances, deploys and logs in a browser.
    ///
    /// `serve` is what hhl-web.service runs (on 127.0.0.1:8080); `link` prints a
    /// one-time sign-in link; `passwd` sets an identity's password (only a salted
    /// argon2id hash is stored). Developers see their own instances, admins all. A
    /// developer reaches it through the ssh forward their key allows (`ssh -N -L
    /// 8080:127.0.0.1:8080 hhl@server`), where the link `ssh hhl@server web` prints
    /// opens; or put it behind a proxy and write its address to /etc/hhl/web.url.
    #[command(
        after_help = "Example:\n  systemctl enable --now hhl-web.service\n  hhlctl web link dev1     # root; a developer runs `ssh hhl@server web`\n  printf '%s\\n' 's3cret-pass' | hhlctl web passwd dev1   # optional"
    )]
    Web(cmd::web::Args),

    /// What sshd runs for each key in the entry account's authorized_keys; internal.
    ///
    /// Reads SSH_ORIGINAL_COMMAND (git-receive-pack, git-upload-pack, or one of the
    /// developer commands: `ssh <entry>@server help`) and runs it for IDENTITY when
    /// hhl.yaml allows it.
    #[command(hide = true)]
    Ssh(crate::ssh::dispatch::Args),

    /// Several hosts: which answer, the primary's peer key, the retry of owed applies.
    ///
    /// With `hosts:` in hhl.yaml, the primary takes every push and apply and passes
    /// each on to the host it is for, over ssh with its peer key (the host key pinned
    /// in hhl.yaml). A host that does not answer keeps running what it last applied;
    /// the primary retries it (hhl-hosts-sync.timer) and names it until it answers.
    #[command(after_help = "Example:
  hhlctl hosts key          # on the primary: paste as its peer_key: in hhl.yaml
  hhlctl hosts              # each host: answers or not, applied commit
  hhlctl hosts sync --now   # push the owed apply to hosts that missed it")]
    Hosts(cmd::hosts::Args),

    /// Move an owner (its instances, Redis data and secret) to another host.
    ///
    /// Runs as root on the primary of several hosts. The owner's instances stop on the
    /// host it leaves (Redis saves its data); that host's root oneshot copies the
    /// Redis data and secret out, the new host's puts them in place, checked against
    /// one checksum; serverctrl gets a commit that changes `placement:` and is applied
    /// everywhere, so the new host starts the owner's instances with the same ports and
    /// the old host stops and disables them; the owner's branches are deployed on the
    /// new host. Nothing is deleted on the old host: the report names what is left
    /// there, with each step's time.
    ///
    /// Each step is recorded in <state_dir>/peer/move-OWNER.json as it ends: after a
    /// crash or a host that did not answer, run the same command again and it resumes
    /// (before the placement commit it takes the data again, since the old host may
    /// have run the owner meanwhile). Until then `--abandon` starts the owner's
    /// instances again where they were.
    #[command(after_help = "Example:
  hhlctl move dev2 --to hhl3      # on the primary; prints each step and a report
  hhlctl move dev2 --to hhl3      # again after an error: resumes where it stopped
  hhlctl move dev2 --abandon      # before the placement commit: back as it was")]
    Move(cmd::moving::Args),

    /// What the package's hhl-redis-export@ and hhl-redis-import@ units run as root; internal.
    #[command(name = "redis-data", hide = true)]
    RedisData(cmd::redis_data::Args),

    /// What the primary's peer key runs on the other hosts; internal.
    #[command(hide = true)]
    Peer(crate::ssh::peer::Args),

    /// What git hooks run (pre-receive, post-receive); not for direct use.
    #[command(hide = true)]
    Hook(cmd::hook::Args),

    /// Write the man pages and shell completions into DIR (for packaging).
    #[command(name = "generate-assets", hide = true)]
    GenerateAssets(cmd::assets::Args),

    /// Convert an original serverctrl directory into hhl.yaml and handlebars templates.
    ///
    /// Reads nginx.<server>.templ.conf with nginx.<server>.sub.py, and redis.templ.conf
    /// with redis.sub.py ($NAME placeholders, Python dict literals: parsed, never run),
    /// and writes hhl.yaml plus templates/*.hbs into --out.
    #[command(
        name = "import-legacy",
        after_help = "Example:\n  hhlctl import-legacy /srv/serverctrl --out /tmp/imported\n  hhlctl -c /tmp/imported/hhl.yaml plan"
    )]
    ImportLegacy(cmd::import::Args),
}

/// Run hhlctl with the process's arguments; returns the exit code.
pub fn run() -> i32 {
    let args = Arguments::parse();
    match dispatch(args) {
        Ok(code) => code,
        Err(e) => {
            report(&e);
            1
        }
    }
}

/// Run the chosen subcommand; returns the exit code.
fn dispatch(args: Arguments) -> Result<i32> {
    match args.command {
        Command::Render(a) => cmd::render::run(&args.config, a),
        Command::Plan(a) => cmd::plan::run(&args.config, a),
        Command::ImportLegacy(a) => cmd::import::run(a),
        Command::Apply(a) => cmd::apply::run(&args.config, a),
        Command::Status(a) => cmd::status::run(&args.config, a),
        Command::Start(s) => cmd::control::run(&args.config, JobKind::Start, s),
        Command::Stop(s) => cmd::control::run(&args.config, JobKind::Stop, s),
        Command::Restart(s) => cmd::control::run(&args.config, JobKind::Restart, s),
        Command::Reload(s) => cmd::control::run(&args.config, JobKind::Reload, s),
        Command::Logs(a) => cmd::logs::run(&args.config, a),
        Command::GenerateAssets(a) => cmd::assets::run(a, Arguments::command()),
        Command::Repo(a) => cmd::repo::run(&args.config, a),
        Command::Hook(a) => cmd::hook::run(&args.config, a),
        Command::Ssh(a) => crate::ssh::dispatch::run(&args.config, a),
        Command::Hosts(a) => cmd::hosts::run(&args.config, a),
        Command::Peer(a) => crate::ssh::peer::run(&args.config, a),
        Command::Move(a) => cmd::moving::run(&args.config, a),
        Command::RedisData(a) => cmd::redis_data::run(&args.config, a),
        Command::Rollback(a) => cmd::rollback::run(&args.config, a),
        Command::Web(a) => cmd::web::run(&args.config, a),
    }
}

fn report(e: &anyhow::Error) {
    match e.downcast_ref::<Diagnostics>() {
        Some(d) => eprint!("{d}"),
        None => eprintln!("error: {e:#}"),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        super::Arguments::command().debug_assert();
    }
}
