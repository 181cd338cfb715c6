//! The .deb in a fresh real-systemd container: install, apply the shipped example,
//! every instance healthy; remove, install again; purge leaves none of hhlctl's
//! generated files and nothing else is touched. `scripts/test.sh` builds the package
//! (scripts/build-deb.sh) and names it in HHL_DEB.

mod support;

use support::container::Container;

fn deb() -> String {
    let deb =
        std::env::var("HHL_DEB").expect("HHL_DEB must name the .deb: run `bash scripts/test.sh`, which builds it");
    assert!(std::path::Path::new(&deb).is_file(), "HHL_DEB={deb} does not exist");
    std::fs::canonicalize(deb).unwrap().display().to_string()
}

const APT: &str = "DEBIAN_FRONTEND=noninteractive apt-get -y -q --no-install-recommends -o Dpkg::Use-Pty=0";

#[test]
fn install_apply_remove_reinstall_purge() {
    let deb = deb();
    let c = Container::boot_bare();
    // This machine's image carries Docker's policy-rc.d (exit 101), which forbids
    // maintainer scripts to start or stop anything; a Debian host has none.
    c.ok("rm -f /usr/sbin/policy-rc.d");
    c.ok(&format!("{APT} install {deb}"));
    assert_eq!(c.ok("command -v hhlctl").trim(), "/usr/bin/hhlctl");
    assert_eq!(c.ok("systemctl is-enabled hhl.target").trim(), "enabled");
    // Nothing runs until the first apply.
    assert_eq!(
        c.ok("systemctl list-units --no-legend --plain 'openresty@*' 'redis@*' | wc -l")
            .trim(),
        "0"
    );
    assert!(c.ok("man -w hhlctl").contains("hhlctl.1.gz"));
    assert!(c.ok("man -w hhlctl-apply").contains("hhlctl-apply.1.gz"));
    c.ok("test -s /usr/share/bash-completion/completions/hhlctl && test -s /usr/share/zsh/vendor-completions/_hhlctl");
    c.ok("test -s /usr/share/hhl/lua/hhl/log.lua && test -s /usr/lib/systemd/journald.conf.d/50-hhl.conf");
    c.ok("logrotate --debug /etc/logrotate.d/hhl 2>&1 | grep -q 'rotating pattern: /var/log/hhl/\\*/\\*.log'");
    c.ok("systemctl cat hhl-web.service hhl-apply.service >/dev/null");

    let r = c.sh("hhlctl apply");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let status = c.sh("hhlctl status");
    assert_eq!(status.code, 0, "{}\n{}", status.stdout, status.stderr);
    assert_eq!(
        status.stdout.lines().filter(|l| l.contains("active/running")).count(),
        16,
        "{}",
        status.stdout
    );
    // With the man page installed, verify in full.
    let verify = c.sh("systemd-analyze verify openresty@socketserver-dev1.service redis@6381.service hhl.target 2>&1");
    assert_eq!((verify.code, verify.stdout.as_str()), (0, ""));

    // A developer's own files, which purge must leave alone.
    c.ok("echo 'ngx.say(1)' > /opt/hhl/socketserver/dev1/src/main.lua");
    let generated = c.ok("grep '^/' /var/lib/hhl/generated.list");
    // 16 configs, drop-ins and links; 5 slices; the polkit and rsyslog rules; 11 `src`
    // links and the library's (no authorized_keys: the example declares no keys).
    assert_eq!(generated.lines().count(), 16 + 16 + 16 + 5 + 2 + 11 + 1, "{generated}");

    c.ok(&format!("{APT} remove hhlctl"));
    assert_eq!(
        c.ok("systemctl list-units --no-legend --plain --state=active 'openresty@*' 'redis@*' | wc -l")
            .trim(),
        "0",
        "remove must stop every instance"
    );
    assert!(c.sh("command -v hhlctl").code != 0);
    c.ok("test -f /etc/hhl/hhl.yaml"); // a conffile stays until purge

    c.ok(&format!("{APT} install {deb}"));
    let r = c.sh("hhlctl apply");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(c.sh("hhlctl status").code, 0);

    c.ok(&format!("{APT} purge hhlctl"));
    for f in generated.lines() {
        assert!(
            c.sh(&format!("test -e '{f}' || test -L '{f}'")).code != 0,
            "purge left {f}"
        );
    }
    c.ok(
        "test ! -e /var/lib/hhl && test ! -e /etc/hhl/hhl.yaml && test ! -e /usr/lib/systemd/system/openresty@.service",
    );
    // `src` was generated (a link); the release it led to is the developer's.
    assert_eq!(
        c.ok("cat /opt/hhl/socketserver/dev1/app/current/main.lua"),
        "ngx.say(1)\n"
    );
    assert_eq!(
        c.ok("systemctl list-units --no-legend --plain --state=active 'openresty@*' 'redis@*' | wc -l")
            .trim(),
        "0"
    );
}
