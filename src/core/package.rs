//! The package's own names: the units it installs beside the instance templates, the
//! fixed paths those units and the commands share, and the variable that carries who
//! is acting. Every layer names them from here, so none has to import another layer
//! for a constant.

/// The default hhl.yaml (`--config` / `HHL_CONFIG` override it).
pub const DEFAULT_CONFIG: &str = "/etc/hhl/hhl.yaml";

/// The unit that applies serverctrl's master as root; admins may start it (polkit).
pub const APPLY_UNIT: &str = "hhl-apply.service";
/// Where that unit writes its output.
pub const APPLY_LOG: &str = "/run/hhl-apply.log";
/// The serverctrl commit the last apply took, in `state_dir`.
pub const APPLIED_COMMIT: &str = "serverctrl.applied";

/// The unit that runs `hhlctl plan` as root for the console's admin view.
pub const PLAN_UNIT: &str = "hhl-plan.service";
/// Where hhl-plan.service writes what `hhlctl plan` printed.
pub const PLAN_LOG: &str = "/run/hhl-plan.log";

/// The log page and console.
pub const WEB_UNIT: &str = "hhl-web.service";
/// Its password file (`hhlctl web passwd`).
pub const WEB_PASSWD: &str = "/etc/hhl/web.passwd";
/// The key that signs its sign-in links.
pub const WEB_KEY: &str = "/etc/hhl/web.key";
/// The page's public address (one line, e.g. `https://logs.example.org`), for links.
pub const WEB_URL_FILE: &str = "/etc/hhl/web.url";

/// The variable `hhlctl ssh` sets for the git hooks it starts: who is pushing. sshd
/// passes no client environment through a forced command (`restrict`, and
/// PermitUserEnvironment is off by default), so only hhlctl sets it.
pub const IDENTITY_ENV: &str = "HHL_IDENTITY";

/// Set by `hhlctl ssh` for the hooks of a push the primary passed on (several hosts):
/// the primary, which holds every branch, already asked which objects the pusher may
/// name; this host holds only its own owners' branches and would misjudge it.
pub const FORWARDED_ENV: &str = "HHL_FORWARDED";

/// The file `hhlctl ssh` gives a push's post-receive hook (in this variable) to note how
/// it ended: `git push` ignores that hook's exit code, and takes hhlctl ssh's.
pub const PUSH_REPORT_ENV: &str = "HHL_PUSH_REPORT";
