//! `hhlctl move OWNER --to HOST`, the pure part: whether the move may start (or resume),
//! its steps and the journal that makes a rerun resume after a crash, the one-line
//! change of hhl.yaml's `placement:`, and the key count read from Redis's INFO.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::core::config::{self, RawConfig};
use crate::core::model::Model;
use crate::core::names::MASTER;

/// The steps of a move, in order. Each is idempotent; the journal records those done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    /// The owner's instances stopped on the old host (its Redis saves on the way down).
    Stop,
    /// Its Redis data and secret out of the old host, onto the primary.
    Export,
    /// Into the new host, in place, checked against the same checksum.
    Import,
    /// serverctrl's master with the new placement.
    Commit,
    /// That commit applied here and by every other host.
    Apply,
    /// Its branches of each logic server passed to the new host and deployed there.
    Code,
    /// Its instances healthy on the new host, its keys counted.
    Verify,
}

pub const STEPS: [Step; 7] = [
    Step::Stop,
    Step::Export,
    Step::Import,
    Step::Commit,
    Step::Apply,
    Step::Code,
    Step::Verify,
];

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::Stop => "stop",
            Step::Export => "export",
            Step::Import => "import",
            Step::Commit => "commit",
            Step::Apply => "apply",
            Step::Code => "code",
            Step::Verify => "verify",
        }
    }

    /// The fault point reached once this step is recorded (`host::fault`).
    pub fn fault_point(self) -> &'static str {
        match self {
            Step::Stop => "move:stop",
            Step::Export => "move:export",
            Step::Import => "move:import",
            Step::Commit => "move:commit",
            Step::Apply => "move:apply",
            Step::Code => "move:code",
            Step::Verify => "move:verify",
        }
    }
}

/// One step done, and how long it took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {
    pub step: Step,
    pub took_ms: u64,
}

/// `<state_dir>/peer/move-<owner>.json` on the primary, rewritten after every step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    pub owner: String,
    pub from: String,
    pub to: String,
    /// Seconds since the epoch.
    pub started: u64,
    pub done: Vec<Done>,
    /// The bundle's checksum, once exported (`redis_bundle::checksum`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// Bytes of the data directory's files that moved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Keys in the owner's Redis on the old host before it stopped (INFO keyspace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys_before: Option<u64>,
    /// The serverctrl commit with the new placement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// A data directory the new host already had for this port, kept aside there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_on_new: Option<String>,
}

impl Journal {
    pub fn new(owner: &str, from: &str, to: &str, started: u64) -> Journal {
        Journal {
            owner: owner.into(),
            from: from.into(),
            to: to.into(),
            started,
            done: Vec::new(),
            checksum: None,
            bytes: None,
            keys_before: None,
            commit: None,
            kept_on_new: None,
        }
    }

    pub fn is_done(&self, step: Step) -> bool {
        self.done.iter().any(|d| d.step == step)
    }

    /// Record `step` done (again: its time replaced).
    pub fn record(&mut self, step: Step, took_ms: u64) {
        self.done.retain(|d| d.step != step);
        self.done.push(Done { step, took_ms });
        self.done.sort_by_key(|d| d.step);
    }

    /// The step a run starts at. Before the placement commit, the data steps run again
    /// from `stop`: the old host may have run the owner's Redis since (a reboot starts
    /// its units, which stay enabled until its apply; a developer may restart them on
    /// that host directly), and a copy taken before would lose those writes. They are
    /// idempotent and take seconds. From the commit on, the next step not done.
    pub fn resume_at(&self) -> Option<Step> {
        if !self.is_done(Step::Commit) {
            return Some(Step::Stop);
        }
        STEPS.into_iter().find(|s| !self.is_done(*s))
    }

    /// The steps done, by name: `stop, export`.
    pub fn done_names(&self) -> String {
        if self.done.is_empty() {
            return "none".into();
        }
        self.done.iter().map(|d| d.step.name()).collect::<Vec<_>>().join(", ")
    }
}

/// What a run of `hhlctl move` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub owner: String,
    pub from: String,
    pub to: String,
    /// A journal found: the step it resumes at.
    pub resume: Option<Step>,
}

