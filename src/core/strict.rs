//! Deserializers that refuse what serde's defaults take silently: a key written twice
//! (last would win), `null` where a value belongs (it would render as nothing),
//! non-strings in name lists (`null` would become a developer named "null"), and
//! more entries than `bounds` allows. The YAML parser attaches no position to these
//! errors, so each carries the key path below the field in a `LOCATE[a/b]` marker
//! that `config::parse` turns into a line and column.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use indexmap::IndexMap;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::core::bounds::{MAX_DEVELOPERS, MAX_SERVERS, MAX_VALUES, MAX_VALUE_BYTES};
use crate::core::error::excerpt;

const MARK: &str = "LOCATE[";

fn located<E: de::Error>(tail: &[&str], msg: impl fmt::Display) -> E {
    E::custom(format!("{MARK}{}] {msg}", tail.join("/")))
}

/// Prefix `key` to the marker of a nested error; the parser's own errors (which carry
/// their position) pass unchanged.
fn under<E: de::Error>(key: &str, e: E) -> E {
    let s = strip_position(&e.to_string());
    match s.find(MARK) {
        Some(i) => {
            let at = i + MARK.len();
            let sep = if s[at..].starts_with(']') { "" } else { "/" };
            // What the parser put before the marker is the path so far: dropped, the
            // outermost field's path is added once when the error leaves serde.
            E::custom(format!("{MARK}{key}{sep}{}", &s[at..]))
        }
        None => e,
    }
}

/// Split a parse error message into (key path below the field, message) when it
/// carries a marker.
pub fn take_marker(msg: &str) -> Option<(Vec<String>, String)> {
    let i = msg.find(MARK)?;
    let rest = &msg[i + MARK.len()..];
    let end = rest.find(']')?;
    let tail = rest[..end]
        .split('/')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    Some((tail, format!("{}{}", &msg[..i], rest[end + 1..].trim_start())))
}

/// A map whose keys are unique, with at most `max` entries.
fn unique_map<'de, D, T>(d: D, max: usize, what: &'static str) -> Result<IndexMap<String, T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct V<T>(usize, &'static str, PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
        type Value = IndexMap<String, T>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "a mapping of {}", self.1)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = IndexMap::new();
            while let Some(key) = map.next_key::<String>()? {
                if out.contains_key(&key) {
                    return Err(located(&[&key], format!("key `{}` is written twice", excerpt(&key))));
                }
                if out.len() >= self.0 {
                    return Err(located(&[&key], format!("more than {} {}", self.0, self.1)));
                }
                let v: T = map.next_value().map_err(|e| under(&key, e))?;
                out.insert(key, v);
            }
            Ok(out)
        }
    }
    d.deserialize_map(V::<T>(max, what, PhantomData))
}

/// Any `IndexMap<String, T>` field: unique keys, bounded.
pub fn map<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<IndexMap<String, T>, D::Error> {
    unique_map(d, MAX_DEVELOPERS + 1, "entries")
}

/// `servers:` unique and bounded.
pub fn servers<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<IndexMap<String, T>, D::Error> {
    unique_map(d, MAX_SERVERS, "servers")
}

/// `values:` owner → key → value, each map unique, no nulls, bounded.
pub fn owner_values<'de, D: Deserializer<'de>>(d: D) -> Result<IndexMap<String, BTreeMap<String, Value>>, D::Error> {
    // The parser's path for errors raised here may or may not include `values`;
    // `config::parse` drops the repetition when it does.
    let owners: IndexMap<String, ValueMap> =
        unique_map(d, MAX_DEVELOPERS + 1, "owners").map_err(|e| under("values", e))?;
    Ok(owners
        .into_iter()
        .map(|(k, v)| (k, v.0.into_iter().collect()))
        .collect())
}

