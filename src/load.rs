//! Read hhl.yaml and its templates from disk and build the model: the shell around
//! the pure `config` → `model` → `templates` core.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::artifact::Artifact;
use crate::config::{self, FlavorChoice, Source};
use crate::error::Diagnostics;
use crate::model::{self, Flavor, Model, TemplateRef};
use crate::render;
use crate::templates::{self, TemplateSource, Templates};

pub const DEFAULT_CONFIG: &str = "/etc/hhl/hhl.yaml";

pub struct Loaded {
    pub source: Source,
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
    let text = fs::read_to_string(path)
        .with_context(|| format!("cannot read {}; pass --config FILE or set HHL_CONFIG", path.display()))?;
    let path = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()?.join(path)
    };
    load_text(path, text)
}

pub fn load_text(path: PathBuf, text: String) -> Result<Loaded> {
    let source = Source { path, text };
    let raw = config::parse(&source.path, &source.text).map_err(Diagnostics::from)?;
    let model = model::build(&raw, &source, detect_flavor(raw.nginx.flavor))?;
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
        let text =
            match &inst.template {
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
                TemplateRef::File(p) => {
                    match fs::read_to_string(p) {
                        Ok(t) => t,
                        Err(e) => {
                            errs.push(source.diag(&at, format!("cannot read template {}: {e}", p.display()))
                        .hint("template paths are relative to hhl.yaml's directory; `builtin:<name>` uses a built-in"));
                            continue;
                        }
                    }
                }
            };
        let path = match &inst.template {
            TemplateRef::Builtin(_) => PathBuf::from(&key),
            TemplateRef::File(p) => p.clone(),
        };
        out.insert(key.clone(), TemplateSource { key, path, text });
    }
    errs.into_result(out.into_values().collect())
}
