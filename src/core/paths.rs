//! What a path in hhl.yaml must be: absolute, normalised, made of characters every
//! generated file can hold, within the kernel's lengths; and the layout rule that no
//! two trees hhlctl manages sit inside each other. Pure: only the text of paths.

use std::path::{Component, Path};

use crate::core::bounds::{MAX_COMPONENT_BYTES, MAX_PATH_BYTES};
use crate::core::error::excerpt;

/// Why `p` cannot be used as a path in hhl.yaml, or `None`.
pub fn path_problem(p: &Path) -> Option<String> {
    let Some(s) = p.to_str() else {
        return Some("the path is not UTF-8".into());
    };
    let shown = excerpt(s);
    if s.len() > MAX_PATH_BYTES {
        return Some(format!(
            "`{shown}` is {} bytes long; the limit is {MAX_PATH_BYTES}",
            s.len()
        ));
    }
    if let Some(c) = s.chars().find(|c| c.is_control() || c.is_whitespace()) {
        let what = if c.is_whitespace() && !c.is_control() {
            "white space"
        } else {
            "a control character"
        };
        return Some(format!(
            "`{shown}` contains {what} (U+{:04X}); generated files cannot hold it in a path",
            c as u32
        ));
    }
    // Quotes, backslash, `$`, `;`, braces and `#` are syntax in nginx, Redis or
    // systemd; a path with them could only be written quoted, and templates join
    // paths with other text (`{{hhl.prefix}}/temp`).
    if let Some(c) = s
        .chars()
        .find(|c| matches!(c, '"' | '\'' | '\\' | '$' | ';' | '{' | '}' | '#' | '`'))
    {
        return Some(format!(
            "`{shown}` contains `{c}`, which nginx, Redis or systemd read as syntax"
        ));
    }
    if !s.starts_with('/') {
        return Some(format!("`{shown}` is not an absolute path"));
    }
    if s == "/" {
        return Some("`/` is the root directory; name a directory of its own".into());
    }
    if s.contains("//")
        || s.ends_with('/')
        || p.components()
            .any(|c| matches!(c, Component::CurDir | Component::ParentDir))
        || s.contains("/./")
        || s.ends_with("/.")
    {
        return Some(format!(
            "`{shown}` is not normalised (no `.`, `..`, `//` or trailing `/`)"
        ));
    }
    if let Some(c) = s.split('/').find(|c| c.len() > MAX_COMPONENT_BYTES) {
        return Some(format!(
            "a component of `{shown}` is {} bytes long; the limit is {MAX_COMPONENT_BYTES}",
            c.len()
        ));
    }
    None
}

/// Whether `a` and `b` are the same path or one is inside the other.
pub fn overlap(a: &Path, b: &Path) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_and_bad_paths() {
        for ok in ["/opt/hhl", "/opt/spiel-ü/100%", "/a.b/c_d+e@f"] {
            assert_eq!(path_problem(Path::new(ok)), None, "{ok}");
        }
        let bad = [
            ("opt/hhl", "not an absolute path"),
            ("/", "root directory"),
            ("/opt/../etc", "not normalised"),
            ("/opt//x", "not normalised"),
            ("/opt/./x", "not normalised"),
            ("/opt/x/", "not normalised"),
            ("/opt/my dir", "white space"),
            ("/opt/x\nExecStartPre=+/bin/sh", "control character"),
            ("/opt/\"x", "contains `\"`"),
            ("/opt/$x", "contains `$`"),
        ];
        for (p, want) in bad {
            let got = path_problem(Path::new(p)).unwrap();
            assert!(got.contains(want), "{p}: {got}");
        }
        let long = format!("/opt/{}", "x".repeat(256));
        assert!(path_problem(Path::new(&long)).unwrap().contains("256 bytes"));
        assert!(overlap(Path::new("/opt/hhl"), Path::new("/opt/hhl/x")));
        assert!(!overlap(Path::new("/opt/hhl"), Path::new("/opt/hhlx")));
    }
}
