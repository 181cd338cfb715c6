//! Model + templates → artifacts: every instance's config, the directories it needs
//! and its systemd files. Pure: nothing here touches the filesystem.

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::core::artifact::{generated_header, Artifact, Owner};
use crate::core::bounds::MAX_RENDERED_TOTAL;
use crate::core::error::{Diagnostic, Diagnostics};
use crate::core::kind::Kind;
use crate::core::model::{Instance, Model};
use crate::core::names::MASTER;
use crate::core::templates::Templates;
use crate::core::{polkit, rsyslog, units};

/// Lua modules shipped with hhlctl (`hhl.log`, `hhl.websocket`, and the OpenResty
/// names `resty.websocket.*`, `resty.redis` for Debian's `nginx.*` modules).
pub const HHL_LUA_DIR: &str = "/usr/share/hhl/lua";

/// `lua_package_path`: the instance's own code first, then the shared library, then
/// nginx's default path (`;;`: resty.core, Debian's `nginx.*`, or all of OpenResty's
/// lualib), then hhlctl's modules, last so that OpenResty's real `resty.*` win.
pub fn lua_package_path(model: &Model, inst: &Instance) -> String {
    let src = inst.src_dir();
    let lib = &model.paths.lua_lib_dir;
    format!(
        "{s}/?.lua;{s}/?/init.lua;{l}/?.lua;{l}/?/init.lua;;{HHL_LUA_DIR}/?.lua",
        s = src.display(),
        l = lib.display()
    )
}

/// The values a template sees: the merged values, plus hhlctl's under `hhl`.
pub fn template_data(model: &Model, inst: &Instance) -> Value {
    let mut data: Map<String, Value> = inst.values.clone().into_iter().collect();
    let mut hhl = json!({
        "instance": inst.name,
        "unit": inst.unit(),
        "server": inst.server,
        "developer": inst.developer,
        "port": inst.port,
        "conf_path": inst.config_path,
        "lua_lib_dir": model.paths.lua_lib_dir,
        "load_modules": model.flavor.modules(),
        "nginx_binary": model.flavor.binary(),
    });
    match inst.kind {
        Kind::Openresty => {
            hhl["prefix"] = json!(inst.dir);
            hhl["src_dir"] = json!(inst.src_dir());
            hhl["lua_package_path"] = json!(lua_package_path(model, inst));
            // nginx's syslog tag: letters, digits and `_`, at most 32.
            let tag: String = inst
                .syslog_identifier()
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .take(32)
                .collect();
            hhl["access_tag"] = json!(tag);
            // The owner's own Redis, for Lua to connect to (templates set $hhl_redis_port).
            if let Some(redis) = crate::core::redis_acl::of(model, &inst.developer) {
                hhl["redis_port"] = json!(redis.name);
                hhl["redis_secret"] = json!(crate::core::redis_acl::secret_path(model, &inst.developer));
            }
        }
        Kind::Redis => hhl["data_dir"] = json!(inst.dir),
    }
    data.insert("hhl".into(), hhl);
    Value::Object(data)
}

/// A deploy target: `app` holds `releases/` and `current` (a link to one of them,
/// swapped by deploys), `link` points at `app/current` for nginx. The entry account
/// owns it (hooks deploy as it); `app` is setgid to the owner's group, which reads
/// the code and cannot change it.
fn release_artifacts(model: &Model, app: &Path, link: &Path, mode: u32, user: &str) -> Vec<Artifact> {
    let owner = Owner::Entry(model.access.entry.clone(), user.to_string());
    let rel = |p: &Path| -> PathBuf {
        match (p.parent(), app.parent()) {
            (Some(a), Some(b)) if a == b => Path::new(app.file_name().unwrap_or_default()).join("current"),
            _ => app.join("current"),
        }
    };
    vec![
        Artifact::dir(app, mode).owned(owner.clone()),
        Artifact::dir(app.join(RELEASES), mode).owned(owner.clone()),
        Artifact::dir(app.join(RELEASES).join(INITIAL_RELEASE), mode).owned(owner.clone()),
        Artifact::seed(app.join("current"), Path::new(RELEASES).join(INITIAL_RELEASE)).owned(owner),
        Artifact::symlink(link, rel(link)),
    ]
}

/// The shared Lua library: `lua_lib_dir` links to `<lua_lib_dir>.app/current`, in
/// master's group; every instance may read it (the lib releases are world-readable).
fn lib_artifacts(model: &Model) -> Vec<Artifact> {
    release_artifacts(
        model,
        &lib_app_dir(model),
        &model.paths.lua_lib_dir,
        0o2755,
        model.access.user_of(MASTER),
    )
}

