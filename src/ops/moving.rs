//! `hhlctl move OWNER --to HOST`, on the primary, as root: an owner's instances, Redis
//! data and secret go from one host to another, with the same ports. Its steps
//! (`core::moving::Step`) run in order, each recorded in a journal once done, so a
//! rerun after a crash resumes (see `Journal::resume_at`); each is idempotent.
//!
//! It keeps the hosts' trust rules: the primary reaches the others only through its
//! peer verbs (`as root stop …`, `redis-export`, `redis-import`, serverctrl pushes), and
//! what needs root on a host is done there by the package's own oneshots
//! (hhl-redis-export@, hhl-redis-import@) or by that host's own apply of the serverctrl
//! commit that changes `placement:`. Nothing of the owner's is deleted on the old host:
//! the report names what is left there.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

use crate::core::kind::Kind;
use crate::core::model::hosts::HostSpec;
use crate::core::model::{Instance, Model};
use crate::core::moving::{self, Journal, Step, STEPS};
use crate::core::peers::Pong;
use crate::core::redis_bundle::{self as bundle, Receipt};
use crate::core::repos::{self, RefUpdate, RepoKind, MAIN_BRANCH, SERVERCTRL};
use crate::core::systemd_types::JobKind;
use crate::host::peer;
use crate::host::{fault, fsapply, load, users};

/// The journal of `owner`'s move, on the primary.
pub fn journal_path(model: &Model, owner: &str) -> PathBuf {
    model.paths.state_dir.join(format!("peer/move-{owner}.json"))
}

/// The bundle on its way through the primary (root's, 0600).
fn staging(model: &Model, owner: &str) -> PathBuf {
    model.paths.state_dir.join(format!("peer/move-{owner}.bundle"))
}

