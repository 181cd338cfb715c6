//! How big a push may be: git.max_object_size and git.max_push_size, as bytes. Pure;
//! the ssh dispatcher hands the push size to git (`receive.maxInputSize`) and the
//! pre-receive hook checks every new object against the object size.

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
    fn names() {
        assert_eq!(name_problem(b"a/main.lua"), None);
        assert!(name_problem(b"a\xff.lua").unwrap().contains("not valid UTF-8"));
        assert!(name_problem(b"a\nb.lua")
            .unwrap()
            .contains("`a\\nb.lua` contains a control character"));
    }
}
