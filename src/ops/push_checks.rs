//! What pre-receive checks in every pushed commit before any ref moves: the tree that
//! deploys within git.max_files and git.max_unpacked_size (from git's listing, before
//! anything is extracted), a branch's history beyond master within
//! git.max_branch_size, no object above git.max_object_size, and in the tree that
//! deploys no symlink, no submodule and no file name that cannot be deployed. A refused push's objects stay in git's
//! quarantine directory, which git deletes when pre-receive fails.

use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::core::model::Model;
use crate::core::push_limits::{self, human};
use crate::core::repos::RefUpdate;
use crate::host::git;

/// Every object the push brings (reachable from the new tip, not from any ref),
/// with its size: those above the limit.
pub fn objects(model: &Model, git_dir: &Path, u: &RefUpdate) -> Result<Vec<String>> {
    let max = model.git.max_object_size;
    let list = git::bytes(git::at(git_dir), &["rev-list", "--objects", &u.new, "--not", "--all"])?;
    let out = git::feed(
        git::at(git_dir),
        &["cat-file", "--batch-check=%(objectsize) %(objecttype) %(rest)"],
        Some(list),
    )?;
    let mut problems = Vec::new();
    for line in String::from_utf8_lossy(&out).lines() {
        let mut it = line.splitn(3, ' ');
        let size: u64 = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        let kind = it.next().unwrap_or("");
        let name = it.next().unwrap_or("").trim();
        if size > max {
            problems.push(format!(
                "{kind} {} is {} bytes; the limit is {} (git.max_object_size)",
                if name.is_empty() { "(no name)" } else { name },
                size,
                human(max)
            ));
        }
    }
    Ok(problems)
}

/// The tree limits hhl.yaml sets (git.max_files, git.max_unpacked_size).
pub fn tree_limits(model: &Model) -> push_limits::TreeLimits {
    push_limits::TreeLimits {
        max_files: model.git.max_files,
        max_bytes: model.git.max_unpacked_size,
    }
}

/// The bounds of the tree that would deploy, from git's own listing (`ls-tree -r -l`,
/// streamed and stopped at the first entry past a limit) before anything is written
/// or extracted; with `entries`, also `tree`'s checks of every entry (a new branch).
/// The first problem found past a limit ends the listing.
pub fn bounded_tree(model: &Model, git_dir: &Path, u: &RefUpdate, entries: bool) -> Result<Vec<String>> {
    let limits = tree_limits(model);
    let mut tally = push_limits::Tally::default();
    let mut problems = Vec::new();
    git::records(
        git::at(git_dir),
        &["ls-tree", "-r", "-l", "-z", "--full-tree", &u.new],
        |record| {
            let Some((mode, size, path)) = push_limits::parse_long_entry(record) else {
                return true;
            };
            if let Err(over) = tally.add(size, &limits) {
                problems.insert(0, over);
                return false;
            }
            if entries {
                problems.extend(entry_problem(mode, path));
            }
            true
        },
    )?;
    Ok(problems)
}

/// `--glob=` for exactly the ref `name`, and nothing if it does not exist (as a plain
/// ref name on the command line would be an error). git appends `/*` to a pattern
/// without `?`, `*` or `[`, so the last character goes in brackets: `refs/heads/maste[r]`.
fn exactly(name: &str) -> String {
    match name.char_indices().last() {
        Some((i, c)) => format!("--glob={}[{c}]", &name[..i]),
        None => "--glob=".into(),
    }
}

