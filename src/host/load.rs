//! Read hhl.yaml and its templates from disk and build the model: the shell around
//! the pure `config` → `model` → `templates` core.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::core::artifact::Artifact;
use crate::core::bounds::{MAX_CONFIG_BYTES, MAX_TEMPLATE_BYTES};
use crate::core::config::{self, FlavorChoice, Source};
use crate::core::error::Diagnostics;
use crate::core::kind::Kind;
use crate::core::model::{self, Flavor, Model, TemplateRef, SHARED_TEMPLATE_DIR};
use crate::core::render;
use crate::core::templates::{self, Syntax, TemplateSource, Templates};

pub use crate::core::package::DEFAULT_CONFIG;

pub struct Loaded {
    pub source: Source,
    /// With several hosts, this host's share (`Model::on_host`).
    pub model: Model,
    pub templates: Templates,
}

impl Loaded {
    pub fn render(&self) -> Result<Vec<Artifact>, Diagnostics> {
        render::render(&self.model, &self.templates, &self.source.path)
    }
}

/// What is installed: OpenResty if its binary exists, else Debian's nginx + Lua module.
pub fn detect_flavor(choice: FlavorChoice) -> Flavor {
    match choice {
        FlavorChoice::Debian => Flavor::Debian,
        FlavorChoice::Openresty => Flavor::Openresty,
        FlavorChoice::Auto if Path::new(Flavor::Openresty.binary()).exists() => Flavor::Openresty,
        FlavorChoice::Auto => Flavor::Debian,
    }
}

/// Read and validate `path` and every template it names.
pub fn load(path: &Path) -> Result<Loaded> {
    let bytes = read_bounded(path, MAX_CONFIG_BYTES).with_context(|| {
        // The hint is for a file that is not there, not for one that is refused.
        if path.exists() {
            format!("cannot use {}", path.display())
        } else {
            format!("cannot read {}; pass --config FILE or set HHL_CONFIG", path.display())
        }
    })?;
    let path = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()?.join(path)
    };
    let text = config::text_of(&path, bytes).map_err(Diagnostics::from)?;
    load_text(path, text)
}

/// A regular file's bytes, refusing anything else (a FIFO would block, `/dev/zero`
/// never ends) and anything over `limit` bytes (read at most `limit + 1`).
pub fn read_bounded(path: &Path, limit: usize) -> Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    // O_NONBLOCK: opening a FIFO must not wait for a writer before we can refuse it.
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        anyhow::bail!("{} is not a regular file", path.display());
    }
    if meta.len() > limit as u64 {
        anyhow::bail!("{} is {} bytes; the limit is {limit}", path.display(), meta.len());
    }
    let mut bytes = Vec::new();
    f.take(limit as u64 + 1).read_to_end(&mut bytes)?;
    if bytes.len() > limit {
        anyhow::bail!("{} is over {limit} bytes", path.display());
    }
    Ok(bytes)
}

pub fn load_text(path: PathBuf, text: String) -> Result<Loaded> {
    load_text_as(path, text, false)
}

/// `load`, keeping the instances of every host (`here` still set): the primary's view
/// when it moves an owner between hosts, and a host's when it takes in or gives out an
/// owner not placed on it.
pub fn load_whole(path: &Path) -> Result<Loaded> {
    let bytes = read_bounded(path, MAX_CONFIG_BYTES).with_context(|| format!("cannot use {}", path.display()))?;
    let path = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()?.join(path)
    };
    let text = config::text_of(&path, bytes).map_err(Diagnostics::from)?;
    load_text_as(path, text, true)
}

fn load_text_as(path: PathBuf, text: String, whole: bool) -> Result<Loaded> {
    let source = Source { path, text };
    let mut raw = config::parse(&source.path, &source.text).map_err(Diagnostics::from)?;
    // A hhl.yaml written for 0.1.0: its changed keys mapped, each with a warning.
    for w in crate::core::migrate::migrate(&mut raw, &source) {
        eprint!("{}", crate::core::migrate::warning_text(&w));
    }
    let model = model::build(&raw, &source, detect_flavor(raw.nginx.flavor))?;
    let model = match &model.hosts {
        Some(h) if whole => {
            let here = crate::host::here::name(h)?;
            let mut m = model.on_host(&here);
            m.instances = model.instances;
            m
        }
        Some(h) => model.on_host(&crate::host::here::name(h)?),
        None => model,
    };
    let templates = Templates::compile(read_templates(&model, &source)?)?;
    Ok(Loaded {
        source,
        model,
        templates,
    })
}

fn read_templates(model: &Model, source: &Source) -> Result<Vec<TemplateSource>, Diagnostics> {
    let mut errs = Diagnostics::default();
    let mut out = BTreeMap::new();
    for inst in &model.instances {
        let key = inst.template.key();
        if out.contains_key(&key) {
            continue;
        }
        let mut at: Vec<&str> = inst.origin.iter().map(String::as_str).collect();
        at.push("template");
        let text = match &inst.template {
            TemplateRef::Builtin(name) => match templates::builtin(name) {
                Some(t) => t.to_string(),
                None => {
                    errs.push(
                        source
                            .diag(&at, format!("no built-in template `{name}`"))
                            .hint(format!("the built-ins are {}", templates::builtin_names())),
                    );
                    continue;
                }
            },
            TemplateRef::File(p) => match read_template(p, source) {
                Ok(t) => t,
                Err(e) => {
                    errs.push(
                            source
                                .diag(&at, format!("cannot read template {}: {e:#}", p.display()))
                                .hint(format!(
                                    "template paths are relative to hhl.yaml's directory (or under {SHARED_TEMPLATE_DIR}); `builtin:<name>` uses a built-in"
                                )),
                        );
                    continue;
                }
            },
        };
        let path = match &inst.template {
            TemplateRef::Builtin(_) => PathBuf::from(&key),
            TemplateRef::File(p) => p.clone(),
        };
        let syntax = match inst.kind {
            Kind::Openresty => Syntax::Nginx,
            Kind::Redis => Syntax::Redis,
        };
        out.insert(
            key.clone(),
            TemplateSource {
                key,
                path,
                text,
                syntax,
            },
        );
    }
    errs.into_result(out.into_values().collect())
}

/// A template file: it must resolve (through links) inside hhl.yaml's directory or
/// the package's template directory, be a regular file, of bounded size, UTF-8.
fn read_template(p: &Path, source: &Source) -> Result<String> {
    let real = fs::canonicalize(p)?;
    let dir = fs::canonicalize(source.dir()).unwrap_or_else(|_| source.dir().to_path_buf());
    let shared = fs::canonicalize(SHARED_TEMPLATE_DIR).unwrap_or_else(|_| PathBuf::from(SHARED_TEMPLATE_DIR));
    if !(real.starts_with(&dir) || real.starts_with(&shared)) {
        anyhow::bail!(
            "it resolves to {}, outside {} and {SHARED_TEMPLATE_DIR}",
            real.display(),
            dir.display()
        );
    }
    let bytes = read_bounded(&real, MAX_TEMPLATE_BYTES)?;
    String::from_utf8(bytes).map_err(|e| {
        let pos = crate::core::error::pos_of_offset(e.as_bytes(), e.utf8_error().valid_up_to());
        anyhow::anyhow!("not valid UTF-8 at line {} column {}", pos.line, pos.column)
    })
}
