//! What rendering produces: files, links and directories as data, at the absolute
//! paths they have on a host. Writers live in the shell (`fsapply`).

use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    File(Vec<u8>),
    /// A symbolic link pointing at this target.
    Symlink(PathBuf),
    /// A directory that must exist; never removed by hhlctl (it may hold data).
    Dir,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// Absolute path on the host.
    pub path: PathBuf,
    pub content: Content,
    pub mode: u32,
}

impl Artifact {
    pub fn file(path: impl Into<PathBuf>, bytes: impl Into<Vec<u8>>, mode: u32) -> Self {
        Artifact {
            path: path.into(),
            content: Content::File(bytes.into()),
            mode,
        }
    }
    pub fn symlink(path: impl Into<PathBuf>, target: impl Into<PathBuf>) -> Self {
        Artifact {
            path: path.into(),
            content: Content::Symlink(target.into()),
            mode: 0o777,
        }
    }
    pub fn dir(path: impl Into<PathBuf>, mode: u32) -> Self {
        Artifact {
            path: path.into(),
            content: Content::Dir,
            mode,
        }
    }
    pub fn is_dir(&self) -> bool {
        matches!(self.content, Content::Dir)
    }
}
