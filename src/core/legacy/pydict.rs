//! A parser for Python literals (the original's `*.sub.py` value files): dicts, lists,
//! tuples, strings, numbers, True/False/None and comments. The text is parsed, never
//! evaluated; anything else is an error with its line and column.

use crate::core::error::Pos;

#[derive(Debug, Clone, PartialEq)]
pub enum Py {
    Dict(Vec<(Spanned, Spanned)>),
    List(Vec<Spanned>),
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    None,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Spanned {
    pub value: Py,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    pub pos: Pos,
    pub message: String,
}

pub fn parse(text: &str) -> Result<Spanned, ParseError> {
    let mut p = Parser {
        chars: text.chars().collect(),
        at: 0,
        line: 1,
        col: 1,
        depth: 0,
    };
    let v = p.value()?;
    p.skip_space();
    if p.at < p.chars.len() {
        return Err(p.error(format!("unexpected `{}` after the value", p.chars[p.at])));
    }
    Ok(v)
}

struct Parser {
    chars: Vec<char>,
    at: usize,
    line: usize,
    col: usize,
    /// Open dicts and lists: bounded, so deep nesting is an error, not a stack overflow.
    depth: usize,
}

/// A value file nests owner → values → a list: 3 levels. 32 leaves room for any real
/// file and keeps the recursive parser far from the stack's end.
pub const MAX_DEPTH: usize = 32;

impl Parser {
    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            column: self.col,
        }
    }
    fn error(&self, message: impl Into<String>) -> ParseError {
        ParseError {
            pos: self.pos(),
            message: message.into(),
        }
    }
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }
    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.at += 1;
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }
    fn skip_space(&mut self) {
        while let Some(c) = self.peek() {
            if c == '#' {
                while self.peek().is_some_and(|c| c != '\n') {
                    self.bump();
                }
            } else if c.is_whitespace() || c == '\\' && self.chars.get(self.at + 1) == Some(&'\n') {
                self.bump();
            } else {
                break;
            }
        }
    }
    fn expect(&mut self, want: char, context: &str) -> Result<(), ParseError> {
        self.skip_space();
        match self.peek() {
            Some(c) if c == want => {
                self.bump();
                Ok(())
            }
            Some(c) => Err(self.error(format!("expected `{want}` {context}, found `{c}`"))),
            None => Err(self.error(format!("expected `{want}` {context}, found the end of the file"))),
        }
    }

    fn value(&mut self) -> Result<Spanned, ParseError> {
        self.skip_space();
        let pos = self.pos();
        if matches!(self.peek(), Some('{' | '[' | '(')) {
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err(self.error(format!("dicts and lists nest more than {MAX_DEPTH} deep")));
            }
        }
        let nested = matches!(self.peek(), Some('{' | '[' | '('));
        let value = match self.peek() {
            None => return Err(self.error("expected a value, found the end of the file")),
            Some('{') => self.dict()?,
            Some('[') => Py::List(self.seq('[', ']')?),
            Some('(') => Py::List(self.seq('(', ')')?),
            Some('\'' | '"') => self.strings()?,
            Some(c) if c.is_ascii_digit() || c == '-' || c == '+' || c == '.' => self.number()?,
            Some(c) if c.is_alphabetic() || c == '_' => {
                let word = self.word();
                match word.as_str() {
                    "True" => Py::Bool(true),
                    "False" => Py::Bool(false),
                    "None" => Py::None,
                    "r" | "u" | "R" | "U" if matches!(self.peek(), Some('\'' | '"')) => self.strings()?,
                    _ => {
                        return Err(ParseError {
                            pos,
                            message: format!("`{word}` is not a literal: value files may hold only dicts, lists, strings, numbers, True, False and None"),
                        })
                    }
                }
            }
            Some(c) => return Err(self.error(format!("unexpected `{c}`: expected a value"))),
        };
        if nested {
            self.depth -= 1;
        }
        Ok(Spanned { value, pos })
    }

    fn word(&mut self) -> String {
        let mut w = String::new();
        while let Some(c) = self.peek().filter(|c| c.is_alphanumeric() || *c == '_') {
            w.push(c);
            self.bump();
        }
        w
    }

    fn dict(&mut self) -> Result<Py, ParseError> {
        self.bump();
        let mut items = Vec::new();
        loop {
            self.skip_space();
            if self.peek() == Some('}') {
                self.bump();
                return Ok(Py::Dict(items));
            }
            let key = self.value()?;
            self.expect(':', "after a dict key")?;
            let value = self.value()?;
            items.push((key, value));
            self.skip_space();
            match self.peek() {
                Some(',') => {
                    self.bump();
                }
                Some('}') => {}
                Some(c) => return Err(self.error(format!("expected `,` or `}}` in a dict, found `{c}`"))),
                None => return Err(self.error("the dict is not closed: expected `}`")),
            }
        }
    }

    fn seq(&mut self, open: char, close: char) -> Result<Vec<Spanned>, ParseError> {
        self.bump();
        let mut items = Vec::new();
        loop {
            self.skip_space();
            if self.peek() == Some(close) {
                self.bump();
                return Ok(items);
            }
            items.push(self.value()?);
            self.skip_space();
            match self.peek() {
                Some(',') => {
                    self.bump();
                }
                Some(c) if c == close => {}
                Some(c) => return Err(self.error(format!("expected `,` or `{close}`, found `{c}`"))),
                None => return Err(self.error(format!("`{open}` is not closed: expected `{close}`"))),
            }
        }
    }

    /// One or more adjacent string literals, concatenated as Python does.
    fn strings(&mut self) -> Result<Py, ParseError> {
        let mut s = self.string()?;
        loop {
            let save = (self.at, self.line, self.col);
            self.skip_space();
            if matches!(self.peek(), Some('\'' | '"')) {
                s += &self.string()?;
            } else {
                (self.at, self.line, self.col) = save;
                return Ok(Py::Str(s));
            }
        }
    }

    fn string(&mut self) -> Result<String, ParseError> {
        let start = self.pos();
        let q = self.bump().expect("caller saw a quote");
        let triple = self.peek() == Some(q) && self.chars.get(self.at + 1) == Some(&q);
        if triple {
            self.bump();
            self.bump();
        }
        let mut s = String::new();
        loop {
            let Some(c) = self.bump() else {
                return Err(ParseError {
                    pos: start,
                    message: "the string is not closed".into(),
                });
            };
            if c == q {
                if !triple {
                    return Ok(s);
                }
                if self.peek() == Some(q) && self.chars.get(self.at + 1) == Some(&q) {
                    self.bump();
                    self.bump();
                    return Ok(s);
                }
                s.push(c);
            } else if c == '\n' && !triple {
                return Err(ParseError {
                    pos: start,
                    message: "the string is not closed on its line".into(),
                });
            } else if c == '\\' {
                match self.bump() {
                    Some('n') => s.push('\n'),
                    Some('t') => s.push('\t'),
                    Some('r') => s.push('\r'),
                    Some('0') => s.push('\0'),
                    Some('\n') => {}
                    Some(e @ ('\\' | '\'' | '"')) => s.push(e),
                    Some(e) => {
                        s.push('\\');
                        s.push(e);
                    }
                    None => {
                        return Err(ParseError {
                            pos: start,
                            message: "the string is not closed".into(),
                        })
                    }
                }
            } else {
                s.push(c);
            }
        }
    }

    fn number(&mut self) -> Result<Py, ParseError> {
        let pos = self.pos();
        let mut t = String::new();
        while let Some(c) = self
            .peek()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | '_'))
        {
            // A sign is part of the number only at its start or after an exponent.
            if matches!(c, '-' | '+') && !(t.is_empty() || t.ends_with(['e', 'E'])) {
                break;
            }
            t.push(c);
            self.bump();
        }
        let clean = t.replace('_', "");
        let bad = || ParseError {
            pos,
            message: format!("`{t}` is not a number"),
        };
        if let Some(hex) = clean.strip_prefix("0x").or_else(|| clean.strip_prefix("0X")) {
            return i64::from_str_radix(hex, 16).map(Py::Int).map_err(|_| bad());
        }
        if let Ok(i) = clean.parse::<i64>() {
            return Ok(Py::Int(i));
        }
        clean.parse::<f64>().map(Py::Float).map_err(|_| bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_original_shape() {
        let v = parse("{\n  'master': {'PORT': 6379, 'BIND': '127.0.0.1 ' \"::1\",},  # c\n  'dev1': {'X': [1, 2.5, True, None, (3,)]},\n}").unwrap();
        let Py::Dict(items) = v.value else { panic!() };
        assert_eq!(items[0].0.value, Py::Str("master".into()));
        let Py::Dict(m) = &items[0].1.value else { panic!() };
        assert_eq!(m[1].1.value, Py::Str("127.0.0.1 ::1".into()));
        assert_eq!(items[1].0.pos, Pos { line: 3, column: 3 });
    }

    #[test]
    fn refuses_code() {
        let e = parse("{'a': __import__('os').system('rm -rf /')}").unwrap_err();
        assert!(e.message.contains("`__import__` is not a literal"), "{}", e.message);
        assert_eq!(e.pos, Pos { line: 1, column: 7 });
    }

    #[test]
    fn reports_unclosed_and_missing_comma() {
        assert_eq!(
            parse("{'a': 1").unwrap_err().message,
            "the dict is not closed: expected `}`"
        );
        let e = parse("{'a': 1\n 'b': 2}").unwrap_err();
        assert_eq!(
            (e.pos, e.message.as_str()),
            (Pos { line: 2, column: 2 }, "expected `,` or `}` in a dict, found `'`")
        );
        assert_eq!(parse("{'a': 'x}").unwrap_err().message, "the string is not closed");
    }

    #[test]
    fn deep_nesting_is_an_error() {
        let text = "[".repeat(20_000);
        let e = parse(&text).unwrap_err();
        assert!(e.message.contains("nest more than 32"), "{}", e.message);
        assert_eq!(e.pos.column, 33);
    }

    #[test]
    fn numbers() {
        assert_eq!(parse("-12").unwrap().value, Py::Int(-12));
        assert_eq!(parse("0x10").unwrap().value, Py::Int(16));
        assert_eq!(parse("1e3").unwrap().value, Py::Float(1000.0));
        assert!(parse("1.2.3").is_err());
    }
}
