//! Compile every `.lua` file of a tree, without running any of it, so a push with a
//! syntax error is refused before it is live. The compiler is the one the instances
//! use: nginx's own LuaJIT, started on a scratch config whose `init_by_lua_block`
//! calls `loadfile` on each file, writes the errors and exits before nginx listens on
//! anything. (`nginx -t` skips init_by_lua; Debian's `luajit` package would replace
//! the LuaJIT that libnginx-mod-http-lua needs.)

use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use walkdir::WalkDir;

use crate::core::encoding;
use crate::core::model::Flavor;

pub enum Outcome {
    Clean(usize),
    /// One message a file, paths relative to the tree: `Lua syntax: <file>:<line>: …`,
    /// or what is wrong with a file's encoding (`core::encoding`), which is not compiled.
    Errors(Vec<String>),
}

fn config(flavor: Flavor, scratch: &Path) -> String {
    let s = scratch.display();
    format!(
        r#"{modules}daemon off;
master_process off;
pid {s}/nginx.pid;
error_log stderr;
events {{}}
http {{
    init_by_lua_block {{
        local bad = {{}}
        -- Each file: its path, then its name in the tree, which the chunk is named
        -- after (messages stay short however deep the scratch directory is).
        local lines = io.lines("{s}/files")
        for name in lines do
            local rel = lines()
            local f = io.open(name, "rb")
            local text = f:read("*a")
            f:close()
            local ok, err = loadstring(text, "@" .. rel)
            if not ok then bad[#bad + 1] = err end
        end
        local out = io.open("{s}/errors", "w")
        out:write(table.concat(bad, "\n"))
        out:close()
        os.exit(0)
    }}
}}
"#,
        modules = flavor.load_modules()
    )
}

/// Check `tree`, using `scratch` (an empty directory) for nginx's files.
pub fn check(flavor: Flavor, tree: &Path, scratch: &Path) -> Result<Outcome> {
    let files: Vec<String> = WalkDir::new(tree)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file() && e.path().extension().is_some_and(|x| x == "lua"))
        .map(|e| {
            let rel = e.path().strip_prefix(tree).unwrap_or(e.path());
            format!("{}\n{}", e.path().display(), rel.display())
        })
        .collect();
    let prefix = format!("{}/", tree.display());
    // UTF-16 or a byte-order mark (Windows editors, PowerShell's `>`) would reach
    // LuaJIT as `unexpected symbol near '<\255>'`: said plainly instead.
    let mut bad = Vec::new();
    let mut files_ok = Vec::new();
    for f in files {
        // `<path>\n<path in the tree>`.
        let (path, rel) = f.split_once('\n').unwrap_or((&f, &f));
        let mut head = Vec::with_capacity(encoding::SNIFF);
        fs::File::open(path)
            .and_then(|h| h.take(encoding::SNIFF as u64).read_to_end(&mut head))
            .with_context(|| format!("reading {path}"))?;
        match encoding::problem(&head) {
            Some(p) => bad.push(encoding::message(rel, p)),
            None => files_ok.push(f),
        }
    }
    let files = files_ok;
    if files.is_empty() {
        return Ok(if bad.is_empty() {
            Outcome::Clean(0)
        } else {
            Outcome::Errors(bad)
        });
    }
    fs::write(scratch.join("files"), files.join("\n") + "\n")?;
    fs::write(scratch.join("check.conf"), config(flavor, scratch))?;
    let out = crate::host::child::output(
        Command::new(flavor.binary())
            .args(["-e", "stderr", "-p"])
            .arg(format!("{}/", scratch.display()))
            .args(["-c", "check.conf"]),
        crate::host::child::NGINX_TEST,
    )?;
    let errors = fs::read_to_string(scratch.join("errors")).with_context(|| {
        format!(
            "the Lua syntax check did not run: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })?;
    if errors.trim().is_empty() && bad.is_empty() {
        return Ok(Outcome::Clean(files.len()));
    }
    bad.extend(
        errors
            .replace(&prefix, "")
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| format!("Lua syntax: {l}")),
    );
    Ok(Outcome::Errors(bad))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_syntax_errors_with_file_and_line() {
        let t = tempfile::tempdir().unwrap();
        let tree = t.path().join("tree");
        let scratch = t.path().join("scratch");
        fs::create_dir_all(tree.join("lib")).unwrap();
        fs::create_dir_all(&scratch).unwrap();
        fs::write(tree.join("main.lua"), "ngx.say('ok')\n").unwrap();
        fs::write(tree.join("lib/bad.lua"), "local x = \nreturn {\n").unwrap();
        match check(Flavor::Debian, &tree, &scratch).unwrap() {
            Outcome::Errors(e) => {
                assert_eq!(e.len(), 1, "{e:?}");
                assert!(e[0].starts_with("Lua syntax: lib/bad.lua:2:"), "{e:?}");
            }
            Outcome::Clean(_) => panic!("a syntax error passed"),
        }
        // Windows: CRLF compiles; UTF-16 and a byte-order mark are named, not compiled.
        fs::write(tree.join("lib/bad.lua"), "local t = {}\r\nreturn t\r\n").unwrap();
        assert!(matches!(
            check(Flavor::Debian, &tree, &scratch).unwrap(),
            Outcome::Clean(2)
        ));
        let utf16: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain("return {}\r\n".encode_utf16().flat_map(|u| u.to_le_bytes()))
            .collect();
        fs::write(tree.join("lib/bad.lua"), utf16).unwrap();
        fs::write(tree.join("main.lua"), b"\xEF\xBB\xBFngx.say('ok')\n").unwrap();
        match check(Flavor::Debian, &tree, &scratch).unwrap() {
            Outcome::Errors(mut e) => {
                e.sort();
                assert_eq!(e.len(), 2, "{e:?}");
                assert!(e[0].starts_with("lib/bad.lua: is saved as UTF-16"), "{e:?}");
                assert!(
                    e[1].starts_with("main.lua: starts with a UTF-8 byte-order mark"),
                    "{e:?}"
                );
                assert!(e.iter().all(|m| m.contains("save it as UTF-8")), "{e:?}");
            }
            Outcome::Clean(_) => panic!("UTF-16 passed"),
        }
        fs::write(tree.join("main.lua"), "ngx.say('ok')\n").unwrap();
        fs::write(tree.join("lib/bad.lua"), "return {}\n").unwrap();
        assert!(matches!(
            check(Flavor::Debian, &tree, &scratch).unwrap(),
            Outcome::Clean(2)
        ));
    }
}
