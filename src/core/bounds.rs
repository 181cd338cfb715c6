//! Limits on every input, and the linear pre-scan of hhl.yaml that enforces the YAML
//! ones before the parser sees the text (the parser's time grows with the square of
//! the nesting depth, and it reports aliases, tags and extra documents without a
//! position). Each limit is far above what a real studio writes and far below what
//! would cost memory, stack or seconds.

use crate::core::error::Pos;

/// hhl.yaml: a hundred developers with overrides is ~20 KiB; the YAML parser takes
/// ~0.3 s for 256 KiB in a debug build.
pub const MAX_CONFIG_BYTES: usize = 256 << 10;
/// Nesting of mappings and sequences; hhl.yaml needs 6.
pub const MAX_YAML_DEPTH: usize = 32;
/// YAML aliases (`*name`): a few share values; dozens are an alias bomb (each level
/// multiplies the document; the parser's own limit stops it only after a while).
pub const MAX_ALIASES: usize = 32;
/// Developers (unix users, slices, polkit entries: each costs a process or file).
pub const MAX_DEVELOPERS: usize = 500;
/// Logic servers.
pub const MAX_SERVERS: usize = 50;
/// Instances in all (each is a running nginx or Redis).
pub const MAX_INSTANCES: usize = 5000;
/// Values in one owner's map, and items in one list value.
pub const MAX_VALUES: usize = 500;
/// Length of one value string.
pub const MAX_VALUE_BYTES: usize = 64 << 10;
/// A template file (the built-ins are under 1 KiB; the handlebars parser takes ~0.3 s
/// for 32 KiB in a debug build).
pub const MAX_TEMPLATE_BYTES: usize = 32 << 10;
/// A legacy serverctrl file (the originals are under 1 KiB).
pub const MAX_LEGACY_BYTES: usize = 64 << 10;
/// `{{...}}` tags in a template (the built-ins have about 20): the handlebars crate's
/// time grows with the square of their number (7,000 take seconds).
pub const MAX_TEMPLATE_TAGS: usize = 1000;
/// Nesting of `{{#block}}`s and `(subexpressions)` in a template.
pub const MAX_TEMPLATE_DEPTH: usize = 16;
/// One rendered file (a config is a few KiB).
pub const MAX_RENDERED_BYTES: usize = 1 << 20;
/// Everything rendered in one run.
pub const MAX_RENDERED_TOTAL: usize = 256 << 20;
/// A path, and one component of it (the kernel's limits).
pub const MAX_PATH_BYTES: usize = 4095;
pub const MAX_COMPONENT_BYTES: usize = 255;

/// What the pre-scan found that the parser's own errors need to be located.
#[derive(Debug, Default)]
pub struct YamlScan {
    /// The first alias (`*name`): where an alias bomb starts.
    pub first_alias: Option<Pos>,
}

