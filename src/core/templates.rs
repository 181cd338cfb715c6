//! The handlebars registry: built-in templates embedded in the binary, user templates
//! read by the shell, strict mode so a missing value is an error. No HTML escaping:
//! each template is checked when loaded and every `{{x}}` in it rewritten into the
//! token helper of its file's syntax (nginx or Redis), so every value is escaped or
//! refused; raw text is only the `{{{x_snippet}}}` form (see docs/ops/configuration.md).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use handlebars::template::{Parameter, TemplateElement};
use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, Output, Path as HbPath, RenderContext, RenderError,
    RenderErrorReason, Template,
};
use serde_json::Value;

use crate::core::bounds::{MAX_RENDERED_BYTES, MAX_TEMPLATE_BYTES, MAX_TEMPLATE_DEPTH, MAX_TEMPLATE_TAGS, MAX_VALUES};
use crate::core::escape;

use crate::core::error::{Diagnostic, Diagnostics, Pos};

/// Built-in templates, usable as `builtin:<name>` in hhl.yaml.
pub const BUILTIN: &[(&str, &str)] = &[
    ("socketserver", include_str!("../../templates/socketserver.conf.hbs")),
    ("dtserver", include_str!("../../templates/dtserver.conf.hbs")),
    ("httpserver", include_str!("../../templates/httpserver.conf.hbs")),
    ("redis", include_str!("../../templates/redis.conf.hbs")),
];

/// Partials every template may use: `{{> hhl_main}}` at the top of an nginx config
/// (modules, foreground, pid) and `{{> hhl_http}}` inside `http {}` (temp paths).
pub const PARTIALS: &[(&str, &str)] = &[
    ("hhl_main", include_str!("../../templates/hhl_main.hbs")),
    ("hhl_http", include_str!("../../templates/hhl_http.hbs")),
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

/// The syntax a template renders: decides how `{{x}}` escapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    Nginx,
    Redis,
}

impl Syntax {
    fn helper(self) -> &'static str {
        match self {
            Syntax::Nginx => "hhl_nginx_token",
            Syntax::Redis => "hhl_redis_token",
        }
    }
    fn token(self, s: &str) -> Result<String, escape::Unsafe> {
        match self {
            Syntax::Nginx => escape::NginxToken::new(s).map(|t| t.as_str().to_string()),
            Syntax::Redis => escape::RedisToken::new(s).map(|t| t.as_str().to_string()),
        }
    }
}

/// A template's text, the name it is registered under and where it came from.
#[derive(Debug, Clone)]
pub struct TemplateSource {
    pub key: String,
    /// The file, or `builtin:<name>`, for messages.
    pub path: PathBuf,
    pub text: String,
    pub syntax: Syntax,
}

pub struct Templates {
    registry: Handlebars<'static>,
    sources: BTreeMap<String, TemplateSource>,
}

/// `{{x}}` after loading: one token of the file's syntax. Scalars are escaped, a list
/// is its items as tokens separated by spaces; a map, a null or a missing value is
/// an error (strict mode does not cover helper parameters, so it is checked here).
struct Token(Syntax);

impl HelperDef for Token {
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let p = h.param(0).ok_or_else(|| RenderErrorReason::Other("no value".into()))?;
        if p.is_value_missing() {
            return Err(RenderError::strict_error(p.relative_path()));
        }
        let name = p.relative_path().cloned().unwrap_or_else(|| "value".into());
        let refuse =
            |why: String| -> RenderError { RenderErrorReason::Other(format!("{VALUE_MARK}`{name}` {why}")).into() };
        let scalar = |v: &Value| -> Result<String, RenderError> {
            let s = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Null => return Err(refuse("is null, which would render as nothing".into())),
                Value::Array(_) => {
                    return Err(refuse(
                        "is a list inside a list; only a flat list renders as words".into(),
                    ))
                }
                Value::Object(_) => {
                    return Err(refuse(
                        "is a map; a template can only insert it with `{{#each}}`".into(),
                    ))
                }
            };
            self.0
                .token(&s)
                .map_err(|e| refuse(format!("`{}` {e}", crate::core::error::excerpt(&s))))
        };
        let text = match p.value() {
            Value::Array(items) => items.iter().map(scalar).collect::<Result<Vec<_>, _>>()?.join(" "),
            v => scalar(v)?,
        };
        out.write(&text)?;
        Ok(())
    }
}

