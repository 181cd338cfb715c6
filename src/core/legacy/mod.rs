//! The original serverctrl repository: `$NAME` templates plus Python-dict value files.
//! `import` turns them into hhl.yaml and handlebars templates.

pub mod import;
pub mod pydict;
