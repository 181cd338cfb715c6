//! hhl.yaml as written: raw serde structs that refuse unknown keys. `model` turns this
//! into the resolved, validated instance set.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::core::error::{Diagnostic, Pos};

/// Template values: scalars (or anything JSON can hold) by name.
pub type Values = BTreeMap<String, serde_json::Value>;
/// Values by owner (`master`, then developers), in file order.
pub type OwnerValues = IndexMap<String, Values>;

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Developer names; `master` is implicit.
    #[serde(deserialize_with = "crate::core::strict::names")]
    pub developers: Vec<String>,
    #[serde(default)]
    pub paths: RawPaths,
    #[serde(default)]
    pub nginx: RawNginx,
    /// OpenResty logic servers by name.
    #[serde(deserialize_with = "crate::core::strict::servers")]
    pub servers: IndexMap<String, RawServer>,
    pub redis: Option<RawRedis>,
    /// Who runs and who may control the instances.
    #[serde(default, skip_serializing_if = "RawUsers::is_default")]
    pub users: RawUsers,
    /// Resource limits of each owner's slice: `master:` is the base, developers override.
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        deserialize_with = "crate::core::strict::map"
    )]
    pub limits: IndexMap<String, RawLimits>,
    /// Where the git repositories developers push to live.
    #[serde(default, skip_serializing_if = "RawGit::is_default")]
    pub git: RawGit,
    /// Identity (a developer or an admin) → their OpenSSH public keys: how they reach
    /// the server (`ssh <users.entry>@server`), with no unix account of their own.
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        deserialize_with = "crate::core::strict::map"
    )]
    pub keys: IndexMap<String, Vec<String>>,
    /// The console (hhl-web.service).
    #[serde(default, skip_serializing_if = "RawWeb::is_default")]
    pub web: RawWeb,
    /// The hosts that run instances (one is the primary); none: this host alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<RawHost>,
    /// Owner → the host its instances and Redis run on (default: the primary).
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        deserialize_with = "crate::core::strict::map"
    )]
    pub placement: IndexMap<String, String>,
}

/// One host of several (`hosts:`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawHost {
    /// A short name (`hhl2`): what `placement:`, status and messages call it.
    pub name: String,
    /// The IP address the primary reaches it at (and, for the primary, the one its
    /// peer key may come from).
    pub address: String,
    /// The host's ssh host public key (`/etc/ssh/ssh_host_ed25519_key.pub` on it):
    /// pinned, never learnt on first use; it is also how a host knows its own entry.
    pub host_key: String,
    /// The one host that takes pushes and applies, and talks to the others.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub primary: bool,
    /// The primary's only: the public half of its peer key (`hhlctl hosts key` on it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_key: Option<String>,
}

/// The console's settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawWeb {
    /// Addresses of the reverse proxies in front of the console (e.g. `127.0.0.1`
    /// for one on this host): only from them is `X-Forwarded-For` believed, its last
    /// address being the client's (for sign-in throttling). Empty: nobody's.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<String>,
}

impl RawWeb {
    fn is_default(&self) -> bool {
        *self == RawWeb::default()
    }
}

/// The bare repositories: `<root>/<server>.git` per logic server, `serverctrl.git`
/// (hhl.yaml and templates) and `lualib.git` (the shared Lua library).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawGit {
    pub root: PathBuf,
    /// Releases kept per instance, for `hhlctl rollback`.
    pub keep: usize,
    /// The largest object (file) a push may contain, in bytes (K, M, G suffixes).
    pub max_object_size: String,
    /// The largest push (its pack), in bytes (K, M, G suffixes).
    pub max_push_size: String,
    /// The most files the tree that deploys may hold (each kept release is one such
    /// tree on disk).
    pub max_files: usize,
    /// The largest tree that deploys, unpacked: the sum of its files' sizes.
    pub max_unpacked_size: String,
    /// The most a developer's branch may hold in git beyond master (its history,
    /// compressed as git stores it).
    pub max_branch_size: String,
    /// The most the kept releases of one deploy target (an instance's, the Lua
    /// library's) may take together; older ones beyond it are pruned, though never
    /// the live release and the one before it.
    pub max_releases_size: String,
}

impl RawGit {
    fn is_default(&self) -> bool {
        *self == RawGit::default()
    }
}

impl Default for RawGit {
    fn default() -> Self {
        RawGit {
            root: "/srv/git".into(),
            keep: 5,
            max_object_size: "10M".into(),
            max_push_size: "100M".into(),
            max_files: 10_000,
            max_unpacked_size: "100M".into(),
            max_branch_size: "200M".into(),
            max_releases_size: "300M".into(),
        }
    }
}

