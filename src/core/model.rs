//! The resolved, validated instance set: every developer's (and master's) OpenResty
//! and Redis instances with their ports, paths and merged values.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::core::access::{self, Access};
use crate::core::config::{OwnerValues, RawConfig, RawGit, RawPaths, Source, Values};
use crate::core::error::{Diagnostic, Diagnostics};
use crate::core::names::{self, MASTER};
use crate::core::{escape, paths};
use serde_json::Value;

pub const PORT_MIN: u16 = 1024;

/// Which nginx build serves Lua; decides the binary and the `load_module` lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    /// Debian's `nginx` + `libnginx-mod-http-lua`: modules are loaded explicitly.
    Debian,
    /// OpenResty: Lua is built in.
    Openresty,
}

impl Flavor {
    pub fn binary(self) -> &'static str {
        match self {
            Flavor::Debian => "/usr/sbin/nginx",
            Flavor::Openresty => "/usr/bin/openresty",
        }
    }
    /// The `load_module` lines, as `{{> hhl_main}}` writes them.
    pub fn load_modules(self) -> String {
        self.modules().iter().map(|m| format!("load_module {m};\n")).collect()
    }
    /// The modules to `load_module` (`hhl.load_modules` in templates).
    pub fn modules(self) -> &'static [&'static str] {
        match self {
            Flavor::Debian => &[
                "/usr/lib/nginx/modules/ndk_http_module.so",
                "/usr/lib/nginx/modules/ngx_http_lua_module.so",
            ],
            Flavor::Openresty => &[],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Openresty,
    Redis,
}

/// Where a template comes from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum TemplateRef {
    /// Embedded in hhlctl (`builtin:socketserver`).
    Builtin(String),
    /// A file, resolved against hhl.yaml's directory.
    File(PathBuf),
}

/// Where templates may live besides hhl.yaml's directory: the package's copies.
pub const SHARED_TEMPLATE_DIR: &str = "/usr/share/hhl/templates";

impl TemplateRef {
    fn parse(s: &str, base: &Path) -> TemplateRef {
        match s.strip_prefix("builtin:") {
            Some(name) => TemplateRef::Builtin(name.to_string()),
            None => TemplateRef::File(base.join(s)),
        }
    }

