//! `ssh <entry>@server redis CMD [ARG…]`: one command on the caller's own Redis. The
//! words as redis-cli splits a line (quotes and escapes, so `SET k "a b"` works through
//! ssh's single command string), the command in Redis's protocol, and the reply shown
//! as redis-cli shows it in a terminal. Pure: the connection is the host's.

/// Most arguments and bytes one command may carry: far above a hand-typed command.
pub const MAX_ARGS: usize = 1024;

/// Commands that never end on their own (they wait for messages until the client
/// leaves): an ssh session is no place for them; `ssh -L` and redis-cli are.
const STREAMING: &[&str] = &["subscribe", "psubscribe", "ssubscribe", "monitor", "sync", "psync"];

/// Split `line` into words as redis-cli does (sdssplitargs): blanks separate words;
/// "…" takes \n \r \t \b \a \\ \" and \xHH escapes; '…' takes \' only; a closing quote
/// must be followed by a blank or the end.
pub fn split(line: &str) -> Result<Vec<Vec<u8>>, String> {
    let b = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == b.len() {
            return Ok(out);
        }
        let mut word = Vec::new();
        let (mut dq, mut sq) = (false, false);
        loop {
            let c = b.get(i).copied();
            if dq {
                match c {
                    None => return Err("redis: a \"quoted\" argument is not closed".into()),
                    Some(b'\\') if i + 3 < b.len() && b[i + 1] == b'x' => {
                        let hex = std::str::from_utf8(&b[i + 2..i + 4]).ok();
                        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                            Some(v) => {
                                word.push(v);
                                i += 3;
                            }
                            None => {
                                word.push(b'x');
                                i += 1;
                            }
                        }
                    }
                    Some(b'\\') if i + 1 < b.len() => {
                        i += 1;
                        word.push(match b[i] {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 8,
                            b'a' => 7,
                            other => other,
                        });
                    }
                    Some(b'"') => {
                        if b.get(i + 1).is_some_and(|n| !n.is_ascii_whitespace()) {
                            return Err("redis: a closing quote must be followed by a blank".into());
                        }
                        i += 1;
                        break;
                    }
                    Some(other) => word.push(other),
                }
            } else if sq {
                match c {
                    None => return Err("redis: a 'quoted' argument is not closed".into()),
                    Some(b'\\') if b.get(i + 1) == Some(&b'\'') => {
                        word.push(b'\'');
                        i += 1;
                    }
                    Some(b'\'') => {
                        if b.get(i + 1).is_some_and(|n| !n.is_ascii_whitespace()) {
                            return Err("redis: a closing quote must be followed by a blank".into());
                        }
                        i += 1;
                        break;
                    }
                    Some(other) => word.push(other),
                }
            } else {
                match c {
                    None => break,
                    Some(c) if c.is_ascii_whitespace() => break,
                    Some(b'"') => dq = true,
                    Some(b'\'') => sq = true,
                    Some(other) => word.push(other),
                }
            }
            i += 1;
        }
        out.push(word);
        if out.len() > MAX_ARGS {
            return Err(format!("redis: more than {MAX_ARGS} arguments"));
        }
    }
}

/// Why `words` will not be sent, if they will not.
pub fn refusal(words: &[Vec<u8>]) -> Option<String> {
    let Some(first) = words.first() else {
        return Some("redis needs a command: redis GET mykey, redis SET mykey value, redis KEYS '*'".into());
    };
    let name = String::from_utf8_lossy(first).to_ascii_lowercase();
    if STREAMING.contains(&name.as_str()) {
        return Some(format!(
            "redis: {} waits for messages until the client leaves; forward your Redis port with `ssh -L` and use redis-cli (`redis-secret` prints the port and secret)",
            name.to_ascii_uppercase()
        ));
    }
    if name == "auth" || name == "hello" {
        return Some(format!(
            "redis: {} is done for you: this command runs as your own Redis's user",
            name.to_ascii_uppercase()
        ));
    }
    None
}