/// Whether `owner` may move to `to`, given `model` (every host's instances, `here` set)
/// and the journal of a move under way, if any. Every refusal says what to do.
pub fn check(model: &Model, owner: &str, to: &str, journal: Option<&Journal>) -> Result<Plan, String> {
    let (Some(hosts), Some(here)) = (&model.hosts, model.here.as_deref()) else {
        return Err("hhl.yaml has no `hosts:`: this host runs every owner, so there is nowhere to move to (docs/ops/hosts.md adds a host)".into());
    };
    let primary = hosts.primary();
    if primary.name != here {
        return Err(format!(
            "this is host {here}; moves run on the primary, {} ({}): `hhlctl move` there",
            primary.name, primary.address
        ));
    }
    if let Some(j) = journal {
        if j.to != to {
            let abandon = if j.is_done(Step::Commit) {
                String::new()
            } else {
                format!(", or give it up with `hhlctl move {owner} --abandon`")
            };
            return Err(format!(
                "a move of {owner} from {} to {} is under way (steps done: {}): finish it first with `hhlctl move {owner} --to {}`{abandon}",
                j.from,
                j.to,
                j.done_names(),
                j.to,
            ));
        }
        return Ok(Plan {
            owner: owner.into(),
            from: j.from.clone(),
            to: to.into(),
            resume: j.resume_at(),
        });
    }
    if owner != MASTER && !model.developers.iter().any(|d| d == owner) {
        let owners: Vec<&str> = model.owners().collect();
        return Err(format!(
            "`{}` is not an owner in hhl.yaml (the owners are {})",
            crate::core::error::excerpt(owner),
            owners.join(", ")
        ));
    }
    if hosts.get(to).is_none() {
        let names: Vec<&str> = hosts.list.iter().map(|h| h.name.as_str()).collect();
        return Err(format!(
            "no host `{}` in hhl.yaml (the hosts are {})",
            crate::core::error::excerpt(to),
            names.join(", ")
        ));
    }
    let from = hosts.host_of(owner);
    if from == to {
        return Err(format!(
            "{owner} already runs on {to} (`placement:` in hhl.yaml); nothing to move"
        ));
    }
    Ok(Plan {
        owner: owner.into(),
        from: from.into(),
        to: to.into(),
        resume: None,
    })
}

/// `text` (hhl.yaml) with `owner` placed on `host`, every other line as it was: the
/// owner's line under `placement:` changed, or one added (with `placement:` itself
/// when there is none). A flow mapping (`placement: {dev2: hhl2}`) is rewritten as a
/// block. The result is parsed and compared with `text` parsed: nothing but that one
/// placement may differ.
pub fn set_placement(file: &Path, text: &str, owner: &str, host: &str) -> Result<String, String> {
    let by_hand =
        "edit `placement:` by hand, push hhl.yaml to serverctrl, and move the Redis data as docs/ops/hosts.md says";
    let mut before: RawConfig = config::parse(file, text).map_err(|d| format!("hhl.yaml does not parse: {d}"))?;
    let lines: Vec<&str> = text.lines().collect();
    let top = |l: &str| l.starts_with("placement:");
    let entry = |indent: &str| format!("{indent}{owner}: {host}");
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    match lines.iter().position(|l| top(l)) {
        None => {
            while out.last().is_some_and(|l| l.trim().is_empty()) {
                out.pop();
            }
            out.push("placement:".into());
            out.push(entry("  "));
        }
        Some(at) => {
            let rest = lines[at]["placement:".len()..].trim();
            let rest_code = rest.split(" #").next().unwrap_or("").trim();
            if rest_code.starts_with('{') {
                // One flow mapping: the whole of it, as a block, from the parse.
                let mut block = vec!["placement:".to_string()];
                let mut map = before.placement.clone();
                map.insert(owner.into(), host.into());
                block.extend(map.iter().map(|(o, h)| format!("  {o}: {h}")));
                out.splice(at..at + 1, block);
            } else if !(rest_code.is_empty()) {
                return Err(format!(
                    "`placement:` is not a mapping I can change line by line; {by_hand}"
                ));
            } else {
                // The block's lines: indented, blank or comments, up to the next key.
                let mut end = at + 1;
                while end < lines.len() {
                    let l = lines[end];
                    if l.trim().is_empty() || l.starts_with(' ') || l.starts_with('#') {
                        end += 1;
                    } else {
                        break;
                    }
                }
                let is_owner = |l: &str| {
                    let t = l.trim_start();
                    t.strip_prefix(owner).is_some_and(|r| r.trim_start().starts_with(':')) && l.starts_with(' ')
                };
                let found: Vec<usize> = (at + 1..end).filter(|&i| is_owner(lines[i])).collect();
                match found.as_slice() {
                    [i] => {
                        // The value's word replaced, its spacing and comment kept.
                        let l = lines[*i];
                        let colon = l.find(':').expect("an owner's line has its colon");
                        let start = colon + 1 + (l[colon + 1..].len() - l[colon + 1..].trim_start().len());
                        let end = start + l[start..].find(char::is_whitespace).unwrap_or(l.len() - start);
                        out[*i] = format!("{}{host}{}", &l[..start], &l[end..]);
                    }
                    [] => {
                        let last = (at + 1..end)
                            .rev()
                            .find(|&i| lines[i].starts_with(' ') && !lines[i].trim().starts_with('#'));
                        let indent = last
                            .map(|i| {
                                let l = lines[i];
                                l[..l.len() - l.trim_start().len()].to_string()
                            })
                            .unwrap_or_else(|| "  ".into());
                        out.insert(last.map_or(at + 1, |i| i + 1), entry(&indent));
                    }
                    _ => return Err(format!("`placement:` names {owner} more than once; {by_hand}")),
                }
            }
        }
    }
    let mut new = out.join("\n");
    new.push('\n');
    let after =
        config::parse(file, &new).map_err(|d| format!("the changed hhl.yaml does not parse ({d}); {by_hand}"))?;
    before.placement.insert(owner.into(), host.into());
    if after != before {
        return Err(format!(
            "changing `placement:` line by line changed more than {owner}'s host; {by_hand}"
        ));
    }
    Ok(new)
}

