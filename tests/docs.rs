//! The reference says what the config accepts, no more and no less.
//!
//! The keys hhl.yaml accepts come from the serde structs themselves
//! (`core::config::RawConfig`): a deserializer that answers every struct with all of
//! its fields, and every map with one entry named `*`, records each field's dotted
//! path. hhl.yaml(5) must document each of them (a `.TP` entry `.B <key>`, with `<…>`
//! for a map's name) and nothing else; and no help text or page may name a
//! `paths.`, `git.`, `users.` or `limits.` key that is not one of them (a `git.group`
//! that does not exist).

mod support;

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use serde::de::value::{Error, StrDeserializer};
use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor};

use hhlctl::core::config::RawConfig;

type Seen = Rc<RefCell<BTreeSet<String>>>;

/// Answers whatever a `Deserialize` asks for with the smallest value of that shape,
/// recording struct fields under `prefix`.
struct Keys {
    prefix: String,
    seen: Seen,
}

impl Keys {
    fn under(&self, name: &str) -> Keys {
        Keys {
            prefix: format!("{}{name}.", self.prefix),
            seen: self.seen.clone(),
        }
    }
}

struct NoItems;
impl<'de> SeqAccess<'de> for NoItems {
    type Error = Error;
    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, _: T) -> Result<Option<T::Value>, Error> {
        Ok(None)
    }
}
impl<'de> MapAccess<'de> for NoItems {
    type Error = Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, _: K) -> Result<Option<K::Value>, Error> {
        Ok(None)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, _: V) -> Result<V::Value, Error> {
        Err(de::Error::custom("no value"))
    }
}

/// The fields of a struct (or the one `*` entry of a map), each answered by `Keys`.
struct Fields {
    names: Vec<&'static str>,
    next: usize,
    parent: Keys,
}
impl<'de> MapAccess<'de> for Fields {
    type Error = Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        let Some(name) = self.names.get(self.next) else {
            return Ok(None);
        };
        let key: StrDeserializer<Error> = name.into_deserializer();
        seed.deserialize(key).map(Some)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let name = self.names[self.next];
        self.next += 1;
        seed.deserialize(self.parent.under(name))
    }
}

impl<'de> Deserializer<'de> for Keys {
    type Error = Error;
    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        // serde_json::Value and the template values: an empty map is a value of any.
        v.visit_map(NoItems)
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        for f in fields {
            self.seen.borrow_mut().insert(format!("{}{f}", self.prefix));
        }
        v.visit_map(Fields {
            names: fields.to_vec(),
            next: 0,
            parent: self,
        })
    }
    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_map(Fields {
            names: vec!["*"],
            next: 0,
            parent: self,
        })
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        let first: StrDeserializer<Error> = variants[0].into_deserializer();
        v.visit_enum(first)
    }
    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_some(self)
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _: &'static str, v: V) -> Result<V::Value, Error> {
        v.visit_newtype_struct(self)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_seq(NoItems)
    }
    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, v: V) -> Result<V::Value, Error> {
        v.visit_seq(NoItems)
    }
    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_bool(false)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_u64(1)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_u64(1)
    }
    fn deserialize_u16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_u64(1)
    }
    fn deserialize_u8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_u64(1)
    }
    fn deserialize_i64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_i64(1)
    }
    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_str("x")
    }
    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_str("x")
    }
    fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_str("x")
    }
    serde::forward_to_deserialize_any! {
        i8 i16 i32 i128 u128 f32 f64 char bytes byte_buf unit unit_struct
        tuple_struct ignored_any
    }
}

