//! The layers of `src/`, held: each file imports only its own layer and those below it,
//! and the two servers (`ssh`, `web`) never import each other.
//!
//! ```text
//! core (pure) <- host (this machine) <- ops (shared operations) <- ssh, web <- cmd, cli
//! ```
//! `docs/internals/design.md` says where a new piece of code goes.

use std::path::{Path, PathBuf};

/// A layer's rank: an import may only go to a rank at or below the importer's; `ssh`
/// and `web` share a rank but not each other.
fn rank(layer: &str) -> Option<u8> {
    Some(match layer {
        "core" => 0,
        "host" => 1,
        "ops" => 2,
        "ssh" | "web" => 3,
        "cmd" | "cli" | "main" | "lib" => 4,
        _ => return None,
    })
}

/// The layer a file of `src/` belongs to: its folder, or its own name at the top.
fn layer_of(rel: &Path) -> String {
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy()
        .into_owned();
    first.trim_end_matches(".rs").to_string()
}

/// Every layer named after `crate::` in `text`, comments left out; `crate::{a::x, b}`
/// groups give each member.
fn imported_layers(text: &str) -> Vec<String> {
    let code: String = text
        .lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = Vec::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            // First-level members of the group.
            let mut depth = 0;
            let mut member = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.push(first_ident(&member));
                        member.clear();
                        continue;
                    }
                    _ => {}
                }
                member.push(c);
            }
            out.push(first_ident(&member));
        } else {
            out.push(first_ident(after));
        }
        rest = after;
    }
    out.retain(|s| !s.is_empty());
    out
}

fn first_ident(s: &str) -> String {
    s.trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// The imports of `rel` (a path under `src/`) that break the layers, as messages.
fn violations(rel: &Path, text: &str) -> Vec<String> {
    let from = layer_of(rel);
    let Some(from_rank) = rank(&from) else {
        return vec![format!(
            "src/{}: not in a known layer (core, host, ops, ssh, web, cmd)",
            rel.display()
        )];
    };
    let mut found = Vec::new();
    for to in imported_layers(text) {
        if to == from || to == "self" || to == "super" {
            continue;
        }
        let Some(to_rank) = rank(&to) else {
            found.push(format!(
                "src/{}: imports crate::{to}, which is no layer (root re-exports are gone: name the layer)",
                rel.display()
            ));
            continue;
        };
        let sideways = to_rank == from_rank && to_rank == 3;
        if to_rank > from_rank || sideways {
            found.push(format!(
                "src/{}: {from} imports {to}, which is above it or beside it",
                rel.display()
            ));
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_import_runs_down() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 50, "found only {} files under src/", files.len());
    let mut bad = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        bad.extend(violations(rel, &std::fs::read_to_string(f).unwrap()));
    }
    assert!(bad.is_empty(), "imports against the layers:\n{}", bad.join("\n"));
}

#[test]
fn the_rule_catches_what_it_must() {
    let core = Path::new("core/model.rs");
    assert_eq!(
        violations(core, "use crate::host::fsapply;\n"),
        ["src/core/model.rs: core imports host, which is above it or beside it"]
    );
    assert_eq!(violations(core, "use crate::{core::names, host::users};\n").len(), 1);
    assert_eq!(violations(core, "let x = crate::ops::act::run();\n").len(), 1);
    assert_eq!(
        violations(core, "use crate::fsapply;\n"),
        ["src/core/model.rs: imports crate::fsapply, which is no layer (root re-exports are gone: name the layer)"]
    );
    // Down is fine; a comment naming a layer is not an import.
    assert!(violations(core, "use crate::core::names; // not crate::host\n").is_empty());
    assert!(violations(
        Path::new("cmd/status.rs"),
        "use crate::{core::model, host::load, ops::select};"
    )
    .is_empty());
    // The servers never import each other.
    assert_eq!(
        violations(Path::new("ssh/dispatch.rs"), "use crate::web::link;").len(),
        1
    );
    assert_eq!(
        violations(Path::new("web/console.rs"), "use crate::ssh::command;").len(),
        1
    );
    assert_eq!(
        violations(Path::new("host/overview.rs"), "crate::cmd::status::run()").len(),
        1
    );
}
