//! What pre-receive checks in every pushed commit before any ref moves: no object
//! above git.max_object_size, and in the tree that deploys no symlink, no submodule
//! and no file name that cannot be deployed. A refused push's objects stay in git's
//! quarantine directory, which git deletes when pre-receive fails.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::model::Model;
use crate::push_limits::{self, human};
use crate::repos::RefUpdate;

/// Every object the push brings (reachable from the new tip, not from any ref),
/// with its size: those above the limit.
pub fn objects(model: &Model, git_dir: &Path, u: &RefUpdate) -> Result<Vec<String>> {
    let max = push_limits::parse_size(&model.git.max_object_size).unwrap_or(10 << 20);
    let list = Command::new("git")
        .arg("--git-dir")
        .arg(git_dir)
        .args(["rev-list", "--objects", &u.new, "--not", "--all"])
        .output()
        .context("running git rev-list")?;
    if !list.status.success() {
        bail!("git rev-list failed: {}", String::from_utf8_lossy(&list.stderr).trim());
    }
    let mut check = Command::new("git")
        .arg("--git-dir")
        .arg(git_dir)
        .args(["cat-file", "--batch-check=%(objectsize) %(objecttype) %(rest)"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("running git cat-file")?;
    let mut stdin = check.stdin.take().context("stdin")?;
    let input = list.stdout;
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = check.wait_with_output()?;
    let _ = writer.join();
    let mut problems = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
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

/// The tree that would deploy: refused symlinks (the Lua check and nginx would follow
/// them out of the release), submodules, and names that are not UTF-8 or hold control
/// characters.
pub fn tree(git_dir: &Path, u: &RefUpdate) -> Result<Vec<String>> {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(git_dir)
        .args(["ls-tree", "-r", "-z", "--full-tree", &u.new])
        .output()
        .context("running git ls-tree")?;
    if !out.status.success() {
        bail!("git ls-tree failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(tree_problems(&out.stdout))
}

/// Pure: `git ls-tree -r -z` output → problems.
pub fn tree_problems(listing: &[u8]) -> Vec<String> {
    let mut problems = Vec::new();
    for entry in listing.split(|b| *b == 0).filter(|e| !e.is_empty()) {
        let Some(tab) = entry.iter().position(|b| *b == b'\t') else {
            continue;
        };
        let (meta, path) = (&entry[..tab], &entry[tab + 1..]);
        let shown = String::from_utf8_lossy(path).escape_debug().to_string();
        if let Some(p) = push_limits::name_problem(path) {
            problems.push(p);
        } else if meta.starts_with(b"120000") {
            problems.push(format!("`{shown}` is a symbolic link; commit the file itself"));
        } else if meta.starts_with(b"160000") {
            problems.push(format!("`{shown}` is a submodule; commit the files instead"));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

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
