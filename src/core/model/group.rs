//! One server (or Redis) as hhl.yaml writes it: master's values plus per-owner
//! overrides, resolved into instances.

use super::{Instance, TemplateRef, PORT_MIN, SHARED_TEMPLATE_DIR};
use crate::core::config::{OwnerValues, Source, Values};
use crate::core::error::{Diagnostic, Diagnostics};
use crate::core::names::MASTER;

/// One server (or Redis) as written: master's values plus per-developer overrides.
pub(super) struct Group<'a> {
    pub(super) src: &'a Source,
    /// Key path of the group in hhl.yaml, e.g. `servers.socketserver`.
    pub(super) scope: Vec<&'a str>,
    pub(super) template: &'a str,
    pub(super) values: &'a OwnerValues,
    pub(super) shared: bool,
}

impl Group<'_> {
    fn diag(&self, rest: &[&str], message: String) -> Diagnostic {
        let path: Vec<&str> = self.scope.iter().chain(rest).copied().collect();
        self.src.diag(&path, format!("{}: {message}", self.scope.join(".")))
    }

    /// Merge master's values with each owner's overrides and build their instances.
    pub(super) fn resolve(
        &self,
        developers: &[String],
        errs: &mut Diagnostics,
        make: impl Fn(&str, u16, Values, TemplateRef) -> Instance,
    ) -> Vec<Instance> {
        if self.template.trim().is_empty() {
            errs.push(
                self.diag(&["template"], "template is empty".into())
                    .hint("name a template file relative to hhl.yaml, or `builtin:<name>`"),
            );
        } else if let Some(p) = TemplateRef::problem(self.template, self.src.dir()) {
            errs.push(self.diag(&["template"], p).hint(format!(
                "keep templates beside hhl.yaml (e.g. templates/x.conf.hbs), or copy one from {SHARED_TEMPLATE_DIR}"
            )));
            return Vec::new();
        }
        let Some(base) = self.values.get(MASTER) else {
            errs.push(
                self.diag(&["values"], "no `master` values".into()).hint(
                    "add `values: {master: {port: ...}}`: master's values are the base every developer overrides",
                ),
            );
            return Vec::new();
        };
        for owner in self.values.keys().filter(|k| k.as_str() != MASTER) {
            if !developers.iter().any(|d| d == owner) {
                errs.push(
                    self.diag(
                        &["values", owner],
                        format!("values for `{owner}`, who is not in `developers`"),
                    )
                    .hint(format!("add `{owner}` to `developers`, or remove these values")),
                );
            } else if self.shared {
                errs.push(
                    self.diag(
                        &["values", owner],
                        format!("server is shared, so it has no instance of `{owner}` to override"),
                    )
                    .hint("remove these values, or set `shared: false` to give every developer an instance"),
                );
            }
        }
        let owners: Vec<&str> = if self.shared {
            vec![MASTER]
        } else {
            std::iter::once(MASTER)
                .chain(developers.iter().map(String::as_str))
                .collect()
        };
        let template = TemplateRef::parse(self.template, self.src.dir());
        let mut out = Vec::new();
        for owner in owners {
            let own = self.values.get(owner).filter(|_| owner != MASTER);
            let mut merged = base.clone();
            merged.extend(own.cloned().unwrap_or_default());
            // Point at the value that set the port: the override, else master's.
            let port_from = if own.is_some_and(|v| v.contains_key("port")) {
                owner
            } else {
                MASTER
            };
            let port = match merged.get("port") {
                None => {
                    errs.push(
                        self.diag(&["values", MASTER], format!("`{owner}` has no `port`"))
                            .hint("set `port` in master's values or in this developer's"),
                    );
                    continue;
                }
                Some(v) => match v.as_u64() {
                    Some(p) if (PORT_MIN as u64..=65535).contains(&p) => p as u16,
                    _ => {
                        errs.push(
                            self.diag(
                                &["values", port_from, "port"],
                                format!("port {v} of `{owner}` is outside {PORT_MIN}-65535"),
                            )
                            .hint("use an unprivileged port number; ports below 1024 need root"),
                        );
                        continue;
                    }
                },
            };
            out.push(make(owner, port, merged, template.clone()));
        }
        out
    }
}