/// Objects the pushed tip reaches that the push did not bring and that no ref the
/// pusher may read reaches: another developer's, named by id (hidden refs hide names,
/// not objects; git's own connectivity check counts every ref). Their ids, empty when
/// the push brings or may read everything it names. Without a quarantine (a hook run
/// by hand) there is nothing to tell apart: empty.
pub fn foreign_objects(git_dir: &Path, u: &RefUpdate, readable: &[String]) -> Result<Vec<String>> {
    if std::env::var_os("GIT_QUARANTINE_PATH").is_none() {
        return Ok(Vec::new());
    }
    let mut args = vec!["rev-list", "--objects", u.new.as_str(), "--not"];
    let globs: Vec<String> = readable.iter().map(|r| exactly(r)).collect();
    args.extend(globs.iter().map(String::as_str));
    let listed = git::bytes(git::at(git_dir), &args)?;
    let ids: Vec<u8> = String::from_utf8_lossy(&listed)
        .lines()
        .filter_map(|l| l.split(' ').next())
        .flat_map(|id| id.bytes().chain([b'\n']))
        .collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // The quarantine alone: what this push brought (git finds the rest of the
    // repository through the alternate it sets for hooks).
    let mut quarantine_only = git::at(git_dir);
    quarantine_only.env_remove("GIT_ALTERNATE_OBJECT_DIRECTORIES");
    let out = git::feed(quarantine_only, &["cat-file", "--batch-check=%(objectname)"], Some(ids))?;
    let r: Vec<String> = String::from_utf8_lossy(&out)
        .lines()
        .filter_map(|l| l.strip_suffix(" missing"))
        .map(String::from)
        .collect();
    Ok(r)
}

/// The history a push to a branch other than master would keep beyond master, as git
/// stores it (its packs, the push's quarantine included), against git.max_branch_size.
pub fn branch_size(model: &Model, git_dir: &Path, u: &RefUpdate) -> Result<Option<String>> {
    let Some(branch) = u.branch().filter(|b| *b != crate::core::repos::MAIN_BRANCH) else {
        return Ok(None);
    };
    let max = model.git.max_branch_size;
    let used = git::run(
        git::at(git_dir),
        &[
            "rev-list",
            "--objects",
            "--disk-usage",
            &u.new,
            "--not",
            &exactly(&format!("refs/heads/{}", crate::core::repos::MAIN_BRANCH)),
        ],
    )?;
    let used: u64 = used
        .parse()
        .with_context(|| format!("git rev-list --disk-usage printed `{used}`"))?;
    Ok(push_limits::branch_problem(branch, used, max))
}

/// Pure: `git ls-tree -r -z` output → problems.
pub fn tree_problems(listing: &[u8]) -> Vec<String> {
    let mut problems = Vec::new();
    for entry in listing.split(|b| *b == 0).filter(|e| !e.is_empty()) {
        let Some(tab) = entry.iter().position(|b| *b == b'\t') else {
            continue;
        };
        problems.extend(entry_problem(&entry[..tab], &entry[tab + 1..]));
    }
    problems
}

/// What is wrong with one entry of the tree that would deploy (`mode` first).
fn entry_problem(mode: &[u8], path: &[u8]) -> Option<String> {
    let shown = String::from_utf8_lossy(path).escape_debug().to_string();
    if let Some(p) = push_limits::name_problem(path) {
        Some(p)
    } else if mode.starts_with(b"120000") {
        Some(format!("`{shown}` is a symbolic link; commit the file itself"))
    } else if mode.starts_with(b"160000") {
        Some(format!("`{shown}` is a submodule; commit the files instead"))
    } else {
        None
    }
}

/// A file the push adds or changes on its branch.
#[derive(Debug, PartialEq, Eq)]
pub struct Changed {
    pub mode: String,
    pub blob: String,
    pub path: Vec<u8>,
}

/// What an update of an existing branch changes, against the tip it replaces (which
/// passed these same checks when it was pushed): `None` for a new branch, whose whole
/// tree is checked. One git process, where the whole tree would take an extraction of
/// every file.
pub fn changes(git_dir: &Path, u: &RefUpdate) -> Result<Option<Vec<Changed>>> {
    if u.old.bytes().all(|b| b == b'0') {
        return Ok(None);
    }
    let out = git::bytes(
        git::at(git_dir),
        &[
            "diff-tree",
            "-r",
            "-z",
            "--no-renames",
            "--diff-filter=d",
            &u.old,
            &u.new,
        ],
    )?;
    Ok(Some(parse_changes(&out)))
}

/// Pure: `git diff-tree -r -z` output (`:old new oldblob newblob status NUL path NUL`,
/// deletions filtered out) → the changed entries.
pub fn parse_changes(raw: &[u8]) -> Vec<Changed> {
    let mut out = Vec::new();
    let mut fields = raw.split(|b| *b == 0);
    while let (Some(meta), Some(path)) = (fields.next(), fields.next()) {
        let meta = String::from_utf8_lossy(meta);
        let words: Vec<&str> = meta.trim_start_matches(':').split(' ').collect();
        if let [_, mode, _, blob, _] = words[..] {
            out.push(Changed {
                mode: mode.to_string(),
                blob: blob.to_string(),
                path: path.to_vec(),
            });
        }
    }
    out
}

