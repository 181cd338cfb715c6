//! Logs developers can read without the journal: journald forwards every line to
//! syslog (Debian's default; the package's journald drop-in makes sure), and these
//! rsyslog rules write each instance's lines to `<log_dir>/<owner>/<instance>.log`,
//! readable by the owner's group only. Pure: the rules and directories as data.

use std::path::{Path, PathBuf};

use crate::artifact::{generated_header, Artifact, Owner};
use crate::escape::{RainerString, Unsafe};
use crate::model::{Instance, Model};
use crate::units::syslog_identifier;

/// rsyslog matches on `$programname`, which is the unit's SyslogIdentifier.
pub fn log_file(model: &Model, inst: &Instance) -> PathBuf {
    model
        .paths
        .log_dir
        .join(&inst.developer)
        .join(format!("{}.log", syslog_identifier(inst)))
}

/// RainerScript string literal; control characters refused.
fn quoted(s: &str) -> Result<String, Unsafe> {
    RainerString::new(s).map(|q| q.as_str().to_string())
}

pub fn rules(model: &Model, source: &Path) -> Result<String, Unsafe> {
    let mut s = generated_header(source, None);
    s += "# Each hhl instance's lines, by their syslog identifier, into its owner's log file;\n";
    s += "# `stop` keeps them out of the shared /var/log/syslog.\n";
    s += "template(name=\"hhl\" type=\"string\"\n";
    s += "         string=\"%timereported:::date-rfc3339% %syslogseverity-text% %syslogtag%%msg:::sp-if-no-1st-sp%%msg:::drop-last-lf%\\n\")\n";
    for inst in &model.instances {
        let file = log_file(model, inst);
        let group = &inst.user;
        s += &format!(
            "if $programname == {id} then {{\n    action(type=\"omfile\" file={file} template=\"hhl\"\n           fileOwner=\"root\" fileGroup={group} fileCreateMode=\"0640\"\n           dirOwner=\"root\" dirGroup={group} dirCreateMode=\"0750\")\n    stop\n}}\n",
            id = quoted(&syslog_identifier(inst))?,
            file = quoted(&file.display().to_string())?,
            group = quoted(group)?,
        );
    }
    Ok(s)
}

pub fn artifacts(model: &Model, source: &Path) -> Result<Vec<Artifact>, Unsafe> {
    if model.instances.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = vec![
        Artifact::file(&model.paths.rsyslog_conf, rules(model, source)?, 0o644),
        Artifact::dir(&model.paths.log_dir, 0o755),
    ];
    for owner in model.owners() {
        if let Some(inst) = model.instances.iter().find(|i| i.developer == owner) {
            out.push(Artifact::dir(model.paths.log_dir.join(owner), 0o750).owned(Owner::ReadBy(inst.user.clone())));
        }
    }
    Ok(out)
}