/// `words` as a RESP array of bulk strings.
pub fn encode(words: &[Vec<u8>]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", words.len()).into_bytes();
    for w in words {
        out.extend_from_slice(format!("${}\r\n", w.len()).as_bytes());
        out.extend_from_slice(w);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// One reply of Redis (RESP2, which is what a connection speaks until HELLO 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Status(String),
    Error(String),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

/// Deepest array nesting read back (Redis's own replies nest a few levels).
const MAX_DEPTH: usize = 32;

/// Parse one reply at the start of `buf`: `Ok(None)` if more bytes are needed, else the
/// reply and how many bytes it took.
pub fn parse(buf: &[u8]) -> Result<Option<(Reply, usize)>, String> {
    parse_at(buf, 0)
}

fn parse_at(buf: &[u8], depth: usize) -> Result<Option<(Reply, usize)>, String> {
    if depth > MAX_DEPTH {
        return Err("Redis's reply nests too deeply".into());
    }
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let Some((&kind, line)) = buf[..end].split_first() else {
        return Err("an empty line from Redis".into());
    };
    let text = String::from_utf8_lossy(line).into_owned();
    let next = end + 2;
    let number = || -> Result<i64, String> { text.parse().map_err(|_| format!("`{text}` from Redis is not a number")) };
    Ok(Some(match kind {
        b'+' => (Reply::Status(text), next),
        b'-' => (Reply::Error(text), next),
        b':' => (Reply::Integer(number()?), next),
        b'$' => {
            let n = number()?;
            if n < 0 {
                (Reply::Bulk(None), next)
            } else {
                let n = n as usize;
                if buf.len() < next + n + 2 {
                    return Ok(None);
                }
                (Reply::Bulk(Some(buf[next..next + n].to_vec())), next + n + 2)
            }
        }
        b'*' => {
            let n = number()?;
            if n < 0 {
                (Reply::Array(None), next)
            } else {
                let mut at = next;
                let mut items = Vec::new();
                for _ in 0..n {
                    match parse_at(&buf[at..], depth + 1)? {
                        Some((r, used)) => {
                            items.push(r);
                            at += used;
                        }
                        None => return Ok(None),
                    }
                }
                (Reply::Array(Some(items)), at)
            }
        }
        other => return Err(format!("Redis answered with an unknown reply type `{}`", other as char)),
    }))
}

/// A reply as redis-cli prints it in a terminal: `OK`, `"v"`, `(integer) 1`, `(nil)`,
/// `(error) ERR …`, `1) "a"` (nested arrays indented), `(empty array)`.
pub fn show(reply: &Reply) -> String {
    let mut out = String::new();
    show_into(reply, 0, &mut out);
    out
}

fn show_into(reply: &Reply, indent: usize, out: &mut String) {
    match reply {
        Reply::Status(s) => out.push_str(s),
        Reply::Error(e) => {
            out.push_str("(error) ");
            out.push_str(e);
        }
        Reply::Integer(n) => out.push_str(&format!("(integer) {n}")),
        Reply::Bulk(None) | Reply::Array(None) => out.push_str("(nil)"),
        Reply::Bulk(Some(b)) => out.push_str(&quoted(b)),
        Reply::Array(Some(items)) if items.is_empty() => out.push_str("(empty array)"),
        Reply::Array(Some(items)) => {
            let width = items.len().to_string().len();
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    out.push('\n');
                    out.push_str(&" ".repeat(indent));
                }
                let label = format!("{:>width$}) ", n + 1);
                out.push_str(&label);
                show_into(item, indent + label.len(), out);
            }
        }
    }
}