/// Every key hhl.yaml accepts, as dotted paths (`servers.*.template`).
fn config_keys() -> BTreeSet<String> {
    let seen: Seen = Rc::default();
    let keys = Keys {
        prefix: String::new(),
        seen: seen.clone(),
    };
    <RawConfig as serde::Deserialize>::deserialize(keys).expect("walking RawConfig's fields");
    let out = seen.borrow().clone();
    out
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The keys a hhl.yaml(5) text documents: the `.B` line after each `.TP`, `\-` read
/// as `-` and a `<name>` as the `*` of a map.
fn page_keys(page: &str) -> BTreeSet<String> {
    let lines: Vec<&str> = page.lines().collect();
    let mut out = BTreeSet::new();
    for w in lines.windows(2) {
        if w[0] != ".TP" {
            continue;
        }
        let Some(key) = w[1].strip_prefix(".B ") else { continue };
        let mut k = String::new();
        let mut in_name = false;
        for c in key.replace("\\-", "-").chars() {
            match c {
                '<' => {
                    in_name = true;
                    k.push('*');
                }
                '>' => in_name = false,
                c if !in_name => k.push(c),
                _ => {}
            }
        }
        out.insert(k);
    }
    out
}

/// What a page lacks and what it names that the config does not accept.
fn compare(accepted: &BTreeSet<String>, page: &BTreeSet<String>) -> (Vec<String>, Vec<String>) {
    (
        accepted.difference(page).cloned().collect(),
        page.difference(accepted).cloned().collect(),
    )
}

#[test]
fn the_walk_finds_the_config_keys() {
    let keys = config_keys();
    for k in [
        "developers",
        "paths.hhl_root",
        "paths.entry_home",
        "servers.*.template",
        "servers.*.values",
        "limits.*.tasks",
        "users.admins",
        "git.max_push_size",
        "nginx.flavor",
        "keys",
    ] {
        assert!(keys.contains(k), "{k} not found in {keys:?}");
    }
    assert!(!keys.contains("git.group"), "{keys:?}");
}

#[test]
fn hhl_yaml_5_documents_every_key_the_config_accepts_and_no_other() {
    let (missing, unknown) = compare(&config_keys(), &page_keys(&read("docs/man/hhl.yaml.5")));
    assert!(
        missing.is_empty(),
        "hhl.yaml accepts these keys, which docs/man/hhl.yaml.5 does not document (add a .TP/.B entry with type, default and an example): {missing:?}"
    );
    assert!(
        unknown.is_empty(),
        "docs/man/hhl.yaml.5 documents keys hhl.yaml does not accept (src/core/config.rs): {unknown:?}"
    );
}

/// The check itself: a page with one key's entry taken out fails it, naming the key.
#[test]
fn a_key_removed_from_the_page_is_reported() {
    let page = read("docs/man/hhl.yaml.5");
    let cut = page.replace(".TP\n.B git.keep\n", "");
    assert_ne!(cut, page, "the page has no git.keep entry to remove");
    let (missing, unknown) = compare(&config_keys(), &page_keys(&cut));
    assert_eq!(missing, vec!["git.keep".to_string()]);
    assert!(unknown.is_empty());
    let extra = page.replace(".TP\n.B git.keep\n", ".TP\n.B git.group\n");
    let (_, unknown) = compare(&config_keys(), &page_keys(&extra));
    assert_eq!(unknown, vec!["git.group".to_string()]);
}

/// Files people read: help (cli.rs, the subcommands' and operations' argument docs,
/// ssh's help and messages),
/// the pages, the example, the units and packaging.
fn readable_files() -> Vec<PathBuf> {
    let mut out = vec![
        repo().join("README.md"),
        repo().join("src/cli.rs"),
        repo().join("examples/hhl.yaml"),
    ];
    let mut dirs = vec![
        repo().join("docs"),
        repo().join("src/cmd"),
        repo().join("src/ops"),
        repo().join("src/ssh"),
        repo().join("units"),
        repo().join("packaging"),
    ];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_none_or(|x| x != "png") {
                out.push(p);
            }
        }
    }
    out
}

/// Dotted names `<section>.<key>` in `text` for the sections that are maps of fixed
/// keys, not preceded by a name character or `/`, `.`, `-` (so `host/git.rs`,
/// `lualib.git` and `nginx.conf` are not keys), and not a file name.
fn named_keys(text: &str) -> Vec<String> {
    const SECTIONS: [&str; 4] = ["paths", "git", "users", "limits"];
    const FILES: [&str; 6] = ["rs", "md", "sh", "conf", "git", "log"];
    let b = text.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut out = Vec::new();
    for s in SECTIONS {
        let pat = format!("{s}.");
        let mut from = 0;
        while let Some(i) = text[from..].find(&pat) {
            let at = from + i;
            from = at + pat.len();
            if at > 0 && (word(b[at - 1]) || b"/.-".contains(&b[at - 1])) {
                continue;
            }
            let key: String = text[from..].bytes().take_while(|&c| word(c)).map(char::from).collect();
            if key.is_empty() || key.chars().next().is_some_and(|c| c.is_ascii_digit()) || FILES.contains(&key.as_str())
            {
                continue;
            }
            out.push(format!("{s}.{key}"));
        }
    }
    out
}

