//! Which paths hhlctl could ever have generated under a given `paths:` layout. The
//! manifest of generated files (`generated.list`) is only trusted within this: a line
//! naming anything else (a damaged or doctored list) is never removed. Pure.

use std::path::{Component, Path};

use crate::core::config::RawPaths;
use crate::core::names;
use crate::core::units::DROPIN_NAME;

/// Whether `path` is a file or link the layout `paths` could have generated: an
/// instance's config or `src` link, a Redis config, a drop-in, slice or `.wants` link of
/// an hhl unit, the shared library's link, the polkit and rsyslog rules, or the entry
/// account's authorized_keys, the primary's pinned host keys of the other hosts.
pub fn generatable(paths: &RawPaths, path: &Path) -> bool {
    if !plain_absolute(path) {
        return false;
    }
    if [&paths.polkit_rules, &paths.rsyslog_conf, &paths.lua_lib_dir]
        .iter()
        .any(|p| path == p.as_path())
        || path == crate::core::authorized_keys::path_under(&paths.entry_home)
        || path == crate::core::peers::known_hosts_under(&paths.state_dir)
    {
        return true;
    }
    let (Some(parent), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return false;
    };
    let unit_dir = paths.unit_dir.as_path();
    if parent == unit_dir {
        return name
            .strip_prefix("hhl-")
            .and_then(|n| n.strip_suffix(".slice"))
            .is_some_and(is_name);
    }
    if parent == unit_dir.join("hhl.target.wants") {
        return is_unit(name);
    }
    if name == DROPIN_NAME && parent.parent() == Some(unit_dir) {
        return parent
            .file_name()
            .and_then(|d| d.to_str())
            .and_then(|d| d.strip_suffix(".d"))
            .is_some_and(is_unit);
    }
    if parent == paths.redis_conf_dir {
        return name.strip_suffix(".conf").is_some_and(is_port);
    }
    // <hhl_root>/<server>/<developer>/src and …/conf/nginx.conf
    if let Ok(rest) = path.strip_prefix(&paths.hhl_root) {
        let parts: Vec<&str> = rest.iter().filter_map(|c| c.to_str()).collect();
        return match parts.as_slice() {
            [server, dev, "src"] | [server, dev, "conf", "nginx.conf"] => is_name(server) && is_name(dev),
            _ => false,
        };
    }
    false
}

/// Absolute, with no `.`, `..` or empty parts: what hhlctl itself writes.
fn plain_absolute(path: &Path) -> bool {
    let text = path.as_os_str().to_string_lossy();
    path.is_absolute()
        && !text.contains("//")
        && !text.ends_with('/')
        && path.components().skip(1).all(|c| matches!(c, Component::Normal(_)))
}

/// A server or developer name (`master` included).
fn is_name(s: &str) -> bool {
    s == names::MASTER || names::server_problem(s).is_none()
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit())
}

/// `openresty@<server>-<developer>.service` or `redis@<port>.service`.
fn is_unit(name: &str) -> bool {
    if let Some(i) = name.strip_prefix("openresty@").and_then(|n| n.strip_suffix(".service")) {
        return i.split_once('-').is_some_and(|(s, d)| is_name(s) && is_name(d));
    }
    name.strip_prefix("redis@")
        .and_then(|n| n.strip_suffix(".service"))
        .is_some_and(is_port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_layout_can_generate() {
        let p = RawPaths::default();
        for yes in [
            "/opt/hhl/socketserver/dev1/conf/nginx.conf",
            "/opt/hhl/httpserver/master/src",
            "/opt/hhl/lib",
            "/opt/redis/etc/6381.conf",
            "/etc/systemd/system/hhl-dev1.slice",
            "/etc/systemd/system/hhl.target.wants/redis@6381.service",
            "/etc/systemd/system/openresty@socketserver-dev1.service.d/50-hhl.conf",
            "/etc/polkit-1/rules.d/50-hhl.rules",
            "/etc/rsyslog.d/40-hhl.conf",
            "/var/lib/hhl-entry/.ssh/authorized_keys",
            "/var/lib/hhl/peer/known_hosts",
        ] {
            assert!(generatable(&p, Path::new(yes)), "{yes}");
        }
        for no in [
            "/etc/passwd",
            "/",
            "relative/path",
            "/opt/hhl",
            "/opt/hhl/socketserver/dev1",
            "/opt/hhl/socketserver/dev1/conf",
            "/opt/hhl/socketserver/dev1/app/current",
            "/opt/hhl/../../etc/passwd",
            "/opt/hhl/socketserver/../dev1/src",
            "/opt/hhl/socketserver/dev1/conf/nginx.conf/",
            "/opt/redis/etc/redis.conf",
            "/etc/systemd/system/sshd.service",
            "/etc/systemd/system/hhl.target.wants/ssh.service",
            "/etc/systemd/system/ssh.service.d/50-hhl.conf",
            "/etc/systemd/system/hhl-dev1.slice.d/50-hhl.conf",
            "/etc/systemd/system/openresty@socketserver.service.d/50-hhl.conf",
            "/etc/polkit-1/rules.d/49-other.rules",
        ] {
            assert!(!generatable(&p, Path::new(no)), "{no}");
        }
    }
}