/// Developer names: strings only.
pub fn names<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list of names")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            let mut i = 0usize;
            while let Some(v) = seq
                .next_element::<StrictValue>()
                .map_err(|e| under(&i.to_string(), e))?
            {
                if out.len() >= MAX_DEVELOPERS {
                    return Err(located(&[&i.to_string()], format!("more than {MAX_DEVELOPERS} names")));
                }
                match v.0 {
                    Value::String(s) => out.push(s),
                    Value::Null => {
                        return Err(located(&[&i.to_string()], "an empty entry (null) where a name belongs"))
                    }
                    other => {
                        return Err(located(
                            &[&i.to_string()],
                            format!("`{}` is not a name", excerpt(&other.to_string())),
                        ))
                    }
                }
                i += 1;
            }
            Ok(out)
        }
    }
    d.deserialize_seq(V)
}

/// A values map: unique keys, every value checked.
struct ValueMap(Map<String, Value>);

impl<'de> Deserialize<'de> for ValueMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match StrictValue::deserialize(d)?.0 {
            Value::Object(m) => Ok(ValueMap(m)),
            other => Err(de::Error::custom(format!(
                "expected a mapping of values, found `{}`",
                excerpt(&other.to_string())
            ))),
        }
    }
}

/// A JSON value from YAML with no nulls, no duplicate keys, no non-finite numbers,
/// bounded sizes.
pub struct StrictValue(pub Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrictValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number, boolean, list or mapping")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<StrictValue, E> {
                Ok(StrictValue(Value::Bool(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<StrictValue, E> {
                Ok(StrictValue(Value::from(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<StrictValue, E> {
                Ok(StrictValue(Value::from(v)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<StrictValue, E> {
                match Number::from_f64(v) {
                    Some(n) => Ok(StrictValue(Value::Number(n))),
                    None => Err(E::custom(format!(
                        "`{v}` is not a finite number; quote it if it is text"
                    ))),
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StrictValue, E> {
                if v.len() > MAX_VALUE_BYTES {
                    return Err(E::custom(format!(
                        "a value of {} bytes; the limit is {MAX_VALUE_BYTES}",
                        v.len()
                    )));
                }
                Ok(StrictValue(Value::String(v.to_string())))
            }
            fn visit_unit<E: de::Error>(self) -> Result<StrictValue, E> {
                Err(E::custom(
                    "an empty value (null), which would render as nothing; give a value, or \"\" for an empty string",
                ))
            }
            fn visit_none<E: de::Error>(self) -> Result<StrictValue, E> {
                self.visit_unit()
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<StrictValue, D::Error> {
                StrictValue::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StrictValue, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = seq
                    .next_element::<StrictValue>()
                    .map_err(|e| under(&out.len().to_string(), e))?
                {
                    if out.len() >= MAX_VALUES {
                        return Err(located(&[], format!("a list of more than {MAX_VALUES} items")));
                    }
                    out.push(v.0);
                }
                Ok(StrictValue(Value::Array(out)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StrictValue, A::Error> {
                let mut out = Map::new();
                while let Some(key) = map.next_key::<String>()? {
                    if out.contains_key(&key) {
                        return Err(located(&[&key], format!("key `{}` is written twice", excerpt(&key))));
                    }
                    if out.len() >= MAX_VALUES {
                        return Err(located(&[&key], format!("more than {MAX_VALUES} values")));
                    }
                    let v: StrictValue = map.next_value().map_err(|e| under(&key, e))?;
                    out.insert(key, v.0);
                }
                Ok(StrictValue(Value::Object(out)))
            }
        }
        d.deserialize_any(V)
    }
}
/// serde_norway writes " at line L column C" into messages; we show positions ourselves.
pub fn strip_position(msg: &str) -> String {
    let mut out = msg.to_string();
    while let Some(i) = out.find(" at line ") {
        let rest = &out[i + " at line ".len()..];
        let digits = |s: &str| s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let l = digits(rest);
        let Some(after) = rest[l..].strip_prefix(" column ") else {
            break;
        };
        let end = i + " at line ".len() + l + " column ".len() + digits(after);
        out.replace_range(i..end, "");
    }
    out
}
