//! One rule per target syntax. Every value that reaches a generated file is turned
//! into one of these types first; the writers of each file take only these types, so
//! a new artifact cannot splice a value in raw. Each constructor either escapes the
//! value into one token of its syntax or says why it cannot (`Unsafe`); nothing here
//! knows where a value came from: callers locate the refusal.

use std::fmt;

/// Why a value cannot be written safely into a file of some syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsafe(pub String);

impl fmt::Display for Unsafe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The first character no file of ours can hold: control characters (newlines end
/// directives in every syntax we write) and Unicode line separators (which end
/// JavaScript strings in older engines).
fn control(s: &str) -> Option<char> {
    s.chars()
        .find(|c| c.is_control() || *c == '\u{2028}' || *c == '\u{2029}')
}

fn describe(c: char) -> String {
    match c {
        '\n' => "a newline".into(),
        '\r' => "a carriage return".into(),
        '\t' => "a tab".into(),
        c => format!("the control character U+{:04X}", c as u32),
    }
}

fn refuse_control(s: &str) -> Result<(), Unsafe> {
    match control(s) {
        Some(c) => Err(Unsafe(format!("contains {}", describe(c)))),
        None => Ok(()),
    }
}

/// Characters that may stand in a bare word of both nginx and Redis configs: not
/// white space, quotes, backslash, `;`, braces, `#` or `$`. Non-ASCII letters are
/// plain bytes to both parsers.
fn bare_ok(s: &str) -> bool {
    !s.is_empty()
        && !s.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '\\' | ';' | '{' | '}' | '#' | '$' | '`')
        })
}

fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// One nginx token: a bare word when that is safe, else a double-quoted string with
/// `"` and `\` escaped. `$` is refused: nginx would read a variable and has no escape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NginxToken(String);

impl NginxToken {
    pub fn new(s: &str) -> Result<Self, Unsafe> {
        refuse_control(s)?;
        if s.contains('$') {
            return Err(Unsafe(
                "contains `$`, which nginx reads as a variable and cannot escape".into(),
            ));
        }
        Ok(NginxToken(if bare_ok(s) { s.to_string() } else { double_quoted(s) }))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One Redis config argument: a bare word when safe, else a double-quoted string
/// (Redis reads `\"` and `\\` inside quotes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisToken(String);

impl RedisToken {
    pub fn new(s: &str) -> Result<Self, Unsafe> {
        refuse_control(s)?;
        Ok(RedisToken(if bare_ok(s) { s.to_string() } else { double_quoted(s) }))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A systemd unit-file value with `%` doubled (specifiers) and control characters
/// refused. `word` is one word of a list setting (`ReadWritePaths=`) or a whole
/// `KEY=value` of `Environment=`: quoted with `\\`/`\"` escapes when it holds white
/// space, quotes or backslashes. `text` is a setting that takes the rest of the line
/// (`Description=`, `User=`, `SourcePath=`), where quotes would be kept literally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitValue(String);

impl UnitValue {
    pub fn text(s: &str) -> Result<Self, Unsafe> {
        refuse_control(s)?;
        Ok(UnitValue(s.replace('%', "%%")))
    }
    pub fn word(s: &str) -> Result<Self, Unsafe> {
        refuse_control(s)?;
        let s = s.replace('%', "%%");
        let plain = !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\'));
        Ok(UnitValue(if plain { s } else { double_quoted(&s) }))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A RainerScript (rsyslog) string literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RainerString(String);

impl RainerString {
    pub fn new(s: &str) -> Result<Self, Unsafe> {
        refuse_control(s)?;
        Ok(RainerString(double_quoted(s)))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A JavaScript value for the polkit rule: JSON (which is JavaScript), with U+2028 and
/// U+2029 escaped too (serde_json leaves them raw; older engines end a string there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsValue(String);

impl JsValue {
    pub fn new<T: serde::Serialize + ?Sized>(v: &T) -> JsValue {
        let json = serde_json::to_string_pretty(v).expect("plain data serializes");
        JsValue(json.replace('\u{2028}', "\\u2028").replace('\u{2029}', "\\u2029"))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Text for a `#` comment line: control characters shown as escapes, so a file name
/// with a newline cannot start a line of its own.
pub fn comment(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() || c == '\u{2028}' || c == '\u{2029}' {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_tokens() {
        let t = |s: &str| NginxToken::new(s).map(|t| t.0);
        assert_eq!(t("1081").unwrap(), "1081");
        assert_eq!(t("/opt/hhl/spiel-ü").unwrap(), "/opt/hhl/spiel-ü");
        assert_eq!(t("x; include /etc/shadow").unwrap(), r#""x; include /etc/shadow""#);
        assert_eq!(t(r#"a "b" \c"#).unwrap(), r#""a \"b\" \\c""#);
        assert_eq!(t("").unwrap(), r#""""#);
        assert_eq!(t("}").unwrap(), r#""}""#);
        assert!(t("a\nb").unwrap_err().0.contains("newline"));
        assert!(t("$host").unwrap_err().0.contains("`$`"));
    }

    #[test]
    fn redis_tokens() {
        assert_eq!(RedisToken::new("127.0.0.1").unwrap().0, "127.0.0.1");
        assert_eq!(RedisToken::new("a b").unwrap().0, r#""a b""#);
        assert!(RedisToken::new("x\ndir /root/.ssh").is_err());
    }

    #[test]
    fn unit_values() {
        assert_eq!(UnitValue::word("/opt/100%").unwrap().0, "/opt/100%%");
        assert_eq!(UnitValue::word("A=/my dir").unwrap().0, r#""A=/my dir""#);
        assert_eq!(UnitValue::text("/my \"dir\" 5%").unwrap().0, "/my \"dir\" 5%%");
        assert!(UnitValue::word("/x\nExecStartPre=+/bin/sh").is_err());
        assert!(UnitValue::text("/x\nExecStartPre=+/bin/sh").is_err());
    }

    #[test]
    fn js_and_comments() {
        assert_eq!(JsValue::new("a\u{2028}\"").0, r#""a\u2028\"""#);
        assert_eq!(comment("a\nb"), "a\\nb");
    }
}
