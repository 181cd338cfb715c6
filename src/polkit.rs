//! The polkit rule that lets developers control their own units without sudo. systemd
//! asks polkit (`org.freedesktop.systemd1.manage-units`, with the `unit` and `verb`
//! details) before it starts, stops, restarts or reloads a unit for a non-root caller;
//! the rule answers yes for the unit's owner and for admins. Pure: rule text as data.

use std::collections::BTreeMap;
use std::path::Path;

use crate::artifact::{generated_header, Artifact};
use crate::model::Model;
use crate::reconcile::TARGET;

/// What a developer may do to their own units. Not `kill`, `set-property` (which
/// could lift their limits) or `clean`.
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

pub fn rules(model: &Model, source: &Path) -> String {
    let owners: BTreeMap<String, &str> = model.instances.iter().map(|i| (i.unit(), i.user.as_str())).collect();
    let header = generated_header(source, None);
    format!(
        "//{header_rest}\
// Unix users may start, stop, restart and reload the hhl units they own; admins may do
// so to every hhl unit (and {TARGET}), and start hhl-apply.service. Everything else
// is left to other rules.
polkit.addRule(function(action, subject) {{
    if (action.id != \"org.freedesktop.systemd1.manage-units\") {{
        return polkit.Result.NOT_HANDLED;
    }}
    var owners = {owners};
    var admins = {admins};
    var verbs = {verbs};
    var unit = action.lookup(\"unit\");
    var verb = action.lookup(\"verb\");
    var ours = Object.prototype.hasOwnProperty.call(owners, unit);
    // A push to serverctrl: apply as root, for admins only.
    if (unit == {apply} && verb == \"start\" && admins.indexOf(subject.user) >= 0) {{
        return polkit.Result.YES;
    }}
    if ((!ours && unit != {target}) || verbs.indexOf(verb) < 0) {{
        return polkit.Result.NOT_HANDLED;
    }}
    if (admins.indexOf(subject.user) >= 0 || (ours && owners[unit] == subject.user)) {{
        return polkit.Result.YES;
    }}
    return polkit.Result.NOT_HANDLED;
}});
",
        header_rest = header.trim_start_matches('#'),
        owners = js(&owners),
        admins = js(&model.access.admins),
        verbs = js(&VERBS),
        target = js(TARGET),
        apply = js(crate::cmd::hook::APPLY_UNIT),
    )
}

/// Pretty JSON is valid JavaScript, with every string safely quoted (`JsValue`).
fn js<T: serde::Serialize + ?Sized>(v: &T) -> String {
    crate::escape::JsValue::new(v).as_str().replace('\n', "\n    ")
}

pub fn artifact(model: &Model, source: &Path) -> Option<Artifact> {
    (!model.instances.is_empty()).then(|| Artifact::file(&model.paths.polkit_rules, rules(model, source), 0o644))
}