    /// Why a template path may not be used: it must name a file inside hhl.yaml's
    /// directory or the package's template directory, without `..` (checked again on
    /// disk, through links, by the shell).
    pub fn problem(s: &str, base: &Path) -> Option<String> {
        if s.strip_prefix("builtin:").is_some() {
            return None;
        }
        let shown = crate::core::error::excerpt(s);
        if s.chars().any(char::is_control) {
            return Some(format!("template path `{shown}` contains a control character"));
        }
        let p = Path::new(s);
        if p.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
            return Some(format!("template path `{shown}` contains `..`"));
        }
        let full = base.join(p);
        if !(full.starts_with(base) || full.starts_with(SHARED_TEMPLATE_DIR)) {
            return Some(format!(
                "template `{shown}` is outside {} and {SHARED_TEMPLATE_DIR}",
                base.display()
            ));
        }
        None
    }
    /// The name the template registry knows it by.
    pub fn key(&self) -> String {
        match self {
            TemplateRef::Builtin(n) => format!("builtin:{n}"),
            TemplateRef::File(p) => p.display().to_string(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Instance {
    pub kind: Kind,
    /// Logic server name, or `redis`.
    pub server: String,
    pub developer: String,
    /// The unix user it runs as (its owner's).
    pub user: String,
    /// systemd instance string: `socketserver-dev1`, or the port for Redis.
    pub name: String,
    pub port: u16,
    /// The rendered configuration file.
    pub config_path: PathBuf,
    /// nginx prefix (`-p`), or Redis's data directory.
    pub dir: PathBuf,
    #[serde(skip)]
    pub template: TemplateRef,
    /// Key path of the instance's group in hhl.yaml (`servers.socketserver`), for messages.
    #[serde(skip)]
    pub origin: Vec<String>,
    #[serde(skip)]
    pub values: Values,
}

impl Instance {
    pub fn unit(&self) -> String {
        match self.kind {
            Kind::Openresty => format!("openresty@{}.service", self.name),
            Kind::Redis => format!("redis@{}.service", self.name),
        }
    }
    pub fn src_dir(&self) -> PathBuf {
        self.dir.join("src")
    }
    /// Where deploys put releases; `src` links to its `current`.
    pub fn app_dir(&self) -> PathBuf {
        self.dir.join("app")
    }
}

#[derive(Debug, Clone)]
pub struct Model {
    /// Developers as listed (without master).
    pub developers: Vec<String>,
    pub paths: RawPaths,
    pub flavor: Flavor,
    /// In file order: servers as declared, then Redis; master first, then developers as listed.
    pub instances: Vec<Instance>,
    pub access: Access,
    pub git: RawGit,
}

impl Model {
    /// The same instances with every path moved under `root`: for testing a config
    /// (`nginx -t`) without touching, or needing rights to, the live paths.
    pub fn relocated(&self, root: &Path) -> Model {
        let under = |p: &Path| root.join(p.strip_prefix("/").unwrap_or(p));
        let mut m = self.clone();
        for (_, p) in m.paths.named_mut() {
            *p = under(p);
        }
        for i in &mut m.instances {
            i.config_path = under(&i.config_path);
            i.dir = under(&i.dir);
        }
        m
    }

    /// master, then the developers, in order.
    pub fn owners(&self) -> impl Iterator<Item = &str> {
        std::iter::once(MASTER).chain(self.developers.iter().map(String::as_str))
    }
}

/// Validate `raw` and resolve every instance. Reports every problem found, not only the first.
pub fn build(raw: &RawConfig, src: &Source, flavor: Flavor) -> Result<Model, Diagnostics> {
    let mut errs = Diagnostics::default();

    let mut developers: Vec<String> = Vec::new();
    let mut seen_devs = std::collections::HashSet::new();
    for (i, dev) in raw.developers.iter().enumerate() {
        if errs.is_full() {
            // Only counted from here: locating each would cost a pass over the text.
            if names::developer_problem(dev).is_some() || !seen_devs.insert(dev.as_str()) {
                errs.1 += 1;
            }
            continue;
        }
        let idx = i.to_string();
        if let Some(problem) = names::developer_problem(dev) {
            errs.push(src.diag(&["developers", &idx], problem).hint(
                "developer names are unix user names and git branches: lowercase letters, digits and `_`, at most 32; not a system account",
            ));
        } else if !seen_devs.insert(dev.as_str()) {
            errs.push(
                src.diag(&["developers", &idx], format!("developer `{dev}` is listed twice"))
                    .hint("remove the second entry"),
            );
        } else {
            developers.push(dev.clone());
        }
    }

    check_paths(raw, src, &mut errs);
    check_git(&raw.git, src, &mut errs);
    let access = access::resolve(raw, &developers, src, &mut errs);

    let mut instances = Vec::new();
    for (server, s) in &raw.servers {
        if let Some(problem) = names::server_problem(server) {
            errs.push(
                src.diag(&["servers", server], problem)
                    .hint("rename the server, e.g. `socketserver`"),
            );
            continue;
        }
        let group = Group {
            src,
            scope: vec!["servers", server],
            template: &s.template,
            values: &s.values,
            shared: s.shared,
        };
        instances.extend(group.resolve(&developers, &mut errs, |dev, port, values, template| {
            let dir = raw.paths.hhl_root.join(server).join(dev);
            Instance {
                kind: Kind::Openresty,
                server: server.clone(),
                developer: dev.to_string(),
                user: access.user_of(dev).to_string(),
                name: format!("{server}-{dev}"),
                port,
                config_path: dir.join("conf/nginx.conf"),
                dir,
                template,
                origin: vec!["servers".into(), server.clone()],
                values,
            }
        }));
    }
    if let Some(r) = &raw.redis {
        let group = Group {
            src,
            scope: vec!["redis"],
            template: &r.template,
            values: &r.values,
            shared: false,
        };
        instances.extend(
            group.resolve(&developers, &mut errs, |dev, port, values, template| Instance {
                kind: Kind::Redis,
                server: "redis".into(),
                developer: dev.to_string(),
                user: access.user_of(dev).to_string(),
                name: port.to_string(),
                port,
                config_path: raw.paths.redis_conf_dir.join(format!("{port}.conf")),
                dir: raw.paths.redis_data_dir.join(port.to_string()),
                template,
                origin: vec!["redis".into()],
                values,
            }),
        );
    }

    if instances.len() > crate::core::bounds::MAX_INSTANCES {
        errs.push(
            src.diag(
                &["developers"],
                format!(
                    "{} instances; the limit is {}",
                    instances.len(),
                    crate::core::bounds::MAX_INSTANCES
                ),
            )
            .hint("every instance is a running process: use fewer developers or servers, or `shared: true`"),
        );
        return Err(errs);
    }
    check_ports(&instances, src, &mut errs);
    check_values(raw, &instances, src, &mut errs);
    errs.into_result(Model {
        developers,
        paths: raw.paths.clone(),
        flavor,
        instances,
        access,
        git: raw.git.clone(),
    })
}

/// One server (or Redis) as written: master's values plus per-developer overrides.
struct Group<'a> {
    src: &'a Source,
    /// Key path of the group in hhl.yaml, e.g. `servers.socketserver`.
    scope: Vec<&'a str>,
    template: &'a str,
    values: &'a OwnerValues,
    shared: bool,
}

impl Group<'_> {
    fn diag(&self, rest: &[&str], message: String) -> Diagnostic {
        let path: Vec<&str> = self.scope.iter().chain(rest).copied().collect();
        self.src.diag(&path, format!("{}: {message}", self.scope.join(".")))
    }

    /// Merge master's values with each owner's overrides and build their instances.
    fn resolve(
        &self,
        developers: &[String],
        errs: &mut Diagnostics,
        make: impl Fn(&str, u16, Values, TemplateRef) -> Instance,
    ) -> Vec<Instance> {
        if self.template.trim().is_empty() {
            errs.push(
                self.diag(&["template"], "template is empty".into())
                    .hint("name a template file relative to hhl.yaml, or `builtin:<name>`"),
            );
        } else if let Some(p) = TemplateRef::problem(self.template, self.src.dir()) {
            errs.push(self.diag(&["template"], p).hint(format!(
                "keep templates beside hhl.yaml (e.g. templates/x.conf.hbs), or copy one from {SHARED_TEMPLATE_DIR}"
            )));
            return Vec::new();
        }
        let Some(base) = self.values.get(MASTER) else {
            errs.push(
                self.diag(&["values"], "no `master` values".into()).hint(
                    "add `values: {master: {port: ...}}`: master's values are the base every developer overrides",
                ),
            );
            return Vec::new();
        };
        for owner in self.values.keys().filter(|k| k.as_str() != MASTER) {
            if !developers.iter().any(|d| d == owner) {
                errs.push(
                    self.diag(
                        &["values", owner],
                        format!("values for `{owner}`, who is not in `developers`"),
                    )
                    .hint(format!("add `{owner}` to `developers`, or remove these values")),
                );
            } else if self.shared {
                errs.push(
                    self.diag(
                        &["values", owner],
                        format!("server is shared, so it has no instance of `{owner}` to override"),
                    )
                    .hint("remove these values, or set `shared: false` to give every developer an instance"),
                );
            }
        }
        let owners: Vec<&str> = if self.shared {
            vec![MASTER]
        } else {
            std::iter::once(MASTER)
                .chain(developers.iter().map(String::as_str))
                .collect()
        };
        let template = TemplateRef::parse(self.template, self.src.dir());
        let mut out = Vec::new();
        for owner in owners {
            let own = self.values.get(owner).filter(|_| owner != MASTER);
            let mut merged = base.clone();
            merged.extend(own.cloned().unwrap_or_default());
            // Point at the value that set the port: the override, else master's.
            let port_from = if own.is_some_and(|v| v.contains_key("port")) {
                owner
            } else {
                MASTER
            };
            let port = match merged.get("port") {
                None => {
                    errs.push(
                        self.diag(&["values", MASTER], format!("`{owner}` has no `port`"))
                            .hint("set `port` in master's values or in this developer's"),
                    );
                    continue;
                }
                Some(v) => match v.as_u64() {
                    Some(p) if (PORT_MIN as u64..=65535).contains(&p) => p as u16,
                    _ => {
                        errs.push(
                            self.diag(
                                &["values", port_from, "port"],
                                format!("port {v} of `{owner}` is outside {PORT_MIN}-65535"),
                            )
                            .hint("use an unprivileged port number; ports below 1024 need root"),
                        );
                        continue;
                    }
                },
            };
            out.push(make(owner, port, merged, template.clone()));
        }
        out
    }
}

/// `redis@6379.service (redis, master)`, `… (servers.socketserver, developer dev1)`.
fn whose(inst: &Instance) -> String {
    let owner = if inst.developer == MASTER {
        MASTER.to_string()
    } else {
        format!("developer {}", inst.developer)
    };
    format!("{} ({}, {owner})", inst.unit(), inst.origin.join("."))
}

fn check_ports(instances: &[Instance], src: &Source, errs: &mut Diagnostics) {
    let mut seen: BTreeMap<u16, &Instance> = BTreeMap::new();
    for inst in instances {
        if let Some(first) = seen.get(&inst.port) {
            let mut path: Vec<&str> = inst.origin.iter().map(String::as_str).collect();
            path.extend(["values", inst.developer.as_str(), "port"]);
            errs.push(
                src.diag(
                    &path,
                    format!(
                        "port {} is used by both {} and {}",
                        inst.port,
                        whose(first),
                        whose(inst),
                    ),
                )
                .hint("give every instance its own port"),
            );
        } else {
            seen.insert(inst.port, inst);
        }
    }
}

fn check_git(git: &RawGit, src: &Source, errs: &mut Diagnostics) {
    if let Some(p) = paths::path_problem(&git.root) {
        errs.push(
            src.diag(&["git", "root"], format!("git.root: {p}"))
                .hint("an absolute, normalised path, e.g. /srv/git"),
        );
    }
    for (key, v) in [
        ("max_object_size", &git.max_object_size),
        ("max_push_size", &git.max_push_size),
    ] {
        if let Err(p) = crate::core::push_limits::parse_size(v) {
            errs.push(
                src.diag(&["git", key], format!("git.{key}: {p}"))
                    .hint("bytes, or a number with K, M or G (`10M`), at least 1K"),
            );
        }
    }
    if git.keep < 2 {
        errs.push(
            src.diag(
                &["git", "keep"],
                format!("git.keep is {}; rollback needs at least 2 releases", git.keep),
            )
            .hint("keep 2 or more (default 5)"),
        );
    }
}

/// Each path on its own, then the layout: the trees and files hhlctl manages must not
/// be one another or sit inside one another (a server's instance directories would
/// vanish under `lua_lib_dir`, Redis data inside an instance would be deployed over).
fn check_paths(raw: &RawConfig, src: &Source, errs: &mut Diagnostics) {
    let mut paths = raw.paths.clone();
    let mut bad = false;
    for (key, p) in paths.named_mut() {
        if let Some(problem) = paths::path_problem(p) {
            bad = true;
            errs.push(
                src.diag(&["paths", key], format!("paths.{key}: {problem}"))
                    .hint("an absolute, normalised path: start it with `/`; no `.`, `..`, `//`, white space or quotes"),
            );
        }
    }
    if bad || paths::path_problem(&raw.git.root).is_some() {
        return;
    }
    let p = &raw.paths;
    let lib_app = p.lua_lib_dir.with_file_name(format!(
        "{}.app",
        p.lua_lib_dir.file_name().unwrap_or_default().to_string_lossy()
    ));
    // (what, key path, path): every tree or file that must stand apart.
    let mut trees: Vec<(String, Vec<String>, PathBuf)> = vec![
        (
            "paths.redis_conf_dir".into(),
            vec!["paths".into(), "redis_conf_dir".into()],
            p.redis_conf_dir.clone(),
        ),
        (
            "paths.redis_data_dir".into(),
            vec!["paths".into(), "redis_data_dir".into()],
            p.redis_data_dir.clone(),
        ),
        (
            "paths.lua_lib_dir".into(),
            vec!["paths".into(), "lua_lib_dir".into()],
            p.lua_lib_dir.clone(),
        ),
        (
            "the releases of paths.lua_lib_dir".into(),
            vec!["paths".into(), "lua_lib_dir".into()],
            lib_app,
        ),
        (
            "paths.unit_dir".into(),
            vec!["paths".into(), "unit_dir".into()],
            p.unit_dir.clone(),
        ),
        (
            "paths.state_dir".into(),
            vec!["paths".into(), "state_dir".into()],
            p.state_dir.clone(),
        ),
        (
            "paths.polkit_rules".into(),
            vec!["paths".into(), "polkit_rules".into()],
            p.polkit_rules.clone(),
        ),
        (
            "paths.log_dir".into(),
            vec!["paths".into(), "log_dir".into()],
            p.log_dir.clone(),
        ),
        (
            "paths.rsyslog_conf".into(),
            vec!["paths".into(), "rsyslog_conf".into()],
            p.rsyslog_conf.clone(),
        ),
        (
            "paths.entry_home".into(),
            vec!["paths".into(), "entry_home".into()],
            p.entry_home.clone(),
        ),
        (
            "git.root".into(),
            vec!["git".into(), "root".into()],
            raw.git.root.clone(),
        ),
    ];
    for server in raw.servers.keys().take(crate::core::bounds::MAX_SERVERS) {
        trees.push((
            format!("the instances of server `{server}`"),
            vec!["servers".into(), server.clone()],
            p.hhl_root.join(server),
        ));
    }
    for (i, (what_a, _, a)) in trees.iter().enumerate() {
        for (what_b, at_b, b) in &trees[i + 1..] {
            if paths::overlap(a, b) {
                let at: Vec<&str> = at_b.iter().map(String::as_str).collect();
                let how = if a == b { "is the same path as" } else { "overlaps" };
                errs.push(
                    src.diag(
                        &at,
                        format!("{what_b} ({}) {how} {what_a} ({})", b.display(), a.display()),
                    )
                    .hint("give each its own place: none may be inside another"),
                );
            }
        }
    }
}

/// Every value an instance's template may insert must be expressible in its file's
/// syntax; refused where it is written. `*_snippet` keys are raw text by design.
fn check_values(raw: &RawConfig, instances: &[Instance], src: &Source, errs: &mut Diagnostics) {
    let mut seen = std::collections::HashSet::new();
    for inst in instances {
        let group = match inst.kind {
            Kind::Openresty => raw.servers.get(&inst.server).map(|s| &s.values),
            Kind::Redis => raw.redis.as_ref().map(|r| &r.values),
        };
        let Some(group) = group else { continue };
        for owner in [MASTER, inst.developer.as_str()] {
            let Some(values) = group.get(owner) else { continue };
            for (key, v) in values {
                if !seen.insert((inst.kind, inst.server.as_str(), owner, key.as_str())) {
                    continue;
                }
                let mut at: Vec<String> = inst.origin.clone();
                at.extend(["values".to_string(), owner.to_string(), key.clone()]);
                if key.ends_with("_snippet") {
                    if !v.is_string() {
                        errs.push(
                            src.diag(
                                &at.iter().map(String::as_str).collect::<Vec<_>>(),
                                format!(
                                    "{}: `{key}` of `{owner}` is a raw snippet, so it must be a string",
                                    inst.origin.join(".")
                                ),
                            )
                            .hint("write the nginx text as a string (a YAML block `|` keeps lines)"),
                        );
                    }
                    continue;
                }
                check_value(inst.kind, v, &mut at, &mut |at, problem| {
                    if errs.is_full() {
                        return;
                    }
                    let file = match inst.kind {
                        Kind::Openresty => "nginx",
                        Kind::Redis => "Redis",
                    };
                    let key_path = at[inst.origin.len() + 2..].join(".");
                    errs.push(
                        src.diag(
                            &at.iter().map(String::as_str).collect::<Vec<_>>(),
                            format!("{}: value `{key_path}` of `{owner}` {problem}", inst.origin.join(".")),
                        )
                        .hint(format!(
                            "a {file} value cannot hold this safely; remove it, or use a `*_snippet` key for raw nginx text"
                        )),
                    );
                });
            }
        }
    }
}

fn check_value(kind: Kind, v: &Value, at: &mut Vec<String>, report: &mut dyn FnMut(&[String], String)) {
    match v {
        Value::String(s) => {
            let r = match kind {
                Kind::Openresty => escape::NginxToken::new(s).map(|_| ()),
                Kind::Redis => escape::RedisToken::new(s).map(|_| ()),
            };
            if let Err(e) = r {
                report(at, format!("`{}` {e}", crate::core::error::excerpt(s)));
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                at.push(i.to_string());
                check_value(kind, item, at, report);
                at.pop();
            }
        }
        Value::Object(m) => {
            for (k, item) in m {
                if let Err(e) = match kind {
                    Kind::Openresty => escape::NginxToken::new(k).map(|_| ()),
                    Kind::Redis => escape::RedisToken::new(k).map(|_| ()),
                } {
                    report(at, format!("has a key `{}` that {e}", crate::core::error::excerpt(k)));
                }
                at.push(k.clone());
                check_value(kind, item, at, report);
                at.pop();
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config;

    fn build_yaml(yaml: &str) -> Result<Model, Diagnostics> {
        let src = Source {
            path: "/etc/hhl/hhl.yaml".into(),
            text: yaml.into(),
        };
        let raw = config::parse(&src.path, &src.text).map_err(Diagnostics::from)?;
        build(&raw, &src, Flavor::Debian)
    }

    const BASE: &str = "\
developers: [dev1, dev2]
servers:
  socketserver:
    template: builtin:socketserver
    values:
      master: {port: 1080, workers: 1, name: base}
      dev1: {port: 1081, name: mine}
  httpserver:
    template: t/http.hbs
    shared: true
    values:
      master: {port: 1100}
redis:
  template: builtin:redis
  values:
    master: {port: 6379}
    dev1: {port: 6381}
    dev2: {port: 6382}
";

    #[test]
    fn overrides_merge_over_master() {
        let m = build_yaml(
            BASE.replace("dev2]", "dev2]\n")
                .as_str()
                .replace(
                    "      dev1: {port: 1081, name: mine}",
                    "      dev1: {port: 1081, name: mine}\n      dev2: {port: 1082}",
                )
                .as_str(),
        )
        .unwrap();
        let get = |name: &str| m.instances.iter().find(|i| i.name == name).unwrap();
        let dev1 = get("socketserver-dev1");
        assert_eq!(
            (dev1.port, dev1.values["name"].as_str(), dev1.values["workers"].as_u64()),
            (1081, Some("mine"), Some(1))
        );
        assert_eq!(get("socketserver-dev2").values["name"], "base");
        assert_eq!(
            get("socketserver-master").dir,
            PathBuf::from("/opt/hhl/socketserver/master")
        );
        assert_eq!(get("6381").config_path, PathBuf::from("/opt/redis/etc/6381.conf"));
        assert_eq!(get("6381").unit(), "redis@6381.service");
        assert_eq!(
            get("httpserver-master").template,
            TemplateRef::File("/etc/hhl/t/http.hbs".into())
        );
    }

    #[test]
    fn shared_server_has_one_instance() {
        let m = build_yaml(&BASE.replace(
            "      dev1: {port: 1081, name: mine}",
            "      dev1: {port: 1081}\n      dev2: {port: 1082}",
        ))
        .unwrap();
        let http: Vec<_> = m
            .instances
            .iter()
            .filter(|i| i.server == "httpserver")
            .map(|i| i.name.as_str())
            .collect();
        assert_eq!(http, ["httpserver-master"]);
        assert_eq!(m.instances.len(), 3 + 1 + 3);
    }

    #[test]
    fn a_developer_without_override_inherits_master_port_and_collides() {
        let e = build_yaml(BASE).unwrap_err();
        assert_eq!(e.0.len(), 1, "{e}");
        assert!(e.0[0].message.contains("port 1080 is used by both openresty@socketserver-master.service (servers.socketserver, master) and openresty@socketserver-dev2.service (servers.socketserver, developer dev2)"), "{e}");
    }

    #[test]
    fn reports_every_problem_at_once() {
        let yaml = BASE.replace("[dev1, dev2]", "[dev1, dev1, Bad]").replace("6382", "80");
        let e = build_yaml(&yaml).unwrap_err();
        let msgs: Vec<_> = e.0.iter().map(|d| d.message.as_str()).collect();
        assert!(msgs.iter().any(|m| m.contains("listed twice")), "{msgs:?}");
        assert!(msgs.iter().any(|m| m.contains("`Bad` contains `B`")), "{msgs:?}");
        assert!(
            msgs.iter()
                .any(|m| m.contains("values for `dev2`, who is not in `developers`")),
            "{msgs:?}"
        );
    }
}