/// The keys of every database in Redis's `INFO keyspace` text (`db0:keys=12,…`), as
/// the reply or as `redis` prints it quoted (`\r\n` escaped).
pub fn keys_in_info(text: &str) -> u64 {
    let mut total = 0u64;
    let mut rest = text;
    while let Some(i) = rest.find(":keys=") {
        let before = &rest[..i];
        let db = before.rfind("db").is_some_and(|d| {
            let n = &before[d + 2..];
            !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
        });
        let after = &rest[i + ":keys=".len()..];
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        if db {
            total += digits.parse::<u64>().unwrap_or(0);
        }
        rest = after;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::Source;
    use crate::core::model::{build, Flavor};

    const KEY1: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
    const KEY2: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE3tAiQRWbVwJs7Ch/kZ3tC9NP1RZDG0R4flYXaHk9Nb";
    const KEY3: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHEAfrM0il0SjjIVmnK2EJPqbMHGw2MISCQp+Vgpfc58";

    fn yaml(placement: &str) -> String {
        format!(
            "developers: [dev1, dev2]\nservers: {{}}\n# the hosts\nhosts:\n  - name: hhl1\n    address: 10.0.0.1\n    host_key: {KEY1}\n    primary: true\n    peer_key: {KEY2}\n  - name: hhl2\n    address: 10.0.0.2\n    host_key: {KEY2}\n  - name: hhl3\n    address: 10.0.0.3\n    host_key: {KEY3}\n{placement}"
        )
    }

    fn model(text: &str, here: &str) -> Model {
        let src = Source {
            path: "/etc/hhl/hhl.yaml".into(),
            text: text.into(),
        };
        let raw = config::parse(&src.path, text).unwrap();
        let mut m = build(&raw, &src, Flavor::Debian).unwrap();
        m.here = Some(here.into());
        m
    }

    #[test]
    fn a_move_is_checked_before_anything_happens() {
        let m = model(&yaml("placement:\n  dev2: hhl2\n"), "hhl1");
        let p = check(&m, "dev2", "hhl3", None).unwrap();
        assert_eq!((p.from.as_str(), p.to.as_str(), p.resume), ("hhl2", "hhl3", None));
        assert_eq!(check(&m, "dev1", "hhl2", None).unwrap().from, "hhl1");
        let e = check(&m, "dev9", "hhl3", None).unwrap_err();
        assert_eq!(
            e,
            "`dev9` is not an owner in hhl.yaml (the owners are master, dev1, dev2)"
        );
        let e = check(&m, "dev2", "hhl9", None).unwrap_err();
        assert_eq!(e, "no host `hhl9` in hhl.yaml (the hosts are hhl1, hhl2, hhl3)");
        let e = check(&m, "dev2", "hhl2", None).unwrap_err();
        assert_eq!(
            e,
            "dev2 already runs on hhl2 (`placement:` in hhl.yaml); nothing to move"
        );
        let e = check(&model(&yaml(""), "hhl2"), "dev2", "hhl3", None).unwrap_err();
        assert!(
            e.starts_with("this is host hhl2; moves run on the primary, hhl1 (10.0.0.1)"),
            "{e}"
        );
        let one = model("developers: [dev1]\nservers: {}\n", "hhl1");
        assert!(check(&one, "dev1", "hhl2", None).unwrap_err().contains("no `hosts:`"));
    }

    #[test]
    fn a_journal_resumes_its_own_move_and_refuses_another() {
        // The placement already says hhl3 (the commit was made): resumed, not "already there".
        let m = model(&yaml("placement:\n  dev2: hhl3\n"), "hhl1");
        let mut j = Journal::new("dev2", "hhl2", "hhl3", 1);
        for s in [Step::Stop, Step::Export, Step::Import, Step::Commit] {
            j.record(s, 10);
        }
        let p = check(&m, "dev2", "hhl3", Some(&j)).unwrap();
        assert_eq!((p.from.as_str(), p.resume), ("hhl2", Some(Step::Apply)));
        let e = check(&m, "dev2", "hhl1", Some(&j)).unwrap_err();
        assert!(
            e.contains("a move of dev2 from hhl2 to hhl3 is under way (steps done: stop, export, import, commit)")
                && e.contains("`hhlctl move dev2 --to hhl3`")
                && !e.contains("--abandon"),
            "{e}"
        );
        let mut early = Journal::new("dev2", "hhl2", "hhl3", 1);
        early.record(Step::Stop, 5);
        let e = check(&m, "dev2", "hhl1", Some(&early)).unwrap_err();
        assert!(e.contains("`hhlctl move dev2 --abandon`"), "{e}");
    }

    #[test]
    fn before_the_commit_a_rerun_takes_the_data_again_after_it_the_next_step() {
        let mut j = Journal::new("dev2", "hhl2", "hhl3", 1);
        assert_eq!(j.resume_at(), Some(Step::Stop));
        j.record(Step::Stop, 1);
        j.record(Step::Export, 1);
        assert_eq!(j.resume_at(), Some(Step::Stop));
        j.record(Step::Import, 1);
        j.record(Step::Commit, 1);
        assert_eq!(j.resume_at(), Some(Step::Apply));
        j.record(Step::Apply, 1);
        j.record(Step::Code, 1);
        j.record(Step::Stop, 7);
        assert_eq!(j.resume_at(), Some(Step::Verify));
        assert_eq!(j.done.iter().filter(|d| d.step == Step::Stop).count(), 1);
        assert_eq!(
            j.done[0],
            Done {
                step: Step::Stop,
                took_ms: 7
            }
        );
        j.record(Step::Verify, 1);
        assert_eq!(j.resume_at(), None);
        let text = serde_json::to_string(&j).unwrap();
        assert!(text.contains("\"step\":\"commit\""), "{text}");
        assert_eq!(serde_json::from_str::<Journal>(&text).unwrap(), j);
        assert_eq!(Step::Import.fault_point(), "move:import");
    }

    #[test]
    fn placement_changes_one_line_and_keeps_the_rest() {
        let p = Path::new("/etc/hhl/hhl.yaml");
        let text = yaml("placement:\n  dev1: hhl1   # stays\n  dev2: hhl2   # for now\n\n# after\nweb: {}\n");
        let new = set_placement(p, &text, "dev2", "hhl3").unwrap();
        assert!(new.contains("  dev2: hhl3   # for now\n"), "{new}");
        assert!(new.contains("  dev1: hhl1   # stays\n"), "{new}");
        assert_eq!(new.lines().count(), text.lines().count());
        // Added to the block, with its indentation.
        let text = yaml("placement:\n    dev1: hhl2\nweb: {}\n");
        let new = set_placement(p, &text, "dev2", "hhl3").unwrap();
        assert!(
            new.contains("placement:\n    dev1: hhl2\n    dev2: hhl3\nweb: {}\n"),
            "{new}"
        );
        // No placement yet.
        let new = set_placement(p, &yaml(""), "master", "hhl2").unwrap();
        assert!(new.ends_with("placement:\n  master: hhl2\n"), "{new}");
        // A flow mapping becomes a block.
        let new = set_placement(p, &yaml("placement: {dev1: hhl2, dev2: hhl2}\n"), "dev2", "hhl3").unwrap();
        assert!(new.ends_with("placement:\n  dev1: hhl2\n  dev2: hhl3\n"), "{new}");
        // `dev2x` is not `dev2`.
        let text = yaml("placement:\n  dev2x: hhl2\n").replace("[dev1, dev2]", "[dev1, dev2, dev2x]");
        let new = set_placement(p, &text, "dev2", "hhl3").unwrap();
        assert!(new.contains("  dev2x: hhl2\n  dev2: hhl3\n"), "{new}");
        // What cannot be changed line by line is refused, with what to do.
        let e = set_placement(p, &yaml("placement: &p\n  dev2: hhl2\n"), "dev2", "hhl3").unwrap_err();
        assert!(e.contains("edit `placement:` by hand"), "{e}");
        let e = set_placement(p, &yaml("placement:\n  dev2: hhl2\n  dev2: hhl1\n"), "dev2", "hhl3").unwrap_err();
        assert!(e.contains("does not parse") || e.contains("more than once"), "{e}");
    }

    #[test]
    fn keys_are_counted_over_every_database() {
        let info = "# Keyspace\r\ndb0:keys=1000,expires=0,avg_ttl=0\r\ndb3:keys=2,expires=1,avg_ttl=5\r\n";
        assert_eq!(keys_in_info(info), 1002);
        let quoted = "\"# Keyspace\\r\\ndb0:keys=1000,expires=0,avg_ttl=0\\r\\n\"";
        assert_eq!(keys_in_info(quoted), 1000);
        assert_eq!(keys_in_info("\"# Keyspace\\r\\n\""), 0);
    }
}
