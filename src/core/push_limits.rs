//! How big a push may be: git.max_object_size and git.max_push_size, as bytes; the
//! tree that deploys (git.max_files, git.max_unpacked_size) and a branch's history
//! beyond master (git.max_branch_size). Pure; the ssh dispatcher hands the push size to
//! git (`receive.maxInputSize`) and the pre-receive hook checks the rest.

/// `10M` → 10485760. Suffixes K, M, G are powers of 1024; at least 1 KiB.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let (digits, mult) = match s.as_bytes().last() {
        Some(b'K') => (&s[..s.len() - 1], 1u64 << 10),
        Some(b'M') => (&s[..s.len() - 1], 1 << 20),
        Some(b'G') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 12 {
        return Err(format!("`{}` is not a size", crate::core::error::excerpt(s)));
    }
    let n: u64 = digits.parse().map_err(|_| format!("`{s}` is not a size"))?;
    let bytes = n.checked_mul(mult).ok_or_else(|| format!("`{s}` is too large"))?;
    if bytes < 1024 {
        return Err(format!("`{s}` is less than 1K: no push would fit"));
    }
    Ok(bytes)
}

/// `10485760` → `10M`, for messages.
pub fn human(bytes: u64) -> String {
    for (unit, m) in [("G", 1u64 << 30), ("M", 1 << 20), ("K", 1 << 10)] {
        if bytes % m == 0 {
            return format!("{}{unit}", bytes / m);
        }
    }
    format!("{bytes} bytes")
}

/// The bounds of the tree that deploys (git.max_files, git.max_unpacked_size), counted
/// from git's own listing (`git ls-tree -r -l -z`) as it streams: the count stops at
/// the first entry past a limit, so a tree of a million entries (a few KB pushed: one
/// blob, trees that repeat it) costs ten thousand lines, never an extraction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeLimits {
    pub max_files: usize,
    pub max_bytes: u64,
}

/// What the listing held so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub files: usize,
    pub bytes: u64,
}

/// One record of `git ls-tree -r -l -z`: `<mode> <type> <object> <size>\t<path>`
/// (size `-` for a submodule) → (mode, size, path).
pub fn parse_long_entry(record: &[u8]) -> Option<(&[u8], u64, &[u8])> {
    let tab = record.iter().position(|b| *b == b'\t')?;
    let meta = std::str::from_utf8(&record[..tab]).ok()?;
    let mut words = meta.split_ascii_whitespace();
    let mode = words.next()?;
    let size = words.nth(2).and_then(|s| s.parse().ok()).unwrap_or(0);
    Some((&record[..mode.len()], size, &record[tab + 1..]))
}

impl Tally {
    /// Count one entry of `size` bytes; the refusal once a limit is passed, naming the
    /// limit and the hhl.yaml key that sets it.
    pub fn add(&mut self, size: u64, limits: &TreeLimits) -> Result<(), String> {
        self.files += 1;
        self.bytes = self.bytes.saturating_add(size);
        if self.files > limits.max_files {
            return Err(format!(
                "the tree that would deploy holds more than {} files; the limit is {} (git.max_files in hhl.yaml): \
                 deploy fewer files, or ask an admin to raise it",
                limits.max_files, limits.max_files
            ));
        }
        if self.bytes > limits.max_bytes {
            return Err(format!(
                "the files of the tree that would deploy take more than {} unpacked; the limit is {} \
                 (git.max_unpacked_size in hhl.yaml): deploy less, or ask an admin to raise it",
                human(limits.max_bytes),
                human(limits.max_bytes)
            ));
        }
        Ok(())
    }
}

/// The refusal of a branch whose history beyond master (`used` bytes as git stores
/// them) passes git.max_branch_size, or None.
pub fn branch_problem(branch: &str, used: u64, max: u64) -> Option<String> {
    (used > max).then(|| {
        format!(
            "branch `{branch}` would hold {} of history that master has not; the limit is {} \
             (git.max_branch_size in hhl.yaml): squash or drop commits (and force-push), have master merge them, \
             or ask an admin to raise it",
            approx(used),
            human(max)
        )
    })
}

/// `123456789` → `117.7M`, for sizes measured rather than configured.
pub fn approx(bytes: u64) -> String {
    for (unit, m) in [("G", 1u64 << 30), ("M", 1 << 20), ("K", 1 << 10)] {
        if bytes >= m {
            return format!("{:.1}{unit}", bytes as f64 / m as f64);
        }
    }
    format!("{bytes} bytes")
}

/// Why a path in a pushed tree cannot be deployed, or None. Names must be UTF-8 with
/// no control characters (a newline would split every line-based tool's view of it).
pub fn name_problem(path: &[u8]) -> Option<String> {
    let Ok(s) = std::str::from_utf8(path) else {
        return Some(format!(
            "file name `{}` is not valid UTF-8; rename it",
            String::from_utf8_lossy(path).escape_debug()
        ));
    };
    s.chars().any(char::is_control).then(|| {
        format!(
            "file name `{}` contains a control character (a newline?); rename it",
            s.escape_debug()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10M"), Ok(10 << 20));
        assert_eq!(parse_size("2048"), Ok(2048));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("10MB").unwrap_err(), "`10MB` is not a size");
        assert_eq!(parse_size("").unwrap_err(), "`` is not a size");
        assert_eq!(
            parse_size("512").unwrap_err(),
            "`512` is less than 1K: no push would fit"
        );
        assert!(parse_size("99999999999G").is_err());
        assert_eq!(human(10 << 20), "10M");
        assert_eq!(human(1500), "1500 bytes");
    }

    #[test]
    fn tree_tally_stops_at_the_first_entry_past_a_limit() {
        let limits = TreeLimits {
            max_files: 3,
            max_bytes: 1 << 20,
        };
        let mut t = Tally::default();
        for _ in 0..3 {
            t.add(10, &limits).unwrap();
        }
        let e = t.add(10, &limits).unwrap_err();
        assert!(
            e.starts_with(
                "the tree that would deploy holds more than 3 files; the limit is 3 (git.max_files in hhl.yaml)"
            ),
            "{e}"
        );
        let mut t = Tally::default();
        let limits = TreeLimits {
            max_files: 10,
            max_bytes: 2048,
        };
        t.add(2048, &limits).unwrap();
        let e = t.add(1, &limits).unwrap_err();
        assert!(
            e.contains("take more than 2K unpacked; the limit is 2K (git.max_unpacked_size in hhl.yaml)"),
            "{e}"
        );
        assert_eq!(
            parse_long_entry(b"100644 blob 0123abcd     120\tlib/a b.lua"),
            Some((&b"100644"[..], 120, &b"lib/a b.lua"[..]))
        );
        assert_eq!(
            parse_long_entry(b"160000 commit 0123abcd       -\tsub"),
            Some((&b"160000"[..], 0, &b"sub"[..]))
        );
        assert_eq!(parse_long_entry(b"garbage"), None);
    }

    #[test]
    fn branch_size() {
        assert_eq!(branch_problem("dev1", 100, 1024), None);
        let e = branch_problem("dev1", 3 << 20, 2 << 20).unwrap();
        assert!(
            e.starts_with("branch `dev1` would hold 3.0M of history that master has not; the limit is 2M (git.max_branch_size in hhl.yaml)"),
            "{e}"
        );
    }

    #[test]
    fn names() {
        assert_eq!(name_problem(b"a/main.lua"), None);
        assert!(name_problem(b"a\xff.lua").unwrap().contains("not valid UTF-8"));
        assert!(name_problem(b"a\nb.lua")
            .unwrap()
            .contains("`a\\nb.lua` contains a control character"));
    }
}
