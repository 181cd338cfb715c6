//! The handlebars registry: built-in templates embedded in the binary, user templates
//! read by the shell, strict mode so a missing value is an error, and no HTML escaping
//! (we render nginx and Redis configs, not web pages).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use handlebars::{Handlebars, RenderError, RenderErrorReason};

use crate::error::{Diagnostic, Diagnostics, Pos};

/// Built-in templates, usable as `builtin:<name>` in hhl.yaml.
pub const BUILTIN: &[(&str, &str)] = &[
    ("socketserver", include_str!("../templates/socketserver.conf.hbs")),
    ("dtserver", include_str!("../templates/dtserver.conf.hbs")),
    ("httpserver", include_str!("../templates/httpserver.conf.hbs")),
    ("redis", include_str!("../templates/redis.conf.hbs")),
];

/// Partials every template may use: `{{> hhl_main}}` at the top of an nginx config
/// (modules, foreground, pid) and `{{> hhl_http}}` inside `http {}` (temp paths).
pub const PARTIALS: &[(&str, &str)] = &[
    ("hhl_main", include_str!("../templates/hhl_main.hbs")),
    ("hhl_http", include_str!("../templates/hhl_http.hbs")),
];

pub fn builtin(name: &str) -> Option<&'static str> {
    BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

pub fn builtin_names() -> String {
    BUILTIN
        .iter()
        .map(|(n, _)| format!("builtin:{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A template's text, the name it is registered under and where it came from.
#[derive(Debug, Clone)]
pub struct TemplateSource {
    pub key: String,
    /// The file, or `builtin:<name>`, for messages.
    pub path: PathBuf,
    pub text: String,
}

pub struct Templates {
    registry: Handlebars<'static>,
    sources: BTreeMap<String, TemplateSource>,
}

impl Templates {
    /// Compile every template; syntax errors are reported with their position.
    pub fn compile(sources: Vec<TemplateSource>) -> Result<Templates, Diagnostics> {
        let mut registry = Handlebars::new();
        registry.set_strict_mode(true);
        registry.register_escape_fn(handlebars::no_escape);
        for (name, text) in PARTIALS {
            registry
                .register_partial(name, *text)
                .expect("built-in partials compile");
        }
        let mut errs = Diagnostics::default();
        for s in &sources {
            if let Err(e) = registry.register_template_string(&s.key, &s.text) {
                let pos = e.pos().map(|(line, column)| Pos { line, column });
                errs.push(
                    Diagnostic::new(&s.path, format!("template syntax: {}", e.reason()))
                        .at(&s.text, pos)
                        .hint("fix the handlebars syntax; `{{name}}` inserts a value"),
                );
            }
        }
        let sources = sources.into_iter().map(|s| (s.key.clone(), s)).collect();
        errs.into_result(Templates { registry, sources })
    }

    /// Render `key` with `data`; `what` names the instance for messages.
    pub fn render(&self, key: &str, data: &serde_json::Value, what: &str) -> Result<String, Diagnostic> {
        self.registry
            .render(key, data)
            .map_err(|e| self.diagnose(key, &e, what))
    }

    fn diagnose(&self, key: &str, e: &RenderError, what: &str) -> Diagnostic {
        // Errors inside a partial name the partial; point into the user's file otherwise.
        let src = e
            .template_name
            .as_deref()
            .and_then(|n| self.sources.get(n))
            .or_else(|| self.sources.get(key));
        let (path, text) = match src {
            Some(s) => (s.path.as_path(), s.text.as_str()),
            None => (Path::new(key), ""),
        };
        let pos = e.line_no.zip(e.column_no).map(|(line, column)| Pos { line, column });
        let (message, hint) = match e.reason() {
            RenderErrorReason::MissingVariable(Some(var)) => (
                format!("template uses `{var}`, which has no value for {what}"),
                format!(
                    "define `{var}` in master's values (or this developer's), or fix the template; built-in values are hhl.{}",
                    BUILTIN_VARS.join(", hhl.")
                ),
            ),
            RenderErrorReason::PartialNotFound(p) => (
                format!("template uses partial `{p}`, which does not exist"),
                "the partials are `hhl_main` and `hhl_http`".to_string(),
            ),
            other => (format!("rendering for {what} failed: {other}"), "fix the template".to_string()),
        };
        Diagnostic::new(path, message).at(text, pos).hint(hint)
    }
}

/// Names of the values hhlctl provides under `hhl.`.
pub const BUILTIN_VARS: &[&str] = &[
    "instance",
    "unit",
    "server",
    "developer",
    "port",
    "prefix",
    "src_dir",
    "conf_path",
    "data_dir",
    "lua_lib_dir",
    "lua_package_path",
    "redis_port",
    "load_modules",
    "nginx_binary",
];
