//! Compile every `.lua` file of a tree, without running any of it, so a push with a
//! syntax error is refused before it is live. The compiler is the one the instances
//! use: nginx's own LuaJIT, started on a scratch config whose `init_by_lua_block`
//! calls `loadfile` on each file, writes the errors and exits before nginx listens on
//! anything. (`nginx -t` skips init_by_lua; Debian's `luajit` package would replace
//! the LuaJIT that libnginx-mod-http-lua needs.)

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use walkdir::WalkDir;

use crate::core::model::Flavor;

pub enum Outcome {
    Clean(usize),
    /// One message a file, paths relative to the tree.
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
    if files.is_empty() {
        return Ok(Outcome::Clean(0));
    }
    fs::write(scratch.join("files"), files.join("\n") + "\n")?;
    fs::write(scratch.join("check.conf"), config(flavor, scratch))?;
    let out = Command::new(flavor.binary())
        .args(["-e", "stderr", "-p"])
        .arg(format!("{}/", scratch.display()))
        .args(["-c", "check.conf"])
        .output()
        .with_context(|| format!("running {}", flavor.binary()))?;
    let errors = fs::read_to_string(scratch.join("errors")).with_context(|| {
        format!(
            "the Lua syntax check did not run: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })?;
    if errors.trim().is_empty() {
        return Ok(Outcome::Clean(files.len()));
    }
    let prefix = format!("{}/", tree.display());
    Ok(Outcome::Errors(
        errors.replace(&prefix, "").lines().map(str::to_string).collect(),
    ))
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
                assert!(e[0].starts_with("lib/bad.lua:2:"), "{e:?}");
            }
            Outcome::Clean(_) => panic!("a syntax error passed"),
        }
        fs::write(tree.join("lib/bad.lua"), "return {}\n").unwrap();
        assert!(matches!(
            check(Flavor::Debian, &tree, &scratch).unwrap(),
            Outcome::Clean(2)
        ));
    }
}
