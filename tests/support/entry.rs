//! The developers' only door, for tests: keys made inside the container, hhl.yaml's
//! `keys:` for them, sshd running, and each identity's clones made with real `git`
//! over real `ssh hhl@127.0.0.1`.

use super::container::Container;
use super::Run;

/// Make an ed25519 key for each of `ids` (in /root/keys) and return the `keys:`
/// block that declares them.
pub fn keys_yaml(c: &Container, ids: &[&str]) -> String {
    let mut keys = String::from("keys:\n");
    for id in ids {
        c.ok(&format!(
            "mkdir -p /root/keys && ssh-keygen -q -t ed25519 -N '' -C {id}@pc -f /root/keys/{id}"
        ));
        let public = c.ok(&format!("cat /root/keys/{id}.pub"));
        keys.push_str(&format!("  {id}: [\"{}\"]\n", public.trim()));
    }
    keys
}

/// Start the container's sshd (host keys made first).
pub fn start_sshd(c: &Container) {
    c.ok("ssh-keygen -A && systemctl start ssh.service && systemctl is-active ssh.service");
}

/// The ssh client command line for `id`'s key.
pub fn ssh_cmd(id: &str) -> String {
    format!("ssh -i /root/keys/{id} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR")
}

/// `ssh hhl@server <command>` as `id`.
pub fn ssh(c: &Container, id: &str, command: &str) -> Run {
    c.sh(&format!("{} hhl@127.0.0.1 {command}", ssh_cmd(id)))
}

/// In `id`'s clone of `repo` (/root/<id>/<repo>, cloned over ssh on first use): run
/// `script`, stderr folded into stdout (git's `remote:` lines are on stderr).
pub fn in_clone(c: &Container, id: &str, repo: &str, script: &str) -> Run {
    c.sh(&format!(
        "mkdir -p /root/{id} && cd /root/{id} && git config --global --add safe.directory '*' && \
         {{ [ -d {repo} ] || git -c user.name=x clone -q --config user.name={id} --config user.email={id}@pc \
         --config core.sshCommand='{}' hhl@127.0.0.1:{repo} 2>&1; }} && cd {repo} && {{ {script}; }} 2>&1",
        ssh_cmd(id)
    ))
}

/// In `id`'s clone of socketserver: make `main.lua` say `text`, commit, and push to
/// `branch` with push options `opts` (`-o restart`, or none).
pub fn push_lua(c: &Container, id: &str, branch: &str, text: &str, opts: &str) -> Run {
    in_clone(
        c,
        id,
        "socketserver",
        &format!(
            "printf 'ngx.say(\"{text}\")\\n' > main.lua && git add -A && git commit -qm '{text}' && git push {opts} origin HEAD:{branch}"
        ),
    )
}