pub fn lib_app_dir(model: &Model) -> PathBuf {
    let lib = &model.paths.lua_lib_dir;
    lib.with_file_name(format!("{}.app", lib.file_name().unwrap_or_default().to_string_lossy()))
}

pub const RELEASES: &str = "releases";
pub const INITIAL_RELEASE: &str = "initial";

/// Render every artifact of `model`. All template errors are collected (each distinct
/// one once), so one run shows everything to fix.
pub fn render(model: &Model, templates: &Templates, source: &Path) -> Result<Vec<Artifact>, Diagnostics> {
    let mut errs = Diagnostics::default();
    let mut out = lib_artifacts(model);
    let mut total = 0usize;
    for inst in &model.instances {
        let what = format!("{} ({})", inst.name, inst.unit());
        match templates.render(&inst.template.key(), &template_data(model, inst), &what) {
            Ok(_) if total > MAX_RENDERED_TOTAL => {}
            Ok(text) => {
                total += text.len();
                if total > MAX_RENDERED_TOTAL {
                    errs.push(
                        Diagnostic::new(
                            source,
                            format!("the rendered configs exceed {MAX_RENDERED_TOTAL} bytes in all"),
                        )
                        .hint("a config is a few KiB; check the templates' loops and values"),
                    );
                }
                // The instance reads its config but cannot change it.
                out.push(
                    Artifact::file(
                        &inst.config_path,
                        generated_header(source, Some(&inst.unit())) + &text,
                        0o640,
                    )
                    .owned(Owner::ReadBy(inst.user.clone())),
                );
            }
            Err(d) => {
                // The same template hole shows up once per instance: report it once.
                if !errs
                    .0
                    .iter()
                    .any(|e| e.file == d.file && e.pos == d.pos && e.hint == d.hint)
                {
                    errs.push(d);
                }
            }
        }
        match inst.kind {
            // Mode 0750 and the owner's group: no other developer can look inside.
            Kind::Openresty => {
                let reads = Owner::ReadBy(inst.user.clone());
                let writes = Owner::User(inst.user.clone());
                if let Some(server_dir) = inst.dir.parent() {
                    out.push(Artifact::dir(server_dir, 0o755));
                }
                // 0751: the entry account passes through to app/ (its own); nobody
                // but the owner's group lists or reads anything here.
                out.push(Artifact::dir(&inst.dir, 0o751).owned(reads.clone()));
                out.push(Artifact::dir(inst.dir.join("conf"), 0o750).owned(reads));
                for sub in ["logs", "temp"] {
                    out.push(Artifact::dir(inst.dir.join(sub), 0o750).owned(writes.clone()));
                }
                out.extend(release_artifacts(
                    model,
                    &inst.app_dir(),
                    &inst.src_dir(),
                    0o2750,
                    &inst.user,
                ));
            }
            Kind::Redis => {
                out.push(Artifact::dir(&model.paths.redis_data_dir, 0o755));
                out.push(Artifact::dir(&inst.dir, 0o750).owned(Owner::User(inst.user.clone())));
            }
        }
    }
    // Names and paths are checked when the model is built; what is left to refuse
    // here is the path of hhl.yaml itself.
    let unsafe_source = |e: crate::core::escape::Unsafe| {
        Diagnostic::new(
            source,
            format!("cannot name this hhl.yaml in systemd or rsyslog files: its path {e}"),
        )
        .hint("rename the file or its directory")
    };
    match units::artifacts(model, source) {
        Ok(a) => out.extend(a),
        Err(e) => errs.push(unsafe_source(e)),
    }
    out.extend(polkit::artifact(model, source));
    // Only when someone has a key; a file once written and now without keys is
    // removed by apply like any file no longer generated.
    if model.access.identities.values().any(|i| !i.keys.is_empty()) {
        let hhlctl = Path::new(crate::core::authorized_keys::HHLCTL);
        match crate::core::authorized_keys::artifacts(model, hhlctl, source) {
            Ok(a) => out.extend(a),
            Err(e) => errs.push(
                Diagnostic::new(source, format!("cannot write the entry account's authorized_keys: {e}"))
                    .hint("fix the key in `keys:`"),
            ),
        }
    }
    out.extend(crate::core::peers::artifacts(model, source));
    match rsyslog::artifacts(model, source) {
        Ok(a) => out.extend(a),
        Err(e) => errs.push(unsafe_source(e)),
    }
    // Parent directories shared by several instances are listed once. Hashing the
    // bytes, not ordering `Path`s (component by component), is the cheap way: the
    // ordered set was a third of `plan`'s instructions at 404 instances.
    let mut seen = std::collections::HashSet::new();
    out.retain(|a| seen.insert(a.path.as_os_str().to_owned()));
    errs.into_result(out)
}
