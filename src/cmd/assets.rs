//! `hhlctl generate-assets DIR` (hidden): the man page and shell completions, made
//! from the clap definition for packaging.

use std::fs;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap_complete::Shell;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to write hhlctl.1 and the completions.
    pub dir: PathBuf,
}

/// `cli` is the whole command line (`cli::Arguments`), handed in by its parser.
pub fn run(args: Args, cli: clap::Command) -> Result<i32> {
    fs::create_dir_all(&args.dir).with_context(|| format!("creating {}", args.dir.display()))?;
    let cmd = cli;
    let mut pages = vec!["hhlctl.1".to_string()];
    let mut man = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut man)?;
    fs::write(args.dir.join("hhlctl.1"), man)?;
    // One page per subcommand, as git does: `man hhlctl-apply`.
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("hhlctl-{}", sub.get_name());
        let mut page = Vec::new();
        clap_mangen::Man::new(
            sub.clone()
                .name(name.clone())
                .bin_name(format!("hhlctl {}", sub.get_name())),
        )
        .render(&mut page)?;
        fs::write(args.dir.join(format!("{name}.1")), page)?;
        pages.push(format!("{name}.1"));
    }
    for (shell, file) in [
        (Shell::Bash, "hhlctl.bash"),
        (Shell::Zsh, "_hhlctl"),
        (Shell::Fish, "hhlctl.fish"),
    ] {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), "hhlctl", &mut out);
        fs::write(args.dir.join(file), out)?;
    }
    println!(
        "wrote {} and hhlctl.bash, _hhlctl, hhlctl.fish into {}",
        pages.join(", "),
        args.dir.display()
    );
    Ok(0)
}
