//! `hhlctl web serve` (what hhl-web.service runs), `hhlctl web passwd USER` and
//! `hhlctl web link IDENTITY`.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::core::systemd_types::JobKind;
use crate::host::fsapply;
use crate::host::load;
use crate::host::systemd::Systemd;
use crate::web::{self, auth};

use crate::core::package::{WEB_PASSWD as PASSWD, WEB_UNIT as UNIT};

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Serve the log page (hhl-web.service runs this).
    Serve {
        /// Address and port to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// The password file (`user:<argon2id hash>` lines); without it, links only.
        #[arg(long)]
        passwd: Option<PathBuf>,
        /// The key sign-in links are signed with (`hhlctl web link` makes it).
        #[arg(long)]
        key: Option<PathBuf>,
        /// The page's public address, as browsers see it (for links, the Origin check,
        /// and `Secure` cookies when https). Default: the line in /etc/hhl/web.url.
        #[arg(long)]
        public_url: Option<String>,
    },
    /// Print a one-time sign-in link for IDENTITY (a developer or an admin), good for
    /// five minutes (root, or the ssh entry account for `ssh … web`).
    Link { identity: String },
    /// Set USER's password for the log page, read from standard input (root only).
    ///
    /// USER is an identity: a developer or an admin (a name in hhl.yaml's `keys:`, not
    /// a unix user). Only a salted argon2id hash is
    /// stored. hhl-web.service is restarted to pick it up.
    #[command(after_help = "Example:\n  printf '%s\\n' 'their password' | hhlctl web passwd dev1")]
    Passwd {
        /// A developer or an admin (an identity in hhl.yaml's `keys:`).
        user: String,
        /// The password file to update (0600, root).
        #[arg(long, default_value = PASSWD)]
        passwd: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

pub fn run(config: &Path, args: Args) -> Result<i32> {
    let loaded = load::load(config)?;
    match args.action {
        Action::Serve {
            listen,
            passwd,
            key,
            public_url,
        } => {
            let public_url = public_url.unwrap_or_else(crate::ops::web_link::public_url);
            web::serve(
                loaded.model,
                web::Config {
                    listen,
                    passwd,
                    key,
                    public_url,
                },
            )?;
            Ok(0)
        }
        Action::Link { identity } => {
            let model = &loaded.model;
            if !model.developers.contains(&identity) && !model.access.admins.contains(&identity) {
                bail!(
                    "`{identity}` is not a developer or an admin in {}: no sign-in link",
                    config.display()
                );
            }
            ensure_passwd(Path::new(PASSWD))?;
            println!("{}", crate::ops::web_link::issue(&identity)?);
            Ok(0)
        }
        Action::Passwd { user, passwd } => {
            let model = &loaded.model;
            let known = model.access.admins.contains(&user) || model.developers.contains(&user);
            if !known {
                bail!(
                    "`{user}` owns no instance and is not an admin in {}; the log page is for identities: names in `developers` and users.admins",
                    config.display()
                );
            }
            let mut password = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut password)
                .context("reading the password")?;
            let password = password.trim_end_matches(['\n', '\r']);
            if password.chars().count() < 8 {
                bail!("the password is shorter than 8 characters");
            }
            let text = match std::fs::read_to_string(&passwd) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
                Err(e) => return Err(e).with_context(|| format!("reading {}", passwd.display())),
            };
            let updated = auth::set(&text, &user, &auth::hash(password)?)?;
            fsapply::write_file(&passwd, updated.as_bytes(), 0o600)?;
            println!("password of {user} set in {}", passwd.display());
            crate::host::secrets::ensure_link_key(Path::new(crate::core::package::WEB_KEY))?;
            if let Ok(systemd) = Systemd::connect() {
                if systemd
                    .active_states(&[UNIT.to_string()])?
                    .get(UNIT)
                    .is_some_and(|s| s.is_active())
                {
                    systemd.run_jobs(&[(UNIT.to_string(), JobKind::Restart)])?;
                    println!("restarted {UNIT}");
                }
            }
            Ok(0)
        }
    }
}

/// hhl-web.service loads the password file as a credential: it must exist, even empty
/// (sign-in by link only).
pub fn ensure_passwd(path: &Path) -> Result<()> {
    if !path.exists() {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let text = "# hhlctl web passwd USER adds lines here; empty: sign-in by link only\n";
        fsapply::write_file(path, text.as_bytes(), 0o600)?;
    }
    Ok(())
}
