//! Typed errors of the core: each says what is wrong, where (file, line, column) and
//! what to do, and prints like a compiler diagnostic.

use std::fmt;
use std::path::{Path, PathBuf};

/// Diagnostics shown; the rest are counted.
pub const MAX_DIAGNOSTICS: usize = 50;
/// Characters of input quoted in one message.
pub const MAX_EXCERPT: usize = 80;

/// A position in a text file, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

/// One problem in the user's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub message: String,
    pub file: PathBuf,
    pub pos: Option<Pos>,
    /// The offending source line (at most a window of it), shown under the location
    /// with a caret at this column of what is shown.
    pub source_line: Option<Box<(String, usize)>>,
    pub hint: Option<String>,
}

/// At most `MAX_EXCERPT` characters of `line` around `column` (1-based), with the
/// caret's column in what is shown. Control characters are shown as escapes.
fn window(line: &str, column: usize) -> (String, usize) {
    let max = MAX_EXCERPT;
    let start = column.saturating_sub(max / 2 + 1);
    let mut shown = String::new();
    if start > 0 {
        shown.push('…');
    }
    let mut caret = column - start + usize::from(start > 0);
    for (i, c) in line.chars().skip(start).enumerate() {
        if i == max {
            shown.push('…');
            break;
        }
        if c.is_control() && c != '\t' {
            let e = c.escape_default().to_string();
            if i + start + 1 < column {
                caret += e.chars().count() - 1;
            }
            shown += &e;
        } else {
            shown.push(c);
        }
    }
    (shown, caret.max(1))
}

/// Input quoted in a message: at most `MAX_EXCERPT` characters, control characters
/// escaped.
pub fn excerpt(s: &str) -> String {
    let max = MAX_EXCERPT;
    let mut out = String::new();
    for c in s.chars().take(max) {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if s.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

/// The line and column of byte `offset` in `bytes` (1-based; columns count characters
/// of the valid text before it).
pub fn pos_of_offset(bytes: &[u8], offset: usize) -> Pos {
    let before = &bytes[..offset.min(bytes.len())];
    let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = String::from_utf8_lossy(&before[line_start..]).chars().count() + 1;
    Pos { line, column }
}

impl Diagnostic {
    pub fn new(file: &Path, message: impl Into<String>) -> Self {
        Diagnostic {
            message: message.into(),
            file: file.to_path_buf(),
            pos: None,
            source_line: None,
            hint: None,
        }
    }

    /// Point at `pos` in `text` (the contents of `self.file`). A long line is cut to a
    /// window around the column, so a 10 MB line is never echoed.
    pub fn at(mut self, text: &str, pos: Option<Pos>) -> Self {
        self.pos = pos;
        self.source_line = None;
        if let Some(p) = pos {
            if let Some(line) = text.split('\n').nth(p.line.saturating_sub(1)) {
                let line = line.strip_suffix('\r').unwrap_or(line);
                self.source_line = Some(Box::new(window(line, p.column)));
            }
        }
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Messages quote input; a huge value is cut, not echoed.
        let limit = 400;
        match self.message.char_indices().nth(limit) {
            Some((i, _)) => writeln!(f, "error: {}…", &self.message[..i])?,
            None => writeln!(f, "error: {}", self.message)?,
        }
        match self.pos {
            Some(p) => writeln!(f, "  --> {}:{}:{}", self.file.display(), p.line, p.column)?,
            None => writeln!(f, "  --> {}", self.file.display())?,
        }
        if let (Some(p), Some(shown)) = (self.pos, &self.source_line) {
            let (src, caret) = &**shown;
            let num = p.line.to_string();
            let pad = " ".repeat(num.len());
            writeln!(f, "{pad} |")?;
            writeln!(f, "{num} | {src}")?;
            writeln!(f, "{pad} | {}^", " ".repeat(caret.saturating_sub(1)))?;
        }
        if let Some(h) = &self.hint {
            writeln!(f, "  = hint: {h}")?;
        }
        Ok(())
    }
}

/// Every problem found in one pass: we report them all, not just the first; each
/// once, and at most `MAX_DIAGNOSTICS` (the rest are counted in `.1`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>, pub usize);

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        if self.0.contains(&d) {
            return;
        }
        if self.0.len() >= MAX_DIAGNOSTICS {
            self.1 += 1;
            return;
        }
        self.0.push(d);
    }
    /// Whether more reports would only be counted, not shown: callers stop looking.
    pub fn is_full(&self) -> bool {
        self.0.len() >= MAX_DIAGNOSTICS
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// `Ok(value)` when nothing was reported, else all the reports.
    pub fn into_result<T>(self, value: T) -> Result<T, Diagnostics> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Diagnostics(vec![d], 0)
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        if self.1 > 0 {
            writeln!(
                f,
                "\n{} errors; {} more not shown: fix these first",
                self.0.len() + self.1,
                self.1
            )?;
        } else if self.0.len() > 1 {
            writeln!(f, "\n{} errors", self.0.len())?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}
