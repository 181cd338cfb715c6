//! Which build this is: the package version (Cargo.toml, the .deb's version) and the
//! commit it was built from, which `scripts/build-deb.sh` passes in `HHL_COMMIT`.

/// The package version, as in the .deb (`0.2.0` → `0.2.0-1`).
pub const PACKAGE: &str = env!("CARGO_PKG_VERSION");

/// The commit `scripts/build-deb.sh` built (12 hex digits, `-modified` when the
/// tree had uncommitted changes), or None for a build outside it.
pub const COMMIT: Option<&str> = option_env!("HHL_COMMIT");

/// What `hhlctl --version` prints after the program's name.
pub fn long() -> String {
    describe(PACKAGE, COMMIT)
}

fn describe(package: &str, commit: Option<&str>) -> String {
    match commit.filter(|c| !c.is_empty()) {
        Some(c) => format!("{package} (commit {c})"),
        None => format!("{package} (commit unknown: built without scripts/build-deb.sh, or outside a git checkout)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_commit_or_says_it_is_unknown() {
        assert_eq!(describe("0.2.0", Some("0123456789ab")), "0.2.0 (commit 0123456789ab)");
        assert_eq!(
            describe("0.2.0", Some("")),
            "0.2.0 (commit unknown: built without scripts/build-deb.sh, or outside a git checkout)"
        );
        assert!(describe("0.2.0", None).starts_with("0.2.0 (commit unknown: "));
    }
}