/// A bulk string in double quotes, escaped as redis-cli does (sdscatrepr).
fn quoted(b: &[u8]) -> String {
    let mut s = String::from("\"");
    for &c in b {
        match c {
            b'\\' => s.push_str("\\\\"),
            b'"' => s.push_str("\\\""),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            7 => s.push_str("\\a"),
            8 => s.push_str("\\b"),
            c if c.is_ascii_graphic() || c == b' ' => s.push(c as char),
            c => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        split(line)
            .unwrap()
            .into_iter()
            .map(|w| String::from_utf8(w).unwrap())
            .collect()
    }

    #[test]
    fn splits_as_redis_cli() {
        assert_eq!(words("SET k v"), ["SET", "k", "v"]);
        assert_eq!(words("  SET  k \"a b\"  "), ["SET", "k", "a b"]);
        assert_eq!(words(r#"SET k "x\ny\x41""#), ["SET", "k", "x\nyA"]);
        assert_eq!(words(r"SET k 'it\'s'"), ["SET", "k", "it's"]);
        assert_eq!(words("KEYS '*'"), ["KEYS", "*"]);
        assert_eq!(words(""), Vec::<String>::new());
        assert_eq!(
            split("SET k \"open").unwrap_err(),
            "redis: a \"quoted\" argument is not closed"
        );
        assert_eq!(
            split("SET k 'open").unwrap_err(),
            "redis: a 'quoted' argument is not closed"
        );
        assert_eq!(
            split("SET k \"a\"b").unwrap_err(),
            "redis: a closing quote must be followed by a blank"
        );
        let many = "x ".repeat(MAX_ARGS + 1);
        assert!(split(&many).unwrap_err().contains("more than"));
    }

    #[test]
    fn refuses_what_would_not_end_or_would_change_the_user() {
        let r = |l: &str| refusal(&split(l).unwrap());
        assert!(r("").unwrap().starts_with("redis needs a command"));
        assert!(r("subscribe ch").unwrap().contains("SUBSCRIBE waits for messages"));
        assert!(r("MONITOR").unwrap().contains("ssh -L"));
        assert!(r("AUTH default x").unwrap().contains("AUTH is done for you"));
        assert!(r("hello 3 AUTH a b").is_some());
        assert_eq!(r("GET k"), None);
    }

    #[test]
    fn encodes_and_shows_replies_as_redis_cli() {
        assert_eq!(
            encode(&[b"SET".to_vec(), b"k".to_vec(), b"a b".to_vec()]),
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\na b\r\n"
        );
        let one = |b: &[u8]| show(&parse(b).unwrap().unwrap().0);
        assert_eq!(one(b"+OK\r\n"), "OK");
        assert_eq!(one(b"$1\r\nv\r\n"), "\"v\"");
        assert_eq!(one(b"$-1\r\n"), "(nil)");
        assert_eq!(one(b":42\r\n"), "(integer) 42");
        assert_eq!(
            one(b"-NOPERM this user has no permissions to run the 'config|get' command\r\n"),
            "(error) NOPERM this user has no permissions to run the 'config|get' command"
        );
        assert_eq!(one(b"*0\r\n"), "(empty array)");
        assert_eq!(one(b"*2\r\n$1\r\na\r\n$3\r\nb\"\n\r\n"), "1) \"a\"\n2) \"b\\\"\\n\"");
        assert_eq!(
            one(b"*2\r\n*2\r\n:1\r\n:2\r\n$1\r\nz\r\n"),
            "1) 1) (integer) 1\n   2) (integer) 2\n2) \"z\""
        );
        let ten: Vec<u8> = std::iter::once(b"*10\r\n".to_vec())
            .chain((0..10).map(|_| b":0\r\n".to_vec()))
            .flatten()
            .collect();
        assert!(one(&ten).starts_with(" 1) (integer) 0\n 2)"), "{}", one(&ten));
        assert_eq!(parse(b"$5\r\nab").unwrap(), None);
        assert_eq!(parse(b"*2\r\n:1\r\n").unwrap(), None);
        assert!(parse(b"?x\r\n").is_err());
    }
}