/// `tree`'s checks on the changed entries only.
pub fn changed_problems(changed: &[Changed]) -> Vec<String> {
    changed
        .iter()
        .filter_map(|c| entry_problem(c.mode.as_bytes(), &c.path))
        .collect()
}

/// Write the blobs of the changed `.lua` files (regular files) under `into`, at their
/// paths, with one `git cat-file --batch`. Returns how many.
pub fn write_changed_lua(git_dir: &Path, changed: &[Changed], into: &Path) -> Result<usize> {
    let lua: Vec<&Changed> = changed
        .iter()
        .filter(|c| c.mode.starts_with("100") && c.path.ends_with(b".lua"))
        .collect();
    if lua.is_empty() {
        return Ok(0);
    }
    let input: String = lua.iter().map(|c| format!("{}\n", c.blob)).collect();
    let out = git::feed(git::at(git_dir), &["cat-file", "--batch"], Some(input.into_bytes()))?;
    // `<blob> blob <size>\n<contents>\n` each, in the order asked.
    let mut rest = &out[..];
    for c in &lua {
        let nl = rest
            .iter()
            .position(|b| *b == b'\n')
            .context("git cat-file: short output")?;
        let header = String::from_utf8_lossy(&rest[..nl]).to_string();
        let size: usize = header
            .split(' ')
            .nth(2)
            .and_then(|n| n.parse().ok())
            .with_context(|| format!("git cat-file: `{header}`"))?;
        let body = rest.get(nl + 1..nl + 1 + size).context("git cat-file: short output")?;
        rest = rest.get(nl + 2 + size..).unwrap_or_default();
        // Names passed `entry_problem` (UTF-8, no control characters); git's own tree
        // checks refuse `..` and `.` components, and so does this.
        let name = std::str::from_utf8(&c.path)?;
        let rel = Path::new(name);
        if rel.is_absolute() || rel.components().any(|p| !matches!(p, std::path::Component::Normal(_))) {
            bail!("refused path `{}` in the pushed tree", name.escape_debug());
        }
        let file = into.join(rel);
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&file, body).with_context(|| format!("writing {}", file.display()))?;
    }
    Ok(lua.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_glob_for_exactly_one_ref() {
        assert_eq!(exactly("refs/heads/master"), "--glob=refs/heads/maste[r]");
        assert_eq!(exactly("refs/heads/dev1"), "--glob=refs/heads/dev[1]");
    }

    #[test]
    fn diff_tree_listing() {
        let raw = b":100644 100644 aaaa bbbb M\0lib/x.lua\0:000000 120000 0000 cccc A\0link.lua\0:000000 100644 0000 dddd A\0new.lua\0";
        let c = parse_changes(raw);
        assert_eq!(c.len(), 3);
        assert_eq!(
            c[0],
            Changed {
                mode: "100644".into(),
                blob: "bbbb".into(),
                path: b"lib/x.lua".to_vec()
            }
        );
        assert_eq!(
            changed_problems(&c),
            vec!["`link.lua` is a symbolic link; commit the file itself".to_string()]
        );
    }

    #[test]
    fn listing() {
        let entries: [&[u8]; 5] = [
            b"100644 blob aaaa\tmain.lua",
            b"120000 blob bbbb\tlink.lua",
            b"160000 commit cccc\tsub",
            b"100644 blob dddd\tbad\nname.lua",
            b"100644 blob eeee\tx\xff.lua",
        ];
        let z: Vec<u8> = entries.iter().flat_map(|e| e.iter().copied().chain([0])).collect();
        let p = tree_problems(&z);
        assert_eq!(p[0], "`link.lua` is a symbolic link; commit the file itself");
        assert_eq!(p[1], "`sub` is a submodule; commit the files instead");
        assert!(
            p[2].contains("`bad\\nname.lua` contains a control character"),
            "{}",
            p[2]
        );
        assert!(p[3].contains("is not valid UTF-8"), "{}", p[3]);
        assert_eq!(p.len(), 4);
    }
}
