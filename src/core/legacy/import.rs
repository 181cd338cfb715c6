//! Convert serverctrl files into hhl.yaml and handlebars templates. Pure: takes file
//! names and texts, returns file names and texts plus notes on what was changed to fit
//! systemd.

use indexmap::IndexMap;
use std::path::{Path, PathBuf};

use crate::core::config::{OwnerValues, RawConfig, RawPaths, RawRedis, RawServer, Values};
use crate::core::error::{Diagnostic, Diagnostics, Pos};
use crate::core::legacy::pydict::{self, Py, Spanned};
use crate::core::names::MASTER;

/// An input or output file: name relative to its directory, and text.
#[derive(Debug, Clone)]
pub struct File {
    pub name: PathBuf,
    pub text: String,
}

#[derive(Debug)]
pub struct Imported {
    pub files: Vec<File>,
    /// What was changed beyond a one-to-one conversion, for the user to review.
    pub notes: Vec<String>,
}

/// Original placeholders that the old scripts filled in themselves, not the value files.
const IMPLICIT: &[(&str, &str)] = &[("USER_NAME", "hhl.developer")];

/// Convert every `nginx.<server>.templ.conf` / `.sub.py` pair and `redis.*` in `dir`
/// (`dir` only names files in messages).
pub fn import(dir: &Path, files: &[File]) -> Result<Imported, Diagnostics> {
    let mut errs = Diagnostics::default();
    for f in files {
        if f.text.len() > crate::core::bounds::MAX_LEGACY_BYTES {
            errs.push(
                Diagnostic::new(
                    &dir.join(&f.name),
                    format!(
                        "{} is {} bytes; the limit is {}",
                        f.name.display(),
                        f.text.len(),
                        crate::core::bounds::MAX_LEGACY_BYTES
                    ),
                )
                .hint("serverctrl's templates and value files are a few KiB; is this the right file?"),
            );
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    let get = |name: &str| files.iter().find(|f| f.name == Path::new(name));
    let mut out = Vec::new();
    let mut notes = Vec::new();
    let mut developers: Vec<String> = Vec::new();
    let mut servers = IndexMap::new();
    let mut redis = None;

    let mut pairs: Vec<(String, String, String)> = files
        .iter()
        .filter_map(|f| {
            let n = f.name.to_str()?;
            let server = n.strip_prefix("nginx.")?.strip_suffix(".templ.conf")?;
            Some((server.to_string(), n.to_string(), format!("nginx.{server}.sub.py")))
        })
        .collect();
    if get("redis.templ.conf").is_some() || get("redis.sub.py").is_some() {
        pairs.push(("redis".into(), "redis.templ.conf".into(), "redis.sub.py".into()));
    }
    if pairs.is_empty() {
        errs.push(
            Diagnostic::new(
                dir,
                "no serverctrl files here: expected nginx.<server>.templ.conf and redis.templ.conf",
            )
            .hint("point import-legacy at the directory holding the original templates and *.sub.py files"),
        );
        return Err(errs);
    }
    pairs.sort();
    // Ports written so far: the value file and owner that wrote each.
    let mut ports: std::collections::BTreeMap<u64, (String, String)> = Default::default();

    for (server, templ_name, sub_name) in pairs {
        let (Some(templ), Some(sub)) = (get(&templ_name), get(&sub_name)) else {
            let missing = if get(&templ_name).is_none() {
                &templ_name
            } else {
                &sub_name
            };
            errs.push(
                Diagnostic::new(&dir.join(missing), format!("{missing} is missing"))
                    .hint(format!("{server} needs both {templ_name} and {sub_name}")),
            );
            continue;
        };
        if server != "redis" {
            if let Some(p) = crate::core::names::server_problem(&server) {
                errs.push(
                    Diagnostic::new(&dir.join(&templ_name), format!("file name `{templ_name}`: {p}"))
                        .hint(format!(
                            "the server is named by its files: rename {templ_name} and {sub_name} to nginx.<server>.templ.conf and nginx.<server>.sub.py"
                        )),
                );
                continue;
            }
        }
        let sub_path = dir.join(&sub_name);
        let values = match values_of(&sub_path, &sub.text) {
            Ok(v) => v,
            Err(d) => {
                errs.push(d);
                continue;
            }
        };
        for dev in values.keys().filter(|k| k.as_str() != MASTER) {
            if !developers.contains(dev) {
                developers.push(dev.clone());
            }
        }
        let is_redis = server == "redis";
        let port_key = ["LISTEN", "PORT"]
            .into_iter()
            .find(|k| values.get(MASTER).is_some_and(|m| m.contains_key(&k.to_lowercase())));
        // A port written twice (in this file or another) is refused where it is
        // written, not later in the hhl.yaml made from it.
        if let Some(key) = port_key {
            for (owner, pos, port) in port_positions(&sub.text, key) {
                match ports.get(&port) {
                    Some((file, first)) => errs.push(
                        Diagnostic::new(
                            &sub_path,
                            format!("port {port} of '{owner}' is also the port of {first} in {file}"),
                        )
                        .at(&sub.text, Some(pos))
                        .hint("give every instance its own port"),
                    ),
                    None => {
                        ports.insert(port, (sub_name.clone(), format!("'{owner}'")));
                    }
                }
            }
        }
        let known: Vec<String> = values.values().flat_map(|v| v.keys().cloned()).collect();
        let templ_path = dir.join(&templ_name);
        let body = match convert_placeholders(&templ_path, &templ.text, &known, port_key) {
            Ok(b) => b,
            Err(d) => {
                errs.push(d);
                continue;
            }
        };
        let (body, mut changed) = if is_redis { fit_redis(&body) } else { fit_nginx(&body) };
        notes.extend(changed.drain(..).map(|c| format!("{templ_name}: {c}")));
        let values = rename_port(values, port_key);
        let template_file = PathBuf::from(format!("templates/{server}.conf.hbs"));
        out.push(File {
            name: template_file.clone(),
            text: body,
        });
        let template = template_file.display().to_string();
        if is_redis {
            redis = Some(RawRedis { template, values });
        } else {
            servers.insert(
                server,
                RawServer {
                    template,
                    shared: false,
                    values,
                },
            );
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    let config = RawConfig {
        developers,
        paths: RawPaths::default(),
        nginx: Default::default(),
        servers,
        redis,
        users: Default::default(),
        limits: Default::default(),
        git: Default::default(),
        keys: Default::default(),
        web: Default::default(),
        hosts: Default::default(),
        placement: Default::default(),
    };
    let yaml = serde_norway::to_string(&config).expect("the config serializes");
    let header = format!(
        "# Imported by `hhlctl import-legacy` from {}.\n# Review it, then `hhlctl -c <this file> plan`.\n",
        dir.display()
    );
    out.insert(
        0,
        File {
            name: "hhl.yaml".into(),
            text: header + &yaml,
        },
    );
    Ok(Imported { files: out, notes })
}

/// Each owner's port as written in a value file (`key`, LISTEN or PORT): owner, where
/// the value is, the port. Only values that read as a port number.
fn port_positions(text: &str, key: &str) -> Vec<(String, Pos, u64)> {
    let Ok(top) = pydict::parse(text) else {
        return Vec::new();
    };
    let Py::Dict(owners) = top.value else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (owner, vals) in owners {
        let (Py::Str(owner), Py::Dict(items)) = (owner.value, vals.value) else {
            continue;
        };
        for (k, v) in items {
            if !matches!(&k.value, Py::Str(s) if s == key) {
                continue;
            }
            let port = match &v.value {
                Py::Int(i) => u64::try_from(*i).ok(),
                Py::Str(s) => s.trim().parse().ok(),
                _ => None,
            };
            if let Some(port) = port {
                out.push((owner.clone(), v.pos, port));
            }
        }
    }
    out
}

/// `{'master': {...}, 'dev1': {...}}` → values by owner, keys lowercased.
fn values_of(path: &Path, text: &str) -> Result<OwnerValues, Diagnostic> {
    let fail = |pos: Pos, msg: String| Diagnostic::new(path, msg).at(text, Some(pos));
    let top = pydict::parse(text).map_err(|e| {
        fail(e.pos, format!("cannot read the value file: {}", e.message))
            .hint("a value file is one Python dict literal: {'master': {'KEY': value, ...}, 'dev1': {...}}")
    })?;
    let Py::Dict(owners) = top.value else {
        return Err(fail(
            top.pos,
            "the value file must be a dict of owners ('master', 'dev1', ...)".into(),
        ));
    };
    let mut out = OwnerValues::new();
    for (owner, vals) in owners {
        let Py::Str(name) = owner.value else {
            return Err(fail(owner.pos, "owner names must be strings, like 'dev1'".into()));
        };
        if name != MASTER {
            if let Some(p) = crate::core::names::developer_problem(&name) {
                return Err(fail(owner.pos, p).hint("rename the owner: it becomes a unix user and a git branch"));
            }
        }
        let Py::Dict(items) = vals.value else {
            return Err(fail(vals.pos, format!("the values of '{name}' must be a dict")));
        };
        let mut v = Values::new();
        for (k, val) in items {
            let Py::Str(key) = k.value else {
                return Err(fail(k.pos, "value names must be strings, like 'LISTEN'".into()));
            };
            let json = json_of(&val).map_err(|m| fail(val.pos, m))?;
            if let Some(problem) = unsafe_value(&json) {
                return Err(fail(val.pos, format!("value '{key}' of '{name}' {problem}")).hint(
                    "a config value cannot hold a newline, a control character or `$`; put such text in the template",
                ));
            }
            v.insert(key.to_lowercase(), json);
        }
        out.insert(name, v);
    }
    // master first: it is the base the others override.
    match out.get_index_of(MASTER) {
        Some(i) => out.move_index(i, 0),
        None => {
            return Err(fail(
                top.pos,
                "the value file has no 'master' entry, which holds the base values".into(),
            ))
        }
    }
    Ok(out)
}

/// Why a value could not be written into nginx or Redis (see `escape`), checked here so
/// the message points into the value file rather than the generated hhl.yaml.
fn unsafe_value(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => crate::core::escape::NginxToken::new(s)
            .err()
            .map(|e| format!("`{}` {e}", crate::core::error::excerpt(s))),
        serde_json::Value::Array(items) => items.iter().find_map(unsafe_value),
        serde_json::Value::Null => Some("is None, which would render as nothing".into()),
        _ => None,
    }
}

fn json_of(v: &Spanned) -> Result<serde_json::Value, String> {
    Ok(match &v.value {
        // The original pasted values into the text, so `'a b'` was two words: keep
        // them two tokens (a list) now that every value is escaped as one.
        Py::Str(s) if s.split_whitespace().nth(1).is_some() && !s.contains(['\n', '\r']) => s
            .split_whitespace()
            .map(serde_json::Value::from)
            .collect::<Vec<_>>()
            .into(),
        Py::Str(s) => s.clone().into(),
        Py::Int(i) => (*i).into(),
        Py::Float(f) => serde_json::Number::from_f64(*f)
            .map(Into::into)
            .ok_or("not a finite number")?,
        Py::Bool(b) => (*b).into(),
        Py::None => serde_json::Value::Null,
        Py::List(items) => items.iter().map(json_of).collect::<Result<Vec<_>, _>>()?.into(),
        Py::Dict(_) => return Err("nested dicts cannot fill a template placeholder".into()),
    })
}

/// The original used LISTEN or PORT for the port; hhl.yaml calls it `port`, a number.
fn rename_port(values: OwnerValues, port_key: Option<&str>) -> OwnerValues {
    let Some(key) = port_key.map(str::to_lowercase) else {
        return values;
    };
    values
        .into_iter()
        .map(|(owner, mut v)| {
            if let Some(p) = v.remove(&key) {
                let p = p
                    .as_str()
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .map(Into::into)
                    .unwrap_or(p);
                v.insert("port".into(), p);
            }
            (owner, v)
        })
        .collect()
}

/// `$NAME` and `${NAME}` → `{{name}}` (upper-case names only); literal `{{` is escaped.
fn convert_placeholders(
    path: &Path,
    text: &str,
    known: &[String],
    port_key: Option<&str>,
) -> Result<String, Diagnostic> {
    let mut out = String::new();
    let mut count = 0usize;
    for (n, line) in text.lines().enumerate() {
        let line_escaped = line.replace("{{", "\\{{");
        // `rest` is a moving slice (not a copy per placeholder): linear in the line.
        let mut rest: &str = &line_escaped;
        let mut converted = String::new();
        while let Some(i) = rest.find('$') {
            converted += &rest[..i];
            let after = &rest[i + 1..];
            let braced = after.starts_with('{');
            let name_start = if braced { &after[1..] } else { after };
            // Placeholders are upper case; `$uri`, `$remote_addr` are nginx's own variables.
            let len = name_start
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(name_start.len());
            let name = &name_start[..len];
            if braced && (name.is_empty() || !name_start[len..].starts_with('}')) {
                let nth = line_escaped[..line_escaped.len() - rest.len() + i].matches('$').count();
                let col = dollar_column(line, nth);
                let shown: String = after.chars().take(len.min(40) + 1).collect();
                return Err(Diagnostic::new(
                    path,
                    format!("`${shown}` opens a placeholder with `${{` that is not closed by `}}`"),
                )
                .at(
                    text,
                    Some(Pos {
                        line: n + 1,
                        column: col,
                    }),
                )
                .hint("write `${NAME}` (upper-case letters, digits and `_`), or `$NAME`"));
            }
            let placeholder = name.starts_with(|c: char| c.is_ascii_uppercase() || c == '_')
                && !name.contains(|c: char| c.is_ascii_lowercase());
            if !placeholder {
                converted.push('$');
                rest = after;
                continue;
            }
            let var = if Some(name) == port_key {
                "port".to_string()
            } else if let Some((_, b)) = IMPLICIT.iter().find(|(k, _)| *k == name) {
                b.to_string()
            } else if known.contains(&name.to_lowercase()) {
                name.to_lowercase()
            } else {
                let col = line
                    .char_indices()
                    .filter(|(_, c)| *c == '$')
                    .map(|(b, _)| b)
                    .find(|b| line[b + 1..].trim_start_matches('{').starts_with(name))
                    .unwrap_or(0)
                    + 1;
                return Err(Diagnostic::new(path, format!("placeholder ${name} has no value in the value file"))
                    .at(text, Some(Pos { line: n + 1, column: col }))
                    .hint(format!("add '{name}' to the 'master' entry of the matching .sub.py, or remove it from the template")));
            };
            let consumed = len
                + if braced && name_start[len..].starts_with('}') {
                    2
                } else {
                    0
                };
            rest = &after[consumed..];
            // `"$X"` in the original: the value is now escaped (and quoted when needed)
            // by the template, so the original's quotes would double up.
            if converted.ends_with('"') && rest.starts_with('"') {
                converted.pop();
                rest = &rest[1..];
            }
            converted += &format!("{{{{{var}}}}}");
            count += 1;
            if count > crate::core::bounds::MAX_TEMPLATE_TAGS {
                return Err(Diagnostic::new(
                    path,
                    format!("more than {} placeholders", crate::core::bounds::MAX_TEMPLATE_TAGS),
                )
                .at(text, Some(Pos { line: n + 1, column: 1 }))
                .hint("a config template needs a few dozen placeholders; this looks generated by mistake"));
            }
        }
        converted += rest;
        out += &converted;
        out.push('\n');
    }
    Ok(out)
}

/// The column (1-based, in characters) of the `nth` (0-based) `$` of `line`.
fn dollar_column(line: &str, nth: usize) -> usize {
    line.char_indices()
        .filter(|(_, c)| *c == '$')
        .nth(nth)
        .map_or(1, |(b, _)| line[..b].chars().count() + 1)
}

/// Fit an nginx template to systemd: foreground, errors to stderr (the journal),
/// pid and temp files under the prefix, the Lua module loaded where needed.
fn fit_nginx(body: &str) -> (String, Vec<String>) {
    let mut notes = vec!["added {{> hhl_main}} (load_module lines, pid under the prefix)".to_string()];
    let mut out = String::from("{{> hhl_main}}\n");
    for line in body.lines() {
        let t = line.trim_start();
        let indent = &line[..line.len() - t.len()];
        if t.starts_with("daemon ") || t.starts_with("pid ") {
            notes.push(format!("removed `{t}`: systemd runs nginx in the foreground"));
        } else if let Some(rest) = t.strip_prefix("error_log ") {
            let level = rest.trim_end_matches(';').split_whitespace().nth(1).unwrap_or("error");
            out += &format!("{indent}error_log stderr {level};\n");
            notes.push(format!("`{t}` now logs to stderr, which the journal keeps"));
        } else if t.starts_with("http ") || t == "http{" {
            out += line;
            out += "\n{{> hhl_http}}\n";
            notes.push("added {{> hhl_http}} inside http {} (temp paths under the prefix)".into());
        } else {
            out += line;
            out.push('\n');
        }
    }
    (out, notes)
}

/// Fit a Redis template to systemd: no daemon, no pidfile, logs to the journal,
/// data in the instance's own directory.
fn fit_redis(body: &str) -> (String, Vec<String>) {
    const DROP: &[&str] = &[
        "include ",
        "daemonize ",
        "pidfile ",
        "logfile ",
        "syslog-enabled ",
        "syslog-ident ",
        "syslog-facility ",
        "supervised ",
    ];
    let mut notes = Vec::new();
    let mut out = String::new();
    for line in body.lines() {
        let t = line.trim_start();
        if DROP.iter().any(|d| t.starts_with(d)) {
            notes.push(format!(
                "removed `{t}`: systemd supervises Redis and the journal keeps its log"
            ));
        } else if t.starts_with("dir ") {
            out += "dir {{hhl.data_dir}}\n";
            notes.push(format!("`{t}` is now the instance's own data directory"));
        } else {
            out += line;
            out.push('\n');
        }
    }
    out += "daemonize no\nsupervised systemd\nlogfile \"\"\n";
    notes.push("added `daemonize no`, `supervised systemd`, `logfile \"\"`".into());
    (out, notes)
}
