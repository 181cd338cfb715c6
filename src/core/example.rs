//! The shipped example game (`examples/src`), built into the binary: `hhlctl repo
//! init` commits it to master's branch of every logic server repository it creates,
//! so a fresh server serves code, and each developer's branch starts from it. Pure.

/// The files, by path inside the tree, in the order git's tree wants (sorted).
pub const GAME: &[(&str, &str)] = &[
    ("game/rooms.lua", include_str!("../../examples/src/game/rooms.lua")),
    ("game/session.lua", include_str!("../../examples/src/game/session.lua")),
    ("game/version.lua", include_str!("../../examples/src/game/version.lua")),
    ("main.lua", include_str!("../../examples/src/main.lua")),
];

/// The seed commit's message.
pub const MESSAGE: &str = "the example game, as shipped with hhlctl (`hhlctl repo init`)\n\n\
A starting point: replace it with your own code and push to master (admins) or to\n\
your own branch.\n";

/// The seed commit's author and committer date: fixed, so that every host of several
/// seeds the very same commit, and a developer's branch made from the primary's master
/// is one its own host already holds the history of (a push passed on to that host is
/// otherwise refused there for naming objects of a master it never saw).
pub const DATE: &str = "1767225600 +0000";

#[cfg(test)]
mod tests {
    /// Every file of examples/src is here: a new one added there must be added here.
    #[test]
    fn every_example_file_is_built_in() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/src");
        let mut on_disk = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    on_disk.push(p.strip_prefix(&root).unwrap().display().to_string());
                }
            }
        }
        on_disk.sort();
        let built_in: Vec<&str> = super::GAME.iter().map(|(p, _)| *p).collect();
        assert_eq!(on_disk, built_in);
    }
}