/// Marks a value refused by `Token`, for `diagnose`.
const VALUE_MARK: &str = "hhl-value:";

/// An `io::Write` that refuses to grow past `limit`: a template that would render
/// gigabytes stops at the limit instead of exhausting memory.
struct Bounded {
    buf: Vec<u8>,
    limit: usize,
}

impl std::io::Write for Bounded {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + b.len() > self.limit {
            return Err(std::io::Error::other(OUTPUT_MARK));
        }
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const OUTPUT_MARK: &str = "hhl-output-limit";

/// A refusal found while loading a template: position and message.
type Refusal = (Option<(usize, usize)>, String, &'static str);

/// Linear pre-scan before the parser (which recurses): size and nesting of blocks and
/// subexpressions.
fn prescan(text: &str) -> Result<(), Refusal> {
    if text.len() > MAX_TEMPLATE_BYTES {
        return Err((
            None,
            format!("template is {} bytes; the limit is {MAX_TEMPLATE_BYTES}", text.len()),
            "a config template is a few KiB; split out what is not configuration",
        ));
    }
    let (mut depth, mut line, mut col) = (0usize, 1usize, 1usize);
    let mut in_tag = false;
    let mut parens = 0usize;
    let mut tags = 0usize;
    // The parser's time grows with the square of a run of backslashes.
    let mut backslashes = 0usize;
    let mut prev = '\0';
    for c in text.chars() {
        let deep = |l, c| -> Result<(), Refusal> {
            Err((
                Some((l, c)),
                format!("template blocks or subexpressions nest more than {MAX_TEMPLATE_DEPTH} deep"),
                "flatten the template",
            ))
        };
        if c.is_control() && !matches!(c, '\n' | '\t' | '\r') {
            return Err((
                Some((line, col)),
                format!("template contains the control character U+{:04X}", c as u32),
                "remove it: config files are text",
            ));
        }
        backslashes = if c == '\\' { backslashes + 1 } else { 0 };
        if backslashes > 64 {
            return Err((
                Some((line, col)),
                "template has a run of more than 64 backslashes".into(),
                "shorten it; `\\{{` is all it takes to write a literal `{{`",
            ));
        }
        if !in_tag && prev == '{' && c == '{' {
            in_tag = true;
            parens = 0;
            tags += 1;
            if tags > MAX_TEMPLATE_TAGS {
                return Err((
                    Some((line, col)),
                    format!("template has more than {MAX_TEMPLATE_TAGS} `{{{{...}}}}` tags"),
                    "a config template needs a few dozen; use lists and `{{#each}}`",
                ));
            }
        } else if in_tag {
            match c {
                '#' | '^' if prev == '{' => {
                    depth += 1;
                    if depth > MAX_TEMPLATE_DEPTH {
                        return deep(line, col);
                    }
                }
                '/' if prev == '{' => depth = depth.saturating_sub(1),
                '(' => {
                    parens += 1;
                    if parens > MAX_TEMPLATE_DEPTH {
                        return deep(line, col);
                    }
                }
                '}' => in_tag = false,
                _ => {}
            }
        }
        if c == '\n' {
            line += 1;
            col = 1;
        } else {
            col += 1;
        }
        prev = c;
    }
    Ok(())
}

/// Worst-case loop iterations of `t`, with every list at its size limit: refused
/// above `MAX_LOOP_WORK` so nested `{{#each}}`s cannot run for hours.
fn work(t: &Template) -> u64 {
    t.elements
        .iter()
        .fold(0u64, |sum, e| sum.saturating_add(element_work(e)))
}

/// `work` of one element (a block: its body times its loop).
fn element_work(e: &TemplateElement) -> u64 {
    match e {
        TemplateElement::HelperBlock(ht) => {
            let inner = ht.template.as_ref().map_or(1, work);
            let inv = ht.inverse.as_ref().map_or(0, work);
            let loops = matches!(&ht.name, Parameter::Name(n) if n == "each");
            let factor = if loops { MAX_VALUES as u64 } else { 1 };
            inner.saturating_mul(factor).saturating_add(inv)
        }
        _ => 1,
    }
}
const MAX_LOOP_WORK: u64 = 10_000_000;

/// Check every element and rewrite each `{{x}}` into a call of the syntax's token
/// helper. Raw `{{{x}}}`/`{{&x}}` only for `*_snippet` values; no inline helper calls
/// (their output would bypass escaping), no decorators or inline partials, no
/// partials but hhlctl's (which cannot recurse).
fn harden(t: &mut Template, syntax: Syntax) -> Result<(), Refusal> {
    let mapping = t.mapping.clone();
    for (i, e) in t.elements.iter_mut().enumerate() {
        let pos = mapping.get(i).map(|m| (m.0, m.1));
        let refuse = |msg: String, hint: &'static str| Err((pos, msg, hint));
        match e {
            TemplateElement::Expression(ht) => {
                if !ht.params.is_empty() || !ht.hash.is_empty() {
                    return refuse(
                        format!(
                            "`{{{{{} ...}}}}` calls a helper inline; its output would not be escaped",
                            param_name(&ht.name)
                        ),
                        "insert values with `{{name}}`; use helpers only as blocks (`{{#if}}`, `{{#each}}`)",
                    );
                }
                let target = match &ht.name {
                    Parameter::Name(n) => match HbPath::parse(n) {
                        Ok(p) => Parameter::Path(p),
                        Err(_) => {
                            return refuse(
                                format!("`{{{{{n}}}}}` is not a value name"),
                                "insert values with `{{name}}`",
                            )
                        }
                    },
                    Parameter::Path(_) | Parameter::Literal(_) => ht.name.clone(),
                    _ => {
                        return refuse(
                            "a subexpression inserted directly would not be escaped".into(),
                            "insert values with `{{name}}`",
                        )
                    }
                };
                ht.params = vec![target];
                ht.name = Parameter::Name(syntax.helper().into());
            }
            TemplateElement::HtmlExpression(ht) => {
                let name = param_name(&ht.name);
                if !(ht.params.is_empty() && ht.hash.is_empty() && name.ends_with("_snippet")) {
                    return refuse(
                        format!("`{{{{{{{name}}}}}}}` inserts `{name}` raw, without escaping; only `*_snippet` values may be raw"),
                        "write `{{name}}` (escaped), or name the value `<name>_snippet` if it really is nginx text",
                    );
                }
            }
            TemplateElement::HelperBlock(ht) => {
                let name = param_name(&ht.name);
                if !matches!(name.as_str(), "if" | "unless" | "each" | "with") {
                    return refuse(
                        format!("block helper `{{{{#{name}}}}}` is not supported"),
                        "the block helpers are #if, #unless, #each and #with",
                    );
                }
                if let Some(inner) = ht.template.as_mut() {
                    harden(inner, syntax)?;
                }
                if let Some(inv) = ht.inverse.as_mut() {
                    harden(inv, syntax)?;
                }
            }
            TemplateElement::PartialExpression(dt) | TemplateElement::PartialBlock(dt) => {
                let name = param_name(&dt.name);
                if !PARTIALS.iter().any(|(n, _)| *n == name) {
                    return refuse(
                        format!("partial `{name}` is not one of hhlctl's"),
                        "the partials are `hhl_main` and `hhl_http`",
                    );
                }
                if let Some(inner) = dt.template.as_mut() {
                    harden(inner, syntax)?;
                }
            }
            TemplateElement::DecoratorExpression(_) | TemplateElement::DecoratorBlock(_) => {
                return refuse(
                    "decorators and inline partials (`{{*x}}`, `{{#*inline}}`) are not supported".into(),
                    "write the text out; the partials are `hhl_main` and `hhl_http`",
                )
            }
            _ => {}
        }
    }
    Ok(())
}

fn param_name(p: &Parameter) -> String {
    match p {
        Parameter::Name(n) => n.clone(),
        #[allow(unreachable_patterns)]
        Parameter::Path(p) => match p {
            HbPath::Relative((_, raw)) | HbPath::Local((_, _, raw)) => raw.clone(),
            _ => "(path)".into(),
        },
        Parameter::Literal(v) => v.to_string(),
        _ => "(subexpression)".into(),
    }
}

/// Parse, check and rewrite one template.
fn load_one(name: &str, text: &str, syntax: Syntax) -> Result<Template, Refusal> {
    prescan(text)?;
    let mut t = Template::compile_with_name(text, name.to_string()).map_err(|e| {
        (
            e.pos(),
            format!("template syntax: {}", e.reason()),
            "fix the handlebars syntax; `{{name}}` inserts a value",
        )
    })?;
    harden(&mut t, syntax)?;
    if work(&t) > MAX_LOOP_WORK {
        // Point at the outermost block of the nest that costs the most.
        let heaviest = (0..t.elements.len()).max_by_key(|&i| element_work(&t.elements[i]));
        let pos = heaviest.and_then(|i| t.mapping.get(i)).map(|m| (m.0, m.1));
        return Err((
            pos,
            "template nests `{{#each}}` so deeply it could loop for hours".into(),
            "nest at most two `{{#each}}` blocks",
        ));
    }
    Ok(t)
}

impl Templates {
    /// Compile every template; syntax errors and refused constructs are reported with
    /// their position.
    pub fn compile(sources: Vec<TemplateSource>) -> Result<Templates, Diagnostics> {
        let mut registry = Handlebars::new();
        registry.set_strict_mode(true);
        // Every `{{x}}` goes through the token helpers; nothing else writes values.
        registry.register_escape_fn(handlebars::no_escape);
        for syntax in [Syntax::Nginx, Syntax::Redis] {
            registry.register_helper(syntax.helper(), Box::new(Token(syntax)));
        }
        for (name, text) in PARTIALS {
            let t = load_one(name, text, Syntax::Nginx).expect("built-in partials load");
            registry.register_template(name, t);
        }
        let mut errs = Diagnostics::default();
        for s in &sources {
            match load_one(&s.key, &s.text, s.syntax) {
                Ok(t) => registry.register_template(&s.key, t),
                Err((pos, msg, hint)) => {
                    let pos = pos.map(|(line, column)| Pos { line, column });
                    errs.push(Diagnostic::new(&s.path, msg).at(&s.text, pos).hint(hint));
                }
            }
        }
        let sources = sources.into_iter().map(|s| (s.key.clone(), s)).collect();
        errs.into_result(Templates { registry, sources })
    }

    /// Render `key` with `data`; `what` names the instance for messages.
    pub fn render(&self, key: &str, data: &serde_json::Value, what: &str) -> Result<String, Diagnostic> {
        let mut out = Bounded {
            buf: Vec::new(),
            limit: MAX_RENDERED_BYTES,
        };
        self.registry
            .render_to_write(key, data, &mut out)
            .map_err(|e| self.diagnose(key, &e, what))?;
        String::from_utf8(out.buf)
            .map_err(|_| Diagnostic::new(Path::new(key), format!("rendering for {what} produced invalid UTF-8")))
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
            RenderErrorReason::Other(m) if m.starts_with(VALUE_MARK) => (
                format!("template inserts {} for {what}", &m[VALUE_MARK.len()..]),
                "give a scalar (or a flat list) value, or iterate a map with `{{#each}}`".to_string(),
            ),
            RenderErrorReason::IOError(io) if io.to_string().contains(OUTPUT_MARK) => (
                format!("template renders more than {MAX_RENDERED_BYTES} bytes for {what}"),
                "a config is a few KiB; check loops and values".to_string(),
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