#[test]
fn help_and_pages_name_only_keys_the_config_accepts() {
    let accepted = config_keys();
    let mut wrong = Vec::new();
    for file in readable_files() {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for key in named_keys(&text) {
            let limits_owner =
                key.starts_with("limits.") && accepted.contains(&format!("limits.*.{}", &key["limits.".len()..]));
            if !accepted.contains(&key) && !limits_owner {
                wrong.push(format!(
                    "{}: {key}",
                    file.strip_prefix(repo()).unwrap_or(&file).display()
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "these name hhl.yaml keys the config does not accept (src/core/config.rs): {wrong:#?}"
    );
    // The check sees what it must.
    assert_eq!(
        named_keys("owned by git.group, under git.root"),
        ["git.group", "git.root"]
    );
    assert!(named_keys("src/host/git.rs, lualib.git, users.rs").is_empty());
}

/// The pages ship: build-deb.sh gzips docs/man/*.5 and *.7, Cargo.toml installs them.
#[test]
fn the_man_pages_are_packaged() {
    let cargo = read("Cargo.toml");
    for want in [
        "[\"target/assets/man/*.5.gz\", \"usr/share/man/man5/\", \"644\"]",
        "[\"target/assets/man/*.7.gz\", \"usr/share/man/man7/\", \"644\"]",
    ] {
        assert!(cargo.contains(want), "Cargo.toml lacks {want}");
    }
    assert!(read("scripts/build-deb.sh").contains("docs/man/*.5 docs/man/*.7"));
    assert!(Path::new(&repo().join("docs/man/hhl-ssh.7")).is_file());
}

/// Each command line of a block, without its trailing comment.
fn commands(block: &str) -> Vec<String> {
    block
        .lines()
        .map(|l| match l.find("  #") {
            Some(i) => l[..i].trim(),
            None => l.trim(),
        })
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

/// The README's quickstarts are the tested pages' steps (the clean-host test runs
/// docs/ops/install.md and docs/dev/windows.md): no README command is untested.
#[test]
fn the_readme_quickstarts_are_the_tested_steps() {
    let ops: Vec<String> = support::blocks("docs/ops/install.md", "sh tested")
        .iter()
        .flat_map(|b| commands(b))
        .collect();
    let dev: Vec<String> = ["powershell tested", "powershell tested background"]
        .iter()
        .flat_map(|info| support::blocks("docs/dev/windows.md", info))
        .flat_map(|b| commands(&b))
        .collect();
    let readme_ops = support::blocks("README.md", "sh");
    let quickstart = readme_ops
        .iter()
        .find(|b| b.contains("hhlctl apply"))
        .expect("the README's ops quickstart");
    for c in commands(quickstart) {
        assert!(
            ops.contains(&c),
            "README's `{c}` is not a tested step of docs/ops/install.md"
        );
    }
    let readme_dev = support::blocks("README.md", "powershell");
    assert_eq!(readme_dev.len(), 1, "the README's developer quickstart");
    for c in commands(&readme_dev[0]) {
        assert!(
            dev.contains(&c),
            "README's `{c}` is not a tested step of docs/dev/windows.md"
        );
    }
}

/// `scripts/build-deb.sh` names the Rust it needs before building anything: an old
/// rustc (Debian 12's is 1.63) or none at all is refused with what to do.
#[test]
fn build_deb_refuses_an_old_or_missing_rust() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path();
    // Only what the script runs before the check, so that no Rust of this machine's
    // (in /usr/bin on some) is found.
    for tool in ["dirname", "sed", "awk", "sort", "head"] {
        let real = ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{tool} is missing"));
        std::os::unix::fs::symlink(real, bin.join(tool)).unwrap();
    }
    let path = bin.display().to_string();
    let run = |path: &str| {
        let out = std::process::Command::new("/bin/bash")
            .arg(repo().join("scripts/build-deb.sh"))
            .env_clear()
            .env("PATH", path)
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    // No cargo or rustc on the PATH.
    let (code, err) = run(&path);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("error: no Rust toolchain (cargo, rustc): install Rust 1.85 or newer with rustup"),
        "{err}"
    );
    for (name, text) in [
        ("cargo", "#!/bin/sh\nexit 0\n"),
        ("rustc", "#!/bin/sh\necho 'rustc 1.63.0 (4b91a6ea7 2022-08-08)'\n"),
    ] {
        let p = bin.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let (code, err) = run(&path);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("error: rustc 1.63.0 is older than 1.85, which hhlctl needs (Cargo.toml rust-version)"),
        "{err}"
    );
}
