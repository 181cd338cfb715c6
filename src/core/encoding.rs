//! Windows traps in pushed Lua: PowerShell's `>` and some editors save UTF-16 (with a
//! byte-order mark), others put a UTF-8 byte-order mark first. LuaJIT reads either as
//! `unexpected symbol near '<\255>'`; the push says what it is and what to do instead.
//! CRLF line endings are fine (Lua reads `\r\n` as a line break). Pure.

/// How much of a file's start is looked at: UTF-16 text without a byte-order mark
/// shows a NUL in every other byte of its first line already.
pub const SNIFF: usize = 4096;

/// What is wrong with the encoding of a Lua file that starts with `head` (its first
/// `SNIFF` bytes, or all of it), if anything.
pub fn problem(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(&[0xFF, 0xFE]) {
        Some("is saved as UTF-16 (little-endian, with a byte-order mark)")
    } else if head.starts_with(&[0xFE, 0xFF]) {
        Some("is saved as UTF-16 (big-endian, with a byte-order mark)")
    } else if head.starts_with(&[0xEF, 0xBB, 0xBF]) {
        Some("starts with a UTF-8 byte-order mark")
    } else if head.contains(&0) {
        Some("contains NUL bytes (UTF-16 without a byte-order mark?)")
    } else {
        None
    }
}

/// The message for file `name` (as the pusher knows it) with `problem`.
pub fn message(name: &str, problem: &str) -> String {
    format!(
        "{name}: {problem}; save it as UTF-8 (without a byte-order mark), commit and push again \
         (README, \"Developing from Windows\", says how)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf16_and_byte_order_marks_are_named_crlf_passes() {
        let utf16le: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain("return 1\r\n".encode_utf16().flat_map(|u| u.to_le_bytes()))
            .collect();
        assert_eq!(
            problem(&utf16le),
            Some("is saved as UTF-16 (little-endian, with a byte-order mark)")
        );
        let utf16be: Vec<u8> = [0xFE, 0xFF]
            .into_iter()
            .chain("return 1".encode_utf16().flat_map(|u| u.to_be_bytes()))
            .collect();
        assert!(problem(&utf16be).unwrap().contains("big-endian"));
        let bare: Vec<u8> = "return 1".encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
        assert!(problem(&bare).unwrap().contains("NUL bytes"));
        assert_eq!(
            problem(b"\xEF\xBB\xBFreturn 1\n"),
            Some("starts with a UTF-8 byte-order mark")
        );
        assert_eq!(problem(b"return 1\r\n-- caf\xC3\xA9\r\n"), None);
        assert_eq!(problem(b""), None);
        let m = message("game/main.lua", problem(&utf16le).unwrap());
        assert!(m.starts_with("game/main.lua: is saved as UTF-16"), "{m}");
        assert!(m.contains("save it as UTF-8"), "{m}");
    }
}
