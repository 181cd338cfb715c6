//! Logs developers can read without the journal: these rsyslog rules write each
//! instance's lines to `<log_dir>/<owner>/<instance>.log`, readable by the owner's
//! group only. Pure: the rules and directories as data.
//!
//! Routed by the journal's `_SYSTEMD_UNIT`, which journald derives from the sender's
//! cgroup (a process cannot choose it), read with rsyslog's imjournal. Not by the
//! syslog tag: any process can say `logger -t socketserver-dev2`. The other trusted
//! field, the sender's uid that journald passes on its syslog forward, is only
//! visible with imuxsock's `SysSock.ParseTrusted`, which Debian 12's rsyslog.conf
//! does not set and a drop-in cannot set (the module is loaded there without it).

use std::path::{Path, PathBuf};

use crate::core::artifact::{generated_header, Artifact, Owner};
use crate::core::escape::{RainerString, Unsafe};
use crate::core::model::{Instance, Model};

/// rsyslog matches on `$programname`, which is the unit's SyslogIdentifier.
pub fn log_file(model: &Model, inst: &Instance) -> PathBuf {
    model
        .paths
        .log_dir
        .join(&inst.developer)
        .join(format!("{}.log", inst.syslog_identifier()))
}

/// RainerScript string literal; control characters refused.
fn quoted(s: &str) -> Result<String, Unsafe> {
    RainerString::new(s).map(|q| q.as_str().to_string())
}

pub fn rules(model: &Model, source: &Path) -> Result<String, Unsafe> {
    let mut s = generated_header(source, None);
    s += "# Each hhl instance's lines, by the unit the journal saw send them (_SYSTEMD_UNIT,\n";
    s += "# from the sender's cgroup: not forgeable), into its owner's log file. imjournal\n";
    s += "# has no ruleset of its own here: its copies of every journal line stop below.\n";
    s += "# From the journal, so lines logged while rsyslog was down are caught up.\n";
    s += "module(load=\"imjournal\" StateFile=\"hhl-imjournal.state\" IgnorePreviousMessages=\"off\"\n";
    s += "       Ratelimit.Interval=\"0\")\n";
    s += "template(name=\"hhl\" type=\"string\"\n";
    s += "         string=\"%timereported:::date-rfc3339% %syslogseverity-text% %syslogtag%%msg:::sp-if-no-1st-sp%%msg:::drop-last-lf%\\n\")\n";
    s += "if $inputname == \"imjournal\" then {\n";
    for inst in &model.instances {
        let file = log_file(model, inst);
        let group = &inst.user;
        s += &format!(
            "    if $!_SYSTEMD_UNIT == {unit} then {{\n        action(type=\"omfile\" file={file} template=\"hhl\"\n               fileOwner=\"root\" fileGroup={group} fileCreateMode=\"0640\"\n               dirOwner=\"root\" dirGroup={group} dirCreateMode=\"0750\")\n    }}\n",
            unit = quoted(&inst.unit())?,
            file = quoted(&file.display().to_string())?,
            group = quoted(group)?,
        );
    }
    s += "    stop\n}\n";
    s += "# The syslog forward's copies of the instances' lines stay out of /var/log/syslog\n";
    s += "# (the tag decides only that: a forged tag hides a line from it, routes nothing).\n";
    for inst in &model.instances {
        s += &format!(
            "if $programname == {id} then stop\n",
            id = quoted(&inst.syslog_identifier())?
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
