//! `hhlctl import-legacy DIR --out OUT`

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::core::legacy::import::{self, File};
use crate::host::fsapply;
use crate::host::load;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The original serverctrl directory (nginx.<server>.templ.conf, *.sub.py, redis.*).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Where to write hhl.yaml and templates/; must not exist yet, or be empty.
    #[arg(long, short, value_name = "OUT")]
    pub out: PathBuf,
}

pub fn run(args: Args) -> Result<i32> {
    let mut files = Vec::new();
    for entry in fs::read_dir(&args.dir).with_context(|| format!("reading {}", args.dir.display()))? {
        let entry = entry?;
        let name = PathBuf::from(entry.file_name());
        let n = name.to_string_lossy();
        if n.ends_with(".templ.conf") || n.ends_with(".sub.py") {
            // Bounded, regular files only (a FIFO or /dev/zero must not hang the import).
            let bytes = load::read_bounded(&entry.path(), crate::core::bounds::MAX_LEGACY_BYTES)
                .with_context(|| format!("reading {}", entry.path().display()))?;
            let text = String::from_utf8(bytes).map_err(|e| {
                let pos = crate::core::error::pos_of_offset(e.as_bytes(), e.utf8_error().valid_up_to());
                anyhow::anyhow!(
                    "{}:{}:{}: not valid UTF-8; save it as UTF-8",
                    entry.path().display(),
                    pos.line,
                    pos.column
                )
            })?;
            files.push(File { name, text });
        }
    }
    let imported = import::import(&args.dir, &files)?;
    if fs::read_dir(&args.out).map(|mut d| d.next().is_some()).unwrap_or(false) {
        bail!(
            "{} is not empty; choose a new directory for the imported files",
            args.out.display()
        );
    }
    for f in &imported.files {
        fsapply::write_file(&args.out.join(&f.name), f.text.as_bytes(), 0o644)?;
    }
    // What we wrote must load and render like any hand-written hhl.yaml.
    let yaml = args.out.join("hhl.yaml");
    if let Err(e) = load::load(&yaml).and_then(|l| l.render().map_err(Into::into)) {
        remove_written(&args.out, &imported.files);
        return Err(e.context(format!(
            "the imported configuration does not validate; nothing was kept in {}",
            args.out.display()
        )));
    }
    for note in &imported.notes {
        println!("note: {note}");
    }
    println!(
        "imported {} files into {}; next: hhlctl -c {} plan",
        imported.files.len(),
        args.out.display(),
        yaml.display()
    );
    Ok(0)
}

fn remove_written(out: &Path, files: &[File]) {
    for f in files {
        let _ = fs::remove_file(out.join(&f.name));
    }
    let _ = fs::remove_dir(out.join("templates"));
    let _ = fs::remove_dir(out);
}