/// Unix accounts: one system user per owner runs that owner's instances (no login);
/// one entry account is where every identity's ssh key lands.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawUsers {
    /// `hhlctl apply` creates unix users that are missing (`useradd --system`).
    pub create: bool,
    /// The system user master's (and shared servers') instances run as.
    pub master: String,
    /// The one ssh entry account: owns the repositories and releases; its
    /// authorized_keys runs `hhlctl ssh <identity>` for every key in `keys:`.
    pub entry: String,
    /// Identities (names in `keys:`) who may do everything through ssh.
    pub admins: Vec<String>,
    /// Developer → the system user their instances run as (default: `hhl-<developer>`).
    #[serde(deserialize_with = "crate::core::strict::map")]
    pub map: IndexMap<String, String>,
    /// 0.1.0's login shell of the developers' own accounts: read, ignored, and warned
    /// about (`core::migrate`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shell: Option<String>,
}

impl RawUsers {
    fn is_default(&self) -> bool {
        *self == RawUsers::default()
    }
}

impl Default for RawUsers {
    fn default() -> Self {
        RawUsers {
            create: true,
            master: "hhl-master".into(),
            entry: "hhl".into(),
            admins: Vec::new(),
            map: IndexMap::new(),
            shell: None,
        }
    }
}

/// Limits of one owner's slice (`hhl-<owner>.slice`), in systemd's units.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// MemoryMax: bytes with K/M/G/T, a percentage of RAM, or `infinity`.
    pub memory: Option<String>,
    /// CPUQuota: a percentage of one CPU (`150%` is one and a half).
    pub cpu: Option<String>,
    /// TasksMax: processes and threads, or `infinity`.
    pub tasks: Option<serde_json::Value>,
    /// The size of each of an instance's private scratch file systems (nginx's `temp/`,
    /// `/tmp`, `/var/tmp`): bytes with K, M or G. Default 64M.
    pub disk: Option<String>,
    /// The owner's Redis `maxmemory` (its data, hence its data directory's RDB and AOF
    /// files, are bounded by it): bytes with K, M or G. Default 512M.
    pub redis: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// `builtin:<name>` or a path relative to hhl.yaml's directory.
    pub template: String,
    /// One instance (master's) serves every developer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
    /// `master:` base values, then per-developer overrides.
    #[serde(deserialize_with = "crate::core::strict::owner_values")]
    pub values: OwnerValues,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawRedis {
    pub template: String,
    #[serde(deserialize_with = "crate::core::strict::owner_values")]
    pub values: OwnerValues,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawPaths {
    /// `<hhl_root>/<server>/<developer>/{conf,logs,src}`
    pub hhl_root: PathBuf,
    /// `<redis_conf_dir>/<port>.conf`
    pub redis_conf_dir: PathBuf,
    /// `<redis_data_dir>/<port>/`
    pub redis_data_dir: PathBuf,
    /// Lua code shared by every instance; on every `lua_package_path`.
    pub lua_lib_dir: PathBuf,
    /// Where generated drop-ins, slices and `.wants` links go.
    pub unit_dir: PathBuf,
    /// hhlctl's own records (the manifest of generated files).
    pub state_dir: PathBuf,
    /// The polkit rule that lets developers control their own units.
    pub polkit_rules: PathBuf,
    /// `<log_dir>/<owner>/<instance>.log`, written by rsyslog.
    pub log_dir: PathBuf,
    /// The rsyslog rules that route each instance's lines to its file.
    pub rsyslog_conf: PathBuf,
    /// Home of the ssh entry account (users.entry): root-owned, holds
    /// `.ssh/authorized_keys` that `hhlctl apply` writes.
    pub entry_home: PathBuf,
}

impl RawPaths {
    /// Every path, with its key under `paths:` in hhl.yaml.
    pub fn named_mut(&mut self) -> [(&'static str, &mut PathBuf); 10] {
        [
            ("hhl_root", &mut self.hhl_root),
            ("redis_conf_dir", &mut self.redis_conf_dir),
            ("redis_data_dir", &mut self.redis_data_dir),
            ("lua_lib_dir", &mut self.lua_lib_dir),
            ("unit_dir", &mut self.unit_dir),
            ("state_dir", &mut self.state_dir),
            ("polkit_rules", &mut self.polkit_rules),
            ("log_dir", &mut self.log_dir),
            ("rsyslog_conf", &mut self.rsyslog_conf),
            ("entry_home", &mut self.entry_home),
        ]
    }
}

impl Default for RawPaths {
    fn default() -> Self {
        RawPaths {
            hhl_root: "/opt/hhl".into(),
            redis_conf_dir: "/opt/redis/etc".into(),
            redis_data_dir: "/opt/redis/var".into(),
            lua_lib_dir: "/opt/hhl/lib".into(),
            unit_dir: "/etc/systemd/system".into(),
            state_dir: "/var/lib/hhl".into(),
            polkit_rules: "/etc/polkit-1/rules.d/50-hhl.rules".into(),
            log_dir: "/var/log/hhl".into(),
            rsyslog_conf: "/etc/rsyslog.d/40-hhl.conf".into(),
            entry_home: "/var/lib/hhl-entry".into(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawNginx {
    #[serde(default)]
    pub flavor: FlavorChoice,
}

/// Which nginx runs the Lua servers.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FlavorChoice {
    /// Detect what is installed (OpenResty first, then Debian's nginx + Lua module).
    #[default]
    Auto,
    Debian,
    Openresty,
}

/// The text of hhl.yaml and where it came from, for messages that point into it.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: PathBuf,
    pub text: String,
}

impl Source {
    /// A diagnostic pointing at `key_path` (or its deepest existing prefix).
    pub fn diag(&self, key_path: &[&str], message: impl Into<String>) -> Diagnostic {
        let pos = crate::core::locate::locate(&self.text, key_path);
        Diagnostic::new(&self.path, message).at(&self.text, pos)
    }

    /// The directory relative template paths are resolved against.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }
}

/// The text of hhl.yaml from its bytes: invalid UTF-8 is refused at its line and column.
pub fn text_of(file: &Path, bytes: Vec<u8>) -> Result<String, Diagnostic> {
    String::from_utf8(bytes).map_err(|e| {
        let bytes = e.as_bytes();
        let offset = e.utf8_error().valid_up_to();
        let pos = crate::core::error::pos_of_offset(bytes, offset);
        let text = String::from_utf8_lossy(bytes);
        Diagnostic::new(file, format!("{} is not valid UTF-8 (byte {offset})", file.display()))
            .at(&text, Some(pos))
            .hint("save the file as UTF-8")
    })
}

/// Parse hhl.yaml text; `file` is only for messages. A linear pre-scan refuses what is
/// too large or deep, tags and extra documents before the parser runs.
pub fn parse(file: &Path, text: &str) -> Result<RawConfig, Diagnostic> {
    let scan = crate::core::bounds::scan_yaml(text).map_err(|(pos, msg, hint)| {
        Diagnostic::new(file, format!("invalid hhl.yaml: {msg}"))
            .at(text, Some(pos))
            .hint(hint)
    })?;
    serde_norway::from_str(text).map_err(|e| {
        let mut pos = e.location().map(|l| Pos {
            line: l.line(),
            column: l.column(),
        });
        let mut msg = crate::core::strict::strip_position(&e.to_string());
        if let Some((tail, rest)) = crate::core::strict::take_marker(&msg) {
            // `servers.socketserver.values: …`: the field path, then our key path below it.
            let (field, rest) = rest.split_once(": ").unwrap_or(("", rest.as_str()));
            let mut path: Vec<String> = field
                .split(['.', '['])
                .map(|s| s.trim_end_matches(']').to_string())
                .filter(|s| !s.is_empty())
                .collect();
            let mut tail = tail.into_iter().peekable();
            if path.last().is_some_and(|l| tail.peek() == Some(l)) {
                tail.next();
            }
            path.extend(tail);
            let keys: Vec<&str> = path.iter().map(String::as_str).collect();
            pos = crate::core::locate::locate(text, &keys).or(pos);
            msg = format!("{}: {rest}", path.join("."));
        } else if msg.contains("repetition limit exceeded") || msg.contains("recursion limit exceeded") {
            pos = scan.first_alias.or(pos);
            msg = format!("{msg}: YAML aliases expand to too much");
        }
        let hint = if msg.contains("written twice") {
            "each key may appear once in a mapping; remove one"
        } else if msg.contains("null") {
            "write a value, or \"\" for an empty string"
        } else if msg.contains("aliases") {
            "write the values out instead of nesting aliases (`*name`)"
        } else if msg.contains("more than") || msg.contains("the limit") {
            "hhl.yaml has limits far above a real setup; this looks like a mistake"
        } else if msg.contains("unknown field") {
            "remove the key or fix its spelling; `hhlctl --help` lists where the schema is documented"
        } else if msg.contains("missing field") {
            "add the key; see examples/hhl.yaml for a complete file"
        } else if msg.contains("duplicate") {
            "each key may appear once in a mapping"
        } else if msg.contains("invalid type") || msg.contains("unknown variant") {
            "see examples/hhl.yaml for the expected shape"
        } else {
            "fix the YAML syntax at this position"
        };
        Diagnostic::new(file, format!("invalid hhl.yaml: {msg}"))
            .at(text, pos)
            .hint(hint)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_names_key_and_position() {
        let text = "developers: []\nservers: {}\nservrs: {}\n";
        let d = parse(Path::new("h.yaml"), text).unwrap_err();
        assert!(d.message.contains("unknown field `servrs`"), "{}", d.message);
        assert_eq!(d.pos, Some(Pos { line: 3, column: 1 }));
    }

    #[test]
    fn syntax_error_has_position() {
        let d = parse(Path::new("h.yaml"), "developers: [dev1\nservers: {}\n").unwrap_err();
        assert!(d.pos.is_some());
        assert!(d.to_string().contains("h.yaml:"), "{d}");
    }

    #[test]
    fn paths_default_to_original_layout() {
        let c = parse(Path::new("h.yaml"), "developers: []\nservers: {}\n").unwrap();
        assert_eq!(c.paths.hhl_root, PathBuf::from("/opt/hhl"));
        assert_eq!(c.paths.redis_conf_dir, PathBuf::from("/opt/redis/etc"));
        assert_eq!(c.nginx.flavor, FlavorChoice::Auto);
    }
}
