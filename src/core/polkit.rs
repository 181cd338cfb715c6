//! The polkit rule that lets the ssh entry account control the hhl units. systemd asks
//! polkit (`org.freedesktop.systemd1.manage-units`, with the `unit` and `verb`
//! details) before it starts, stops, restarts or reloads a unit for a non-root caller;
//! the rule answers yes for the entry account only (which serves every identity after
//! `access::may`). Developers have no unix account and reach no D-Bus, so the job
//! mode (which polkit cannot see) is always hhlctl's `replace`. Pure: rule text as data.

use std::path::Path;

use crate::core::artifact::{generated_header, Artifact};
use crate::core::model::Model;
use crate::core::reconcile::TARGET;

/// What the entry account may do to hhl units. Not `set-property` (which could lift
/// their limits) or `clean`; `kill` only on OpenResty units (`SIGNALLED`).
pub const VERBS: [&str; 8] = [
    "start",
    "stop",
    "restart",
    "reload",
    "try-restart",
    "reload-or-restart",
    "reload-or-try-restart",
    "reset-failed",
];

/// A deploy reloads nginx by SIGHUP to its master (`KillUnit`, verb `kill`): no
/// sandboxed ExecReload to set up. polkit sees the unit and the verb, not the signal,
/// so the entry account may send any signal to OpenResty units; that is no more than
/// it may already do (stop or restart them), and only hhlctl runs as it.
pub const SIGNAL_VERB: &str = "kill";

use crate::core::package::PLAN_UNIT;

pub fn rules(model: &Model, source: &Path) -> String {
    let units: Vec<String> = model.instances.iter().map(|i| i.unit()).collect();
    let signalled: Vec<String> = model
        .instances
        .iter()
        .filter(|i| i.kind == crate::core::kind::Kind::Openresty)
        .map(|i| i.unit())
        .collect();
    let header = generated_header(source, None);
    let moves = move_units(model);
    // Only on hosts that take or give out an owner's Redis data for the primary.
    let (moves_comment, moves_rule) = if moves.is_empty() {
        (String::new(), String::new())
    } else {
        (
            "\n// On this host of several, it may also start the root oneshots that copy an owner's\n\
// Redis data out and in when the primary moves that owner (`hhlctl move`)."
                .to_string(),
            format!(
                "    var moves = {};\n    if (moves.indexOf(unit) >= 0 && verb == \"start\") {{\n        return polkit.Result.YES;\n    }}\n",
                js(&moves)
            ),
        )
    };
    format!(
        "//{header_rest}\
// Only the ssh entry account ({entry}) may start, stop, restart and reload the hhl
// units (and {TARGET}), signal the OpenResty units (a deploy's reload is a SIGHUP), and
// start hhl-apply.service and {PLAN_UNIT}: `hhlctl ssh`
// and the console authorize every identity first. Root needs no rule; everybody else is left to other rules.{moves_comment}
polkit.addRule(function(action, subject) {{
    if (action.id != \"org.freedesktop.systemd1.manage-units\" || subject.user != {entry_js}) {{
        return polkit.Result.NOT_HANDLED;
    }}
    var units = {units};
    var verbs = {verbs};
    var signalled = {signalled};
    var unit = action.lookup(\"unit\");
    var verb = action.lookup(\"verb\");
    if ((unit == {apply} || unit == {plan}) && verb == \"start\") {{
        return polkit.Result.YES;
    }}
    if ((units.indexOf(unit) >= 0 || unit == {target}) && verbs.indexOf(verb) >= 0) {{
        return polkit.Result.YES;
    }}
    if (verb == {signal_verb} && signalled.indexOf(unit) >= 0) {{
        return polkit.Result.YES;
    }}
{moves_rule}    return polkit.Result.NOT_HANDLED;
}});
",
        header_rest = header.trim_start_matches('#'),
        entry = crate::core::escape::comment(&model.access.entry),
        entry_js = js(&model.access.entry),
        units = js(&units),
        verbs = js(&VERBS),
        signalled = js(&signalled),
        signal_verb = js(SIGNAL_VERB),
        target = js(TARGET),
        apply = js(crate::core::package::APPLY_UNIT),
        plan = js(PLAN_UNIT),
    )
}

/// On a host of several other than the primary: `hhl-redis-export@<owner>.service` and
/// `hhl-redis-import@<owner>.service` of every owner (any may move here or away).
pub fn move_units(model: &Model) -> Vec<String> {
    let (Some(hosts), Some(here)) = (&model.hosts, model.here.as_deref()) else {
        return Vec::new();
    };
    if hosts.primary().name == here {
        return Vec::new();
    }
    model
        .owners()
        .flat_map(|o| {
            [
                crate::core::redis_bundle::export_unit(o),
                crate::core::redis_bundle::import_unit(o),
            ]
        })
        .collect()
}

/// Pretty JSON is valid JavaScript, with every string safely quoted (`JsValue`).
fn js<T: serde::Serialize + ?Sized>(v: &T) -> String {
    crate::core::escape::JsValue::new(v).as_str().replace('\n', "\n    ")
}

pub fn artifact(model: &Model, source: &Path) -> Option<Artifact> {
    // A host of several with no owner placed yet still takes one in (`move`).
    (!model.instances.is_empty() || !move_units(model).is_empty())
        .then(|| Artifact::file(&model.paths.polkit_rules, rules(model, source), 0o644))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::{self, Source};
    use crate::core::model::{build, Flavor};

    const KEY1: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
    const KEY2: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE3tAiQRWbVwJs7Ch/kZ3tC9NP1RZDG0R4flYXaHk9Nb";

    fn on(here: Option<&str>) -> Model {
        let hosts = format!(
            "hosts:\n  - name: hhl1\n    address: 10.0.0.1\n    host_key: {KEY1}\n    primary: true\n    peer_key: {KEY2}\n  - name: hhl2\n    address: 10.0.0.2\n    host_key: {KEY2}\nplacement:\n  dev1: hhl1\n"
        );
        let text = format!(
            "developers: [dev1]\nservers:\n  socketserver:\n    template: builtin:socketserver\n    values:\n      master: {{port: 1080}}\n      dev1: {{port: 1081}}\n{}",
            if here.is_some() { hosts.as_str() } else { "" }
        );
        let src = Source {
            path: "/etc/hhl/hhl.yaml".into(),
            text: text.clone(),
        };
        let m = build(&config::parse(&src.path, &text).unwrap(), &src, Flavor::Debian).unwrap();
        match here {
            Some(h) => m.on_host(h),
            None => m,
        }
    }

    /// A host of several but the primary lets the entry account start the move's root
    /// oneshots (start only); the primary and a lone host do not mention them.
    #[test]
    fn the_move_units_are_for_the_hosts_the_primary_moves_owners_between() {
        let other = on(Some("hhl2"));
        assert!(other.instances.is_empty(), "everyone is on hhl1");
        let file = artifact(&other, Path::new("/etc/hhl/hhl.yaml")).expect("written with no instance here");
        let crate::core::artifact::Content::File(text) = &file.content else {
            panic!("a file")
        };
        let text = String::from_utf8_lossy(text);
        assert!(text.contains("\"hhl-redis-export@dev1.service\""), "{text}");
        assert!(text.contains("\"hhl-redis-import@master.service\""), "{text}");
        assert!(
            text.contains("if (moves.indexOf(unit) >= 0 && verb == \"start\") {"),
            "{text}"
        );
        for m in [on(Some("hhl1")), on(None)] {
            assert!(move_units(&m).is_empty());
            assert!(!rules(&m, Path::new("/etc/hhl/hhl.yaml")).contains("moves"));
        }
    }
}