/// The move of `owner` under way, if any (its journal).
pub fn load_journal(model: &Model, owner: &str) -> Result<Option<Journal>> {
    let path = journal_path(model, owner);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map(Some).with_context(|| {
            format!(
                "{} is not a move's journal; hhlctl writes it after every step of `hhlctl move`. Look at it, then delete it to start over",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// The move of `owner` under way, as a sentence for whoever asks about its instances
/// meanwhile (`None`: no move).
pub fn under_way(model: &Model, owner: &str) -> Option<String> {
    // Names come from requests: only an owner's can name a journal.
    crate::ops::redis_data::known_owner(model, owner).ok()?;
    let j = load_journal(model, owner).ok()??;
    Some(format!(
        "{owner} is being moved from {} to {} by an admin (steps done: {}); try again once it has finished",
        j.from,
        j.to,
        j.done_names()
    ))
}

fn store(model: &Model, j: &Journal) -> Result<()> {
    let path = journal_path(model, &j.owner);
    fsapply::write_file(&path, serde_json::to_string_pretty(j)?.as_bytes(), 0o644)
        .with_context(|| format!("writing {}", path.display()))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn secs(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

fn short(c: &str) -> &str {
    &c[..c.len().min(12)]
}

/// One run of a move.
struct Move<'a> {
    config: &'a Path,
    model: &'a Model,
    here: String,
    from: &'a HostSpec,
    to: &'a HostSpec,
    journal: Journal,
}

impl Move<'_> {
    fn owner(&self) -> &str {
        &self.journal.owner
    }

    fn instances(&self) -> Vec<&Instance> {
        self.model
            .instances
            .iter()
            .filter(|i| i.developer == self.owner())
            .collect()
    }

    fn names(&self) -> Vec<String> {
        self.instances().iter().map(|i| i.name.clone()).collect()
    }

    fn redis(&self) -> Option<&Instance> {
        crate::core::redis_acl::of(self.model, self.owner())
    }

    fn is_here(&self, h: &HostSpec) -> bool {
        h.name == self.here
    }

    /// Ask `h` (not this host) a peer verb; its failure named.
    fn ask(&self, h: &HostSpec, line: &str, deadline: crate::host::child::Deadline) -> Result<String> {
        let a = peer::ask(self.model, h, line, deadline)?;
        if !a.ok() {
            let said = String::from_utf8_lossy(&a.output.stdout).trim().to_string();
            bail!(
                "host {} ({}): `{line}`: {}{}",
                h.name,
                h.address,
                crate::ops::hosts::failure(&a),
                if said.is_empty() {
                    String::new()
                } else {
                    format!("\n{said}")
                }
            );
        }
        Ok(a.stdout())
    }

    fn echo(h: &HostSpec, text: &str) {
        for l in text.lines().filter(|l| !l.trim().is_empty()) {
            println!("  {}: {l}", h.name);
        }
    }

    /// Keys in the owner's Redis on `h` (INFO keyspace), if it answers.
    fn keys_on(&self, h: &HostSpec) -> Result<u64> {
        let owner = self.owner();
        let Some(inst) = self.redis() else { return Ok(0) };
        if self.is_here(h) {
            let secret = crate::host::secrets::read(self.model, owner).context("no Redis secret here")?;
            let reply = crate::host::redis_client::run(inst.port, &secret, &[b"INFO".to_vec(), b"keyspace".to_vec()])?;
            return Ok(moving::keys_in_info(&crate::core::redis_cmd::show(&reply)));
        }
        let out = self.ask(h, &format!("as root redis --owner {owner} INFO keyspace"), peer::ASK)?;
        Ok(moving::keys_in_info(&out))
    }

    fn step(&mut self, s: Step) -> Result<()> {
        match s {
            Step::Stop => self.stop(),
            Step::Export => self.export(),
            Step::Import => self.import(),
            Step::Commit => self.commit(),
            Step::Apply => self.apply(),
            Step::Code => self.code(),
            Step::Verify => self.verify(),
        }
    }

    fn stop(&mut self) -> Result<()> {
        if self.journal.keys_before.is_none() {
            self.journal.keys_before = self.keys_on(self.from).ok();
        }
        let names = self.names();
        if names.is_empty() {
            println!("  {} has no instances", self.owner());
            return Ok(());
        }
        if self.is_here(self.from) {
            let chosen = self.instances();
            let done = crate::ops::act::run(self.model, &chosen, JobKind::Stop).map_err(|e| anyhow::anyhow!("{e}"))?;
            if crate::ops::report::print(&done) > 0 {
                bail!("not every instance of {} stopped here (see above)", self.owner());
            }
        } else {
            let out = self.ask(self.from, &format!("as root stop {}", names.join(" ")), peer::ACT)?;
            Self::echo(self.from, &out);
        }
        Ok(())
    }

    fn export(&mut self) -> Result<()> {
        let owner = self.owner().to_string();
        let Some(inst) = self.redis() else {
            println!("  {owner} has no Redis: no data to move");
            return Ok(());
        };
        let port = inst.port;
        let staged = staging(self.model, &owner);
        let (checksum, files, bytes) = if self.is_here(self.from) {
            let e = crate::ops::redis_data::export_here(self.model, &owner, &staged, 0o600, None)?;
            for s in &e.skipped {
                println!("  left out {s}");
            }
            (e.checksum, e.files, e.bytes)
        } else {
            let a = peer::fetch(
                self.model,
                self.from,
                &format!("redis-export {owner}"),
                &staged,
                peer::TRANSFER,
            )?;
            if !a.ok() {
                let _ = std::fs::remove_file(&staged);
                bail!(
                    "host {} ({}): `redis-export {owner}`: {}",
                    self.from.name,
                    self.from.address,
                    crate::ops::hosts::failure(&a)
                );
            }
            let v = crate::host::redis_data::verify(&staged, 0, &owner, port)?;
            (v.checksum, v.header.files.len(), v.header.total())
        };
        if let Some(before) = self.journal.checksum.as_deref().filter(|c| *c != checksum) {
            println!(
                "  the data on {} changed since the earlier run (checksum {} then): taking this copy",
                self.from.name,
                short(before)
            );
        }
        println!(
            "  {files} file(s), {bytes} bytes and the secret out of {}; checksum {}",
            self.from.name,
            short(&checksum)
        );
        self.journal.checksum = Some(checksum);
        self.journal.bytes = Some(bytes);
        Ok(())
    }

    fn import(&mut self) -> Result<()> {
        let owner = self.owner().to_string();
        let Some(want) = self.journal.checksum.clone() else {
            println!("  {owner} has no Redis: no data to move");
            return Ok(());
        };
        let staged = staging(self.model, &owner);
        let r: Receipt = if self.is_here(self.to) {
            crate::ops::redis_data::import_here(self.model, &owner, &staged, 0)?
        } else {
            let a = peer::send(
                self.model,
                self.to,
                &format!("redis-import {owner}"),
                &staged,
                peer::TRANSFER,
            )?;
            if !a.ok() {
                bail!(
                    "host {} ({}): `redis-import {owner}`: {}",
                    self.to.name,
                    self.to.address,
                    crate::ops::hosts::failure(&a)
                );
            }
            let out = a.stdout();
            serde_json::from_str(out.lines().last().unwrap_or("")).with_context(|| {
                format!(
                    "host {}: `redis-import {owner}` answered no receipt: {out}",
                    self.to.name
                )
            })?
        };
        if r.checksum != want {
            bail!(
                "host {} placed data with checksum {}, not the {} that came out of {}: run the move again",
                self.to.name,
                r.checksum,
                want,
                self.from.name
            );
        }
        println!(
            "  {} on {}: {} file(s), {} bytes; checksum {} verified",
            if r.already { "already in place" } else { "in place" },
            self.to.name,
            r.files,
            r.bytes,
            short(&r.checksum)
        );
        if let Some(k) = &r.kept {
            println!(
                "  {} had a data directory for port {} already: kept as {k}",
                self.to.name,
                self.redis().map_or(0, |i| i.port)
            );
            self.journal.kept_on_new = Some(k.clone());
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<()> {
        let (owner, to) = (self.owner().to_string(), self.to.name.clone());
        let master = Master::read(self.model)?;
        if master.places(self.model, &owner) == to {
            // A run killed after the ref moved and before the journal said so.
            println!(
                "  serverctrl's master ({}) places {owner} on {to} already",
                short(&master.commit)
            );
            self.journal.commit = Some(master.commit);
            return Ok(());
        }
        let Master {
            repo,
            commit: master,
            text,
        } = master;
        let master_ref = format!("refs/heads/{MAIN_BRANCH}");
        let file = Path::new(SERVERCTRL_YAML);
        let new = moving::set_placement(file, &text, &owner, &to).map_err(anyhow::Error::msg)?;
        let entry = self.model.access.entry.clone();
        let index = repo.join("hhl-move.index");
        let git = |args: &[&str], input: Option<Vec<u8>>| -> Result<String> {
            let mut cmd = users::as_user(&entry, "git");
            cmd.arg("--git-dir")
                .arg(&repo)
                .args(["-c", "user.name=hhlctl", "-c", "user.email=hhlctl@localhost"])
                .env("GIT_INDEX_FILE", &index);
            Ok(String::from_utf8_lossy(&crate::host::git::feed(cmd, args, input)?)
                .trim()
                .to_string())
        };
        let blob = git(&["hash-object", "-w", "--stdin"], Some(new.into_bytes()))?;
        git(&["read-tree", &master], None)?;
        git(
            &["update-index", "--cacheinfo", &format!("100644,{blob},hhl.yaml")],
            None,
        )?;
        let tree = git(&["write-tree"], None)?;
        let message = format!(
            "move {owner} from {} to {to}\n\nplacement.{owner}: {to}, written by `hhlctl move {owner} --to {to}`.",
            self.from.name
        );
        let commit = git(&["commit-tree", &tree, "-p", &master, "-m", &message], None)?;
        // Only over the master it was made from: a push meanwhile is not lost.
        let moved = git(&["update-ref", &master_ref, &commit, &master], None);
        let _ = crate::host::child::status(
            users::as_user(&entry, "rm").arg("-f").arg(&index),
            crate::host::child::USER_TOOLS,
        );
        moved.with_context(|| {
            format!("serverctrl's {MAIN_BRANCH} moved while the move wrote its commit; run the move again")
        })?;
        println!("  serverctrl {} places {owner} on {to}", short(&commit));
        self.journal.commit = Some(commit);
        Ok(())
    }

    fn apply(&mut self) -> Result<()> {
        let commit = self
            .journal
            .commit
            .clone()
            .context("no commit recorded: the journal is damaged")?;
        let systemd = crate::host::systemd::Systemd::connect()?;
        // Another apply running now may have taken an older commit: at most twice.
        for _ in 0..2 {
            let ran = crate::ops::remote_apply::apply(&systemd)?;
            crate::ops::remote_apply::print(&ran);
            if crate::ops::remote_apply::applied_commit(self.model).as_deref() == Some(commit.as_str()) {
                break;
            }
        }
        if crate::ops::remote_apply::applied_commit(self.model).as_deref() != Some(commit.as_str()) {
            bail!(
                "this host did not apply serverctrl {} (its apply's lines are above; `journalctl -u hhl-apply.service`)",
                short(&commit)
            );
        }
        for h in [self.from, self.to].into_iter().filter(|h| !self.is_here(h)) {
            let pong: Pong = serde_json::from_str(self.ask(h, "ping", peer::ASK)?.trim())?;
            if pong.applied.as_deref() != Some(commit.as_str()) {
                bail!(
                    "host {} has not applied serverctrl {} (its lines are above): `hhlctl hosts sync --now` retries it",
                    h.name,
                    short(&commit)
                );
            }
        }
        Ok(())
    }

    fn code(&mut self) -> Result<()> {
        let owner = self.owner().to_string();
        let openresty: Vec<&Instance> = self
            .instances()
            .into_iter()
            .filter(|i| i.kind == Kind::Openresty)
            .collect();
        if self.is_here(self.to) {
            // Every branch is here already: deploy what is not live.
            let loaded = load::load(self.config)?;
            let mine: Vec<&Instance> = loaded
                .model
                .instances
                .iter()
                .filter(|i| i.developer == owner && i.kind == Kind::Openresty)
                .collect();
            let (_, failed) = crate::ops::deploy::converge(&loaded.model, &mine, true)?;
            if failed > 0 {
                bail!("not every instance of {owner} deployed here (see above)");
            }
            return Ok(());
        }
        let mut deploy: Vec<String> = Vec::new();
        for repo in repos::repos(self.model)
            .into_iter()
            .filter(|r| matches!(r.kind, RepoKind::Server(_)))
        {
            let refname = format!("refs/heads/{owner}");
            let Ok(head) = crate::host::git::run(
                crate::host::git::at(&repo.path),
                &["rev-parse", "--verify", "-q", &refname],
            ) else {
                continue;
            };
            let u = RefUpdate {
                old: "0".repeat(40),
                new: head.clone(),
                refname,
            };
            if let Err(why) = crate::ops::forward::push_ahead(self.model, self.to, &repo, &u, "root")? {
                bail!("{}: {why}", repo.name);
            }
            println!("  {} {owner} ({}) is on {}", repo.name, short(&head), self.to.name);
            deploy.extend(
                openresty
                    .iter()
                    .filter(|i| RepoKind::Server(i.server.clone()) == repo.kind)
                    .map(|i| i.name.clone()),
            );
        }
        if deploy.is_empty() {
            println!("  {owner} has pushed no code: its instances serve their initial release");
            return Ok(());
        }
        let out = self.ask(self.to, &format!("as root deploy {}", deploy.join(" ")), peer::ACT)?;
        Self::echo(self.to, &out);
        Ok(())
    }

    fn verify(&mut self) -> Result<()> {
        let names = self.names();
        let owner = self.owner().to_string();
        // apply and the deploy waited for every port; a reload may still settle.
        let deadline = Instant::now() + VERIFY_WAIT;
        let unhealthy = loop {
            let rows = if self.is_here(self.to) {
                crate::ops::status::health_of(self.config, &names)?
            } else {
                let a = peer::ask(
                    self.model,
                    self.to,
                    &format!("as root status --json {}", names.join(" ")),
                    peer::ASK,
                )?;
                if a.unreachable().is_some() {
                    bail!("host {}: {}", self.to.name, crate::ops::hosts::failure(&a));
                }
                crate::ops::status::health_in_json(a.stdout().trim())
                    .with_context(|| format!("host {}: `status --json` answered {}", self.to.name, a.stdout()))?
            };
            let bad: Vec<String> = rows.into_iter().filter(|(_, ok)| !ok).map(|(n, _)| n).collect();
            if bad.is_empty() || Instant::now() >= deadline {
                break bad;
            }
            std::thread::sleep(Duration::from_millis(250));
        };
        if !unhealthy.is_empty() {
            bail!(
                "on {}, {} not healthy after {} s: `hhlctl status --dev {owner}` shows why",
                self.to.name,
                unhealthy.join(", "),
                VERIFY_WAIT.as_secs()
            );
        }
        println!("  {} healthy on {}", names.join(", "), self.to.name);
        if self.redis().is_some() {
            let after = self.keys_on(self.to)?;
            match self.journal.keys_before {
                Some(b) if b != after => println!(
                    "  warning: {owner}'s Redis held {b} keys on {} before it stopped, and holds {after} on {}: something wrote between the count and the stop, or keys expired",
                    self.from.name, self.to.name
                ),
                _ => {}
            }
            let before = match self.journal.keys_before {
                Some(b) => format!(" ({b} on {} before the move)", self.from.name),
                None => String::new(),
            };
            println!(
                "  {owner}'s Redis answers on {} with {after} keys{before}",
                self.to.name
            );
        }
        Ok(())
    }
}

/// How serverctrl's hhl.yaml is named in messages.
const SERVERCTRL_YAML: &str = "serverctrl:hhl.yaml";

/// serverctrl's master on the primary: its commit and hhl.yaml.
struct Master {
    repo: PathBuf,
    commit: String,
    text: String,
}

impl Master {
    fn read(model: &Model) -> Result<Master> {
        let repo = model.git.root.join(format!("{SERVERCTRL}.git"));
        let commit = crate::host::git::run(
            crate::host::git::at(&repo),
            &["rev-parse", "--verify", &format!("refs/heads/{MAIN_BRANCH}")],
        )
        .with_context(|| {
            format!(
                "{} has no {MAIN_BRANCH} branch: run `hhlctl repo init` first",
                repo.display()
            )
        })?;
        let text = String::from_utf8(crate::host::git::bytes(
            crate::host::git::at(&repo),
            &["cat-file", "blob", &format!("{commit}:hhl.yaml")],
        )?)
        .context("serverctrl's hhl.yaml is not UTF-8")?;
        Ok(Master { repo, commit, text })
    }

    /// The host this hhl.yaml places `owner` on (unplaced: the primary).
    fn places(&self, model: &Model, owner: &str) -> String {
        let primary = model
            .hosts
            .as_ref()
            .map(|h| h.primary().name.clone())
            .unwrap_or_default();
        crate::core::config::parse(Path::new(SERVERCTRL_YAML), &self.text)
            .ok()
            .and_then(|raw| raw.placement.get(owner).cloned())
            .unwrap_or(primary)
    }
}

/// How long the new host's instances may take to be healthy once applied.
const VERIFY_WAIT: Duration = Duration::from_secs(30);

/// Hosts that must answer for a move: the two it is between, unless one is here.
fn ping(model: &Model, here: &str, hosts: &[&HostSpec]) -> Result<Vec<(String, Option<String>)>> {
    let mut out = Vec::new();
    for h in hosts.iter().filter(|h| h.name != here) {
        let a = peer::ask(model, h, "ping", peer::ASK)?;
        if !a.ok() {
            bail!(
                "host {} ({}) does not answer: {}\n  hint: `hhlctl hosts` shows which hosts answer; run the move again when it does",
                h.name,
                h.address,
                crate::ops::hosts::failure(&a)
            );
        }
        let pong: Pong = serde_json::from_str(a.stdout().trim())
            .with_context(|| format!("host {}: an unreadable answer to ping", h.name))?;
        out.push((h.name.clone(), pong.applied));
    }
    Ok(out)
}

/// Before a new move changes anything: both hosts answer, and this host, they and
/// serverctrl agree on the commit, so the move's commit changes only `placement:`.
fn preflight(config: &Path, model: &Model, here: &str, from: &HostSpec, to: &HostSpec) -> Result<()> {
    let Master {
        commit: master, text, ..
    } = Master::read(model)?;
    let applied = crate::ops::remote_apply::applied_commit(model);
    if applied.as_deref() != Some(master.as_str()) {
        bail!(
            "serverctrl's master is {}, and this host applied {}: apply it first (`systemctl start hhl-apply.service` applies it here and on every host), so the move changes nothing but `placement:`",
            short(&master),
            applied.as_deref().map(short).unwrap_or("none")
        );
    }
    let live = std::fs::read(config).with_context(|| format!("reading {}", config.display()))?;
    if live != text.as_bytes() {
        bail!(
            "{} differs from serverctrl's hhl.yaml ({}): push it to serverctrl first; the move commits to serverctrl and applies that, which would undo the difference",
            config.display(),
            short(&master)
        );
    }
    for (name, applied) in ping(model, here, &[from, to])? {
        if applied.as_deref() != Some(master.as_str()) {
            bail!(
                "host {name} applied serverctrl {}, not master's {}: `hhlctl hosts sync --now` retries a host that missed it (`systemctl start hhl-apply.service` applies master on every host); then run the move again",
                applied.as_deref().map(short).unwrap_or("none"),
                short(&master)
            );
        }
    }
    Ok(())
}

/// What `hhlctl move` needs of hhl.yaml, loaded as the primary sees every host.
fn whole(config: &Path, owner: &str) -> Result<load::Loaded> {
    if !rustix::process::geteuid().is_root() {
        bail!("`hhlctl move` runs as root on the primary");
    }
    // The owner names its journal's file: a plain name only (an unknown one is told
    // once the journal is known to be absent).
    if owner != crate::core::names::MASTER && crate::core::names::developer_problem(owner).is_some() {
        bail!(
            "`{}` is not an owner's name (master, or a developer's: lowercase letters, digits and `_`)",
            crate::core::error::excerpt(owner)
        );
    }
    load::load_whole(config)
}

/// One move at a time: its journal is read, then rewritten.
fn lock(model: &Model) -> Result<crate::host::release::Lock> {
    let dir = model.paths.state_dir.join("peer");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    crate::host::release::Lock::take_for(&dir, Duration::from_secs(2), "`hhlctl move`, in")
}

/// Move `owner` to host `to`, or resume its move.
pub fn run(config: &Path, owner: &str, to: &str) -> Result<i32> {
    let t0 = Instant::now();
    let loaded = whole(config, owner)?;
    let model = &loaded.model;
    let _lock = lock(model)?;
    let journal = load_journal(model, owner)?;
    let plan = moving::check(model, owner, to, journal.as_ref()).map_err(anyhow::Error::msg)?;
    let hosts = model.hosts.as_ref().expect("checked: several hosts");
    let here = model.here.clone().expect("checked: the primary");
    let (Some(from), Some(to)) = (hosts.get(&plan.from), hosts.get(&plan.to)) else {
        bail!(
            "the journal {} names a host hhl.yaml no longer has ({} or {}); look at it, then delete it",
            journal_path(model, owner).display(),
            plan.from,
            plan.to
        );
    };
    let journal = match journal {
        Some(j) => {
            println!(
                "resuming the move of {owner} from {} to {} (steps done: {}){}",
                from.name,
                to.name,
                j.done_names(),
                match plan.resume {
                    Some(Step::Stop) if !j.done.is_empty() => {
                        " at `stop`: the data is taken again, since the old host may have run it meanwhile".to_string()
                    }
                    Some(s) => format!(" at `{}`", s.name()),
                    None => String::new(),
                }
            );
            j
        }
        None => {
            preflight(config, model, &here, from, to)?;
            let j = Journal::new(owner, &from.name, &to.name, now());
            store(model, &j)?;
            println!("moving {owner} from {} to {}", from.name, to.name);
            j
        }
    };
    let mut m = Move {
        config,
        model,
        here,
        from,
        to,
        journal,
    };
    let mut start = plan.resume.unwrap_or(Step::Stop);
    // Killed inside `commit`, after serverctrl's ref moved: the data that commit was
    // made for is in place, and the hosts may apply it any time now.
    if start < Step::Commit && m.journal.is_done(Step::Import) && Master::read(model)?.places(model, owner) == m.to.name
    {
        println!(
            "serverctrl places {owner} on {} already: going on from `commit`",
            m.to.name
        );
        start = Step::Commit;
    }
    for (n, step) in STEPS.into_iter().enumerate().filter(|(_, s)| *s >= start) {
        if m.journal.is_done(step) && step >= Step::Commit {
            continue;
        }
        println!("[{}/{}] {}", n + 1, STEPS.len(), step.name());
        let t = Instant::now();
        if let Err(e) = m.step(step) {
            return Err(stopped(&m.journal, step, e));
        }
        m.journal.record(step, t.elapsed().as_millis() as u64);
        store(model, &m.journal)?;
        fault::point(step.fault_point());
    }
    report(&m, t0.elapsed());
    let _ = std::fs::remove_file(staging(model, owner));
    std::fs::remove_file(journal_path(model, owner))
        .with_context(|| format!("removing {}", journal_path(model, owner).display()))?;
    Ok(0)
}

/// The error of a step, with where the move stands and how to go on.
fn stopped(j: &Journal, step: Step, e: anyhow::Error) -> anyhow::Error {
    let owner = &j.owner;
    let stands = if j.is_done(Step::Commit) {
        format!(
            "serverctrl already places {owner} on {}; the hosts converge on it as they apply",
            j.to
        )
    } else {
        format!(
            "{owner}'s instances on {} may be stopped until the move finishes (`hhlctl move {owner} --abandon` starts them again there instead)",
            j.from
        )
    };
    anyhow::anyhow!(
        "the move of {owner} from {} to {} stopped at step `{}` (steps done: {}): {e:#}\n  \
         {stands}.\n  hint: once that is fixed, run `hhlctl move {owner} --to {}` again: it resumes",
        j.from,
        j.to,
        step.name(),
        j.done_names(),
        j.to
    )
}

fn report(m: &Move, took: Duration) {
    let j = &m.journal;
    let owner = j.owner.as_str();
    println!(
        "moved {owner} from {} to {} in {:.1} s (ports unchanged)",
        j.from,
        j.to,
        took.as_secs_f64()
    );
    println!("step times:");
    for d in &j.done {
        println!("  {:<7} {}", d.step.name(), secs(d.took_ms));
    }
    if let Some(c) = &j.checksum {
        println!(
            "Redis data: {} bytes and the secret; checksum blake2b-256:{c}, the same out of {} and into {}",
            j.bytes.unwrap_or(0),
            j.from,
            j.to
        );
    }
    println!(
        "left on {} (not deleted; remove them when you no longer need them):",
        j.from
    );
    if let Some(r) = m.redis() {
        println!("  {}  {owner}'s Redis data as it was", r.dir.display());
        if !m.is_here(m.from) {
            println!("  {}  the copy that moved", bundle::outgoing(m.model, owner).display());
        }
    }
    for i in m.instances().into_iter().filter(|i| i.kind == Kind::Openresty) {
        println!("  {}  {}'s releases and files", i.dir.display(), i.name);
    }
    if let Some(k) = &j.kept_on_new {
        println!("kept aside on {}: {k} (a data directory from an earlier stay)", j.to);
    }
}

/// Give up a move before its placement commit: the owner's instances started again
/// on the host it was leaving, the journal removed.
pub fn abandon(config: &Path, owner: &str) -> Result<i32> {
    let loaded = whole(config, owner)?;
    let model = &loaded.model;
    let _lock = lock(model)?;
    let Some(j) = load_journal(model, owner)? else {
        bail!(
            "no move of {owner} is under way (there is no {})",
            journal_path(model, owner).display()
        );
    };
    if j.is_done(Step::Commit) {
        bail!(
            "serverctrl already places {owner} on {} (commit {}): the move cannot be given up; finish it with `hhlctl move {owner} --to {}`",
            j.to,
            j.commit.as_deref().map(short).unwrap_or("?"),
            j.to
        );
    }
    let hosts = model.hosts.as_ref().context("hhl.yaml has no `hosts:`")?;
    let from = hosts
        .get(&j.from)
        .context("the journal's old host is no longer in hhl.yaml")?;
    let here = model.here.clone().unwrap_or_default();
    let chosen: Vec<&Instance> = model.instances.iter().filter(|i| i.developer == owner).collect();
    let names: Vec<String> = chosen.iter().map(|i| i.name.clone()).collect();
    if !names.is_empty() {
        if from.name == here {
            let done = crate::ops::act::run(model, &chosen, JobKind::Start).map_err(|e| anyhow::anyhow!("{e}"))?;
            if crate::ops::report::print(&done) > 0 {
                bail!("not every instance of {owner} started again here (see above); the move's journal is kept");
            }
        } else {
            let code = peer::run(model, from, &format!("as root start {}", names.join(" ")), peer::ACT)?;
            if code != 0 {
                bail!(
                    "host {} did not start {owner}'s instances again (exit {code}, see above); the move's journal is kept",
                    from.name
                );
            }
        }
    }
    let _ = std::fs::remove_file(staging(model, owner));
    std::fs::remove_file(journal_path(model, owner))?;
    println!(
        "gave up the move of {owner} to {}: its instances run on {} again{}",
        j.to,
        from.name,
        if j.is_done(Step::Import) {
            format!(
                "; the copy imported on {} is not used there (`placement:` did not change)",
                j.to
            )
        } else {
            String::new()
        }
    );
    Ok(0)
}
