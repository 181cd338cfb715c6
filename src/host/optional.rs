//! The recommended packages hhlctl works without, and what is lost without each: the
//! package recommends polkitd and rsyslog, so `apt-get install --no-install-recommends`
//! leaves them out. apply says so once, and the command a user meets the gap in says
//! why, instead of a bare refusal or a missing file.

use std::path::Path;

use crate::core::model::Model;

/// polkit's daemon (Debian's `polkitd`): without it the system bus refuses every
/// non-root systemd request, so developers cannot control their own instances.
pub fn polkit_installed() -> bool {
    ["/usr/lib/polkit-1/polkitd", "/usr/libexec/polkitd"]
        .iter()
        .any(|p| Path::new(p).exists())
}

/// rsyslog's daemon: it writes the per-developer log files that developers, who may
/// not read the system journal, read with `hhlctl logs`.
pub fn rsyslog_installed() -> bool {
    Path::new(RSYSLOGD).exists()
}

pub const RSYSLOGD: &str = "/usr/sbin/rsyslogd";

pub const NO_POLKIT: &str = "polkit is not installed on this host (Debian package polkitd), so systemd lets only root \
     start, stop, restart or reload units; developers cannot control their own instances";
pub const NO_RSYSLOG: &str = "rsyslog is not installed on this host (Debian package rsyslog), so there are no \
     per-developer log files; developers cannot read their logs with `hhlctl logs` (the log page, hhl-web, still works)";

/// Warn (stderr) about each missing recommended package, when it matters.
pub fn warn_missing(model: &Model) {
    if !polkit_installed() && !model.developers.is_empty() {
        eprintln!(
            "warning: {NO_POLKIT}\n  hint: `apt-get install polkitd` (the rules apply writes take effect at once)"
        );
    }
    if !rsyslog_installed() {
        eprintln!("warning: {NO_RSYSLOG}\n  hint: `apt-get install rsyslog`, then `hhlctl apply`");
    }
}
