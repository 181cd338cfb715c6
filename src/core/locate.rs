//! Find where a key path stands in a YAML text, for errors found after parsing
//! (duplicate ports, bad names). The YAML crate reports positions for syntax and type
//! errors only, so semantic checks ask here. Handles block mappings, block and flow
//! sequences and one-line flow mappings, which is how hhl.yaml is written; anything
//! else falls back to the deepest enclosing key that was found.

use crate::core::error::Pos;

/// Position of `path` (keys, or decimal indexes for sequence items) in `src`, or of
/// the deepest prefix of it that exists.
pub fn locate(src: &str, path: &[&str]) -> Option<Pos> {
    let mut best: Option<(usize, Pos)> = None;
    // (indent, key) of the enclosing block entries.
    let mut stack: Vec<(usize, String)> = Vec::new();
    // Per enclosing indent: the index the next `- ` item at that indent gets.
    let mut seq_next: Vec<(usize, usize)> = Vec::new();

    for (n, raw) in src.lines().enumerate() {
        let line = strip_comment(raw);
        if line.trim().is_empty() || line.trim_start().starts_with("---") {
            continue;
        }
        let mut indent = line.len() - line.trim_start().len();
        let mut rest = line.trim_start();
        stack.retain(|(i, _)| *i < indent);
        seq_next.retain(|(i, _)| *i <= indent);

        // A sequence item: push its index, then read what follows the dash.
        while let Some(after) = rest.strip_prefix("- ").or(if rest == "-" { Some("") } else { None }) {
            let idx = match seq_next.iter_mut().find(|(i, _)| *i == indent) {
                Some((_, next)) => {
                    *next += 1;
                    *next - 1
                }
                None => {
                    seq_next.push((indent, 1));
                    0
                }
            };
            stack.push((indent, idx.to_string()));
            let skipped = rest.len() - after.trim_start().len();
            indent += skipped;
            rest = after.trim_start();
            consider(
                &stack,
                path,
                Pos {
                    line: n + 1,
                    column: indent + 1,
                },
                &mut best,
            );
        }
        if rest.is_empty() {
            continue;
        }
        if let Some((key, value, value_col)) = split_key(rest) {
            stack.push((indent, key));
            consider(
                &stack,
                path,
                Pos {
                    line: n + 1,
                    column: indent + 1,
                },
                &mut best,
            );
            // A flow collection on the same line: look one level inside it.
            if stack.len() < path.len() && keys_match(&stack, path) {
                let col = indent + value_col;
                if let Some(c) = flow_child(value, path[stack.len()]) {
                    let pos = Pos {
                        line: n + 1,
                        column: col + c + 1,
                    };
                    best = Some((stack.len() + 1, pos));
                }
            }
        }
    }
    best.map(|(_, p)| p)
}

fn consider(stack: &[(usize, String)], path: &[&str], pos: Pos, best: &mut Option<(usize, Pos)>) {
    if stack.len() <= path.len() && keys_match(stack, path) && best.is_none_or(|(d, _)| stack.len() > d) {
        *best = Some((stack.len(), pos));
    }
}

fn keys_match(stack: &[(usize, String)], path: &[&str]) -> bool {
    stack.iter().zip(path).all(|((_, k), p)| k == p)
}

fn strip_comment(line: &str) -> &str {
    // A '#' starts a comment at the line start or after white space, outside quotes.
    let (mut single, mut double) = (false, false);
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && prev.is_whitespace() => return &line[..i],
            _ => {}
        }
        prev = c;
    }
    line
}

/// `key: value` → (unquoted key, value, byte offset of value in `s`).
fn split_key(s: &str) -> Option<(String, &str, usize)> {
    let bytes = s.as_bytes();
    let (key, end) = if bytes.first() == Some(&b'"') || bytes.first() == Some(&b'\'') {
        let q = bytes[0] as char;
        let close = s[1..].find(q)? + 1;
        (s[1..close].to_string(), close + 1)
    } else {
        let colon = s.find(": ").or_else(|| s.strip_suffix(':').map(|k| k.len()))?;
        if s[..colon].starts_with(['{', '[']) {
            return None;
        }
        (s[..colon].trim_end().to_string(), colon)
    };
    let after = s.get(end..)?.strip_prefix(':')?;
    let value = after.trim_start();
    Some((key, value, s.len() - value.len()))
}

/// Offset of entry `want` inside a one-line flow mapping (`{a: 1, b: 2}`, by key) or
/// flow sequence (`[x, y]`, by index).
fn flow_child(value: &str, want: &str) -> Option<usize> {
    let (open, close) = match value.chars().next()? {
        '{' => ('{', '}'),
        '[' => ('[', ']'),
        _ => return None,
    };
    let inner_end = value.rfind(close).unwrap_or(value.len());
    let mut offset = 1;
    for (idx, item) in value[1..inner_end].split(',').enumerate() {
        let lead = item.len() - item.trim_start().len();
        let item_t = item.trim();
        let hit = if open == '{' {
            split_key(item_t).is_some_and(|(k, _, _)| k == want)
                || item_t.split(':').next().map(str::trim) == Some(want)
        } else {
            idx.to_string() == want
        };
        if hit {
            return Some(offset + lead);
        }
        offset += item.len() + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "\
developers: [dev1, dev2]
admins:
  - ops
  - boss # a comment
servers:
  socketserver:
    template: builtin:socketserver
    values:
      master:
        port: 1080
      dev1: {port: 1081, lua_code_cache: on}
";

    fn at(path: &[&str]) -> (usize, usize) {
        let p = locate(SRC, path).unwrap();
        (p.line, p.column)
    }

    #[test]
    fn finds_block_keys() {
        assert_eq!(at(&["servers", "socketserver", "values", "master", "port"]), (10, 9));
        assert_eq!(at(&["servers", "socketserver", "template"]), (7, 5));
    }

    #[test]
    fn finds_flow_entries() {
        assert_eq!(at(&["servers", "socketserver", "values", "dev1", "port"]), (11, 14));
        assert_eq!(
            at(&["servers", "socketserver", "values", "dev1", "lua_code_cache"]),
            (11, 26)
        );
        assert_eq!(at(&["developers", "1"]), (1, 20));
    }

    #[test]
    fn finds_block_sequence_items() {
        assert_eq!(at(&["admins", "1"]), (4, 5));
    }

    #[test]
    fn falls_back_to_deepest_prefix() {
        assert_eq!(at(&["servers", "socketserver", "values", "dev9", "port"]), (8, 5));
        assert_eq!(locate(SRC, &["nothing"]), None);
    }
}
