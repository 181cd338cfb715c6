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
    format!(
        "//{header_rest}\
// Only the ssh entry account ({entry}) may start, stop, restart and reload the hhl
// units (and {TARGET}), signal the OpenResty units (a deploy's reload is a SIGHUP), and
// start hhl-apply.service and {PLAN_UNIT}: `hhlctl ssh`
// and the console authorize every identity first. Root needs no rule; everybody else is left to other rules.
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
    return polkit.Result.NOT_HANDLED;
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

/// Pretty JSON is valid JavaScript, with every string safely quoted (`JsValue`).
fn js<T: serde::Serialize + ?Sized>(v: &T) -> String {
    crate::core::escape::JsValue::new(v).as_str().replace('\n', "\n    ")
}

pub fn artifact(model: &Model, source: &Path) -> Option<Artifact> {
    (!model.instances.is_empty()).then(|| Artifact::file(&model.paths.polkit_rules, rules(model, source), 0o644))
}
