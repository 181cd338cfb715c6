//! The resolved, validated instance set: every developer's (and master's) OpenResty
//! and Redis instances with their ports, paths and merged values.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::core::config::{RawConfig, RawPaths, Source, Values};
use crate::core::error::Diagnostics;
use crate::core::kind::Kind;
use crate::core::names::{self, MASTER};
use access::Access;

pub mod access;
mod checks;
mod group;
pub mod hosts;

use checks::{check_git, check_log_identifiers, check_paths, check_ports, check_values, check_web};
use group::Group;

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
    /// The log identifier: `socketserver-dev1`, `redis-dev1`.
    pub fn syslog_identifier(&self) -> String {
        format!("{}-{}", self.server, self.developer)
    }

    pub fn unit(&self) -> String {
        crate::core::systemd_types::instance_unit(self.kind, &self.name)
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
    pub git: Git,
    /// The console's trusted proxies (`web.trusted_proxies`), checked.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Several hosts and who runs where; `None`: this host alone.
    pub hosts: Option<hosts::Hosts>,
    /// With several hosts, the one this model is for (`on_host`): `instances` are then
    /// only those placed here.
    pub here: Option<String>,
    /// Every instance's name and owner, on every host (to route a request by name).
    pub everywhere: Vec<(String, String)>,
}

/// `git:` as the rest of hhlctl uses it: sizes already in bytes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Git {
    pub root: PathBuf,
    /// Releases kept per instance.
    pub keep: usize,
    /// The largest object a push may bring, bytes.
    pub max_object_size: u64,
    /// The largest push (its pack), bytes.
    pub max_push_size: u64,
    /// The most files the tree that deploys may hold.
    pub max_files: usize,
    /// The largest tree that deploys, its files' sizes added up, bytes.
    pub max_unpacked_size: u64,
    /// The most history a branch may hold beyond master, bytes as git stores it.
    pub max_branch_size: u64,
    /// The most the kept releases of one deploy target may take together, bytes.
    pub max_releases_size: u64,
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

    /// The same config as host `name` applies it: only the instances placed there.
    pub fn on_host(&self, name: &str) -> Model {
        let mut m = self.clone();
        m.everywhere = self
            .instances
            .iter()
            .map(|i| (i.name.clone(), i.developer.clone()))
            .collect();
        if let Some(h) = &self.hosts {
            m.instances.retain(|i| h.host_of(&i.developer) == name);
        }
        m.here = Some(name.to_string());
        m
    }

    /// The host `owner` runs on, when it is not this one (`None`: here, or one host).
    pub fn elsewhere(&self, owner: &str) -> Option<&hosts::HostSpec> {
        let (h, here) = (self.hosts.as_ref()?, self.here.as_deref()?);
        let at = h.host_of(owner);
        (at != here).then(|| h.get(at)).flatten()
    }

    /// The owner of the instance called `name` on any host.
    pub fn owner_of(&self, name: &str) -> Option<&str> {
        self.instances
            .iter()
            .find(|i| i.name == name)
            .map(|i| i.developer.as_str())
            .or_else(|| self.everywhere.iter().find(|(n, _)| n == name).map(|(_, o)| o.as_str()))
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
    let git = check_git(&raw.git, src, &mut errs);
    let trusted_proxies = check_web(&raw.web, src, &mut errs);
    let access = access::resolve(raw, &developers, src, &mut errs);
    let hosts = hosts::resolve(raw, &developers, src, &mut errs);

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
    check_log_identifiers(&instances, src, &mut errs);
    check_values(raw, &instances, src, &mut errs);
    errs.into_result(Model {
        developers,
        paths: raw.paths.clone(),
        flavor,
        instances,
        access,
        git,
        trusted_proxies,
        hosts,
        here: None,
        everywhere: Vec::new(),
    })
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