/// A refusal: position, message, hint.
pub type ScanError = (Pos, String, &'static str);

/// One pass over `text`: size, nesting depth, tags and extra documents. Block
/// scalars (`|`, `>`) are skipped; quotes are tracked so `#`, brackets and `!` inside
/// strings do not count.
pub fn scan_yaml(text: &str) -> Result<YamlScan, ScanError> {
    let mut scan = YamlScan::default();
    let mut aliases = 0usize;
    if text.len() > MAX_CONFIG_BYTES {
        return Err((
            Pos { line: 1, column: 1 },
            format!("hhl.yaml is {} bytes; the limit is {MAX_CONFIG_BYTES}", text.len()),
            "hhl.yaml describes instances, not data: move large content into templates",
        ));
    }
    let deep = |line, column| {
        Err((
            Pos { line, column },
            format!("YAML nested more than {MAX_YAML_DEPTH} levels deep"),
            "hhl.yaml needs a handful of levels; flatten this value",
        ))
    };
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    let mut quote: Option<char> = None;
    let mut content_seen = false;
    // Indentation of the key that opened a block scalar, while inside it.
    let mut block_scalar: Option<usize> = None;
    for (n, line) in text.split('\n').enumerate() {
        let line_no = n + 1;
        let indent = line.len() - line.trim_start_matches(' ').len();
        let trimmed = line.trim();
        if let Some(key_indent) = block_scalar {
            if trimmed.is_empty() || indent > key_indent {
                continue;
            }
            block_scalar = None;
        }
        if quote.is_none() && flow == 0 {
            if line.starts_with("---") || line.starts_with("...") {
                if content_seen && (line.len() == 3 || line[3..].starts_with([' ', '\t'])) {
                    return Err((
                        Pos {
                            line: line_no,
                            column: 1,
                        },
                        "a second YAML document starts here".into(),
                        "hhl.yaml is one document: remove this `---` and what follows, or merge it",
                    ));
                }
                continue;
            }
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            while indents.last().is_some_and(|&i| i >= indent) {
                indents.pop();
            }
            indents.push(indent);
            if indents.len() > MAX_YAML_DEPTH {
                return deep(line_no, indent + 1);
            }
        }
        if !trimmed.is_empty() {
            content_seen = true;
        }
        // Sequence dashes on one line (`- - x`) nest too.
        let mut depth_here = indents.len();
        let mut prev: Option<char> = None; // last non-space character on this line
        let mut after_space = true;
        let mut chars = line.char_indices().peekable();
        let mut column = 0;
        while let Some((i, c)) = chars.next() {
            column += 1;
            if let Some(q) = quote {
                if c == '\\' && q == '"' {
                    chars.next();
                    column += 1;
                } else if c == q {
                    quote = None;
                }
                prev = Some(c);
                after_space = false;
                continue;
            }
            let token_start = after_space && matches!(prev, None | Some(':' | '-' | '[' | '{' | ',' | '?'))
                || matches!(prev, Some('[' | '{' | ','));
            match c {
                '#' if after_space => break,
                '"' | '\'' if token_start => quote = Some(c),
                '[' | '{' if token_start || flow > 0 => {
                    flow += 1;
                    if depth_here + flow > MAX_YAML_DEPTH {
                        return deep(line_no, column);
                    }
                }
                ']' | '}' if flow > 0 => flow -= 1,
                '!' if token_start => {
                    return Err((
                        Pos { line: line_no, column },
                        "YAML tags (`!name`) are not used in hhl.yaml".into(),
                        "remove the tag; quote the value if it starts with `!`",
                    ));
                }
                '*' if token_start => {
                    scan.first_alias.get_or_insert(Pos { line: line_no, column });
                    aliases += 1;
                    if aliases > MAX_ALIASES {
                        return Err((
                            Pos { line: line_no, column },
                            format!("more than {MAX_ALIASES} YAML aliases (`*name`)"),
                            "write the values out instead of nesting aliases (`*name`)",
                        ));
                    }
                }
                '-' if token_start && matches!(chars.peek(), Some((_, ' '))) && flow == 0 => {
                    depth_here += 1;
                    if depth_here > MAX_YAML_DEPTH {
                        return deep(line_no, column);
                    }
                }
                '|' | '>' if token_start && flow == 0 => {
                    let rest =
                        line[i + 1..].trim_start_matches(['-', '+', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
                    let rest = rest.trim_start();
                    if rest.is_empty() || rest.starts_with('#') {
                        block_scalar = Some(indent);
                        break;
                    }
                }
                _ => {}
            }
            if c == ' ' || c == '\t' {
                after_space = true;
            } else {
                prev = Some(c);
                after_space = matches!(c, '[' | '{' | ',');
            }
        }
    }
    Ok(scan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> (usize, usize, String) {
        let (p, m, _) = scan_yaml(text).unwrap_err();
        (p.line, p.column, m)
    }

    #[test]
    fn accepts_the_example() {
        let text = include_str!("../../examples/hhl.yaml");
        scan_yaml(text).unwrap();
        scan_yaml("a: \"it's # not a comment [\"\nb: it's\nc: |\n  '\"[[[ !x\nd: [x, 'y']\n").unwrap();
    }

    #[test]
    fn refuses_depth_tags_and_documents_with_positions() {
        let deep = format!("a: {}{}\n", "[".repeat(40), "]".repeat(40));
        assert_eq!(err(&deep).0, 1);
        assert!(err(&deep).2.contains("nested more than"));
        let mut block = String::new();
        for i in 0..40 {
            block += &format!("{}k{i}:\n", " ".repeat(i));
        }
        assert_eq!(err(&block).0, MAX_YAML_DEPTH + 1);
        assert_eq!(
            err("a: !foo bar\n"),
            (1, 4, "YAML tags (`!name`) are not used in hhl.yaml".into())
        );
        assert_eq!(err("developers: [a, !x b]\n").1, 17);
        assert_eq!(err("a: 1\n---\nb: 2\n").0, 2);
        scan_yaml("---\na: 1\n").unwrap();
        assert_eq!(
            scan_yaml("a: &x 1\nb: *x\n").unwrap().first_alias,
            Some(Pos { line: 2, column: 4 })
        );
    }

    #[test]
    fn is_linear_on_deep_input() {
        let t = std::time::Instant::now();
        let text = "[".repeat(200_000);
        assert!(scan_yaml(&text).is_err());
        let text = "- ".repeat(200_000);
        assert!(scan_yaml(&text).is_err());
        assert!(t.elapsed().as_secs() < 2);
    }
}
