//! The Debian package: `deploy/debian/build-package` (cargo-deb, Cargo.toml
//! `[package.metadata.deb]`) run around the binary under test, and what the package holds.
//! Where cargo-deb is not installed the test says so and checks nothing, but under CI=true,
//! which installs it (`.ci/run`), it fails.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

fn cargo_deb_installed() -> bool {
    Command::new("cargo")
        .args(["deb", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn show(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run");
    assert!(out.status.success(), "{cmd:?}: {}", show(&out));
    out
}

/// What `popsel ARGS` prints, if it succeeds.
fn popsel_prints(args: &[&str]) -> Option<Vec<u8>> {
    let out = Command::new(env!("CARGO_BIN_EXE_popsel"))
        .args(args)
        .output()
        .ok()?;
    (out.status.success() && !out.stdout.is_empty()).then_some(out.stdout)
}

/// The binary under test, without its debug info when `strip` is there (a package of the
/// whole debug build takes minutes to compress).
fn binary_to_pack(dir: &Path) -> std::path::PathBuf {
    let binary = dir.join("popsel");
    let stripped = Command::new("strip")
        .arg("-o")
        .arg(&binary)
        .arg(env!("CARGO_BIN_EXE_popsel"))
        .status()
        .is_ok_and(|s| s.success());
    if !stripped {
        std::fs::copy(env!("CARGO_BIN_EXE_popsel"), &binary).expect("copy the binary");
    }
    binary
}

#[test]
fn the_debian_package_holds_the_binary_unit_config_man_page_and_completions() {
    let available =
        if cargo_deb_installed() {
            Ok(())
        } else {
            Err("cargo-deb is not installed (cargo install cargo-deb --locked): the package is not \
             built here"
            .to_owned())
        };
    if !crate::support::can_run_privileged(available) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("target");
    let binary = binary_to_pack(dir.path());
    let out = Command::new("deploy/debian/build-package")
        .arg("--target-dir")
        .arg(&target)
        .arg("--binary")
        .arg(&binary)
        .args(["--", "--fast"])
        .output()
        .expect("run build-package");
    let debs: Vec<_> = std::fs::read_dir(target.join("debian"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();

    let Some(man_page) = popsel_prints(&["man"]) else {
        // This popsel cannot make its man page: no package, and the script says why.
        assert!(!out.status.success(), "{}", show(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("`popsel man` did not print popsel.1"),
            "{}",
            show(&out)
        );
        assert!(debs.is_empty(), "a package without a man page: {debs:?}");
        eprintln!("this popsel has no `man` command: build-package refuses to make the package");
        return;
    };
    assert!(out.status.success(), "{}", show(&out));
    let [deb] = debs.as_slice() else {
        panic!("one package, not {debs:?}");
    };
    check_listing(deb);
    check_files(deb, dir.path(), &binary, &man_page);
}

/// `dpkg-deb -c`: every file where Debian looks for it, with its mode.
fn check_listing(deb: &Path) {
    let listing = run(Command::new("dpkg-deb").arg("-c").arg(deb));
    let modes: BTreeMap<String, String> = String::from_utf8_lossy(&listing.stdout)
        .lines()
        .filter_map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            Some((fields.last()?.to_string(), fields.first()?.to_string()))
        })
        .collect();
    let unit = [
        "./usr/lib/systemd/system/popsel.service",
        "./lib/systemd/system/popsel.service",
    ]
    .into_iter()
    .find(|p| modes.contains_key(*p))
    .unwrap_or_else(|| panic!("no popsel.service in {modes:#?}"));
    for (path, mode) in [
        ("./usr/bin/popsel", "-rwxr-xr-x"),
        ("./etc/popsel/popsel.toml", "-rw-r--r--"),
        ("./usr/share/man/man1/popsel.1", "-rw-r--r--"),
        (
            "./usr/share/bash-completion/completions/popsel",
            "-rw-r--r--",
        ),
        ("./usr/share/zsh/vendor-completions/_popsel", "-rw-r--r--"),
        (
            "./usr/share/fish/vendor_completions.d/popsel.fish",
            "-rw-r--r--",
        ),
        ("./usr/share/doc/popsel/before-253.conf", "-rw-r--r--"),
        (unit, "-rw-r--r--"),
    ] {
        assert_eq!(
            modes.get(path).map(String::as_str),
            Some(mode),
            "{path} in {modes:#?}"
        );
    }
}

/// The files themselves, and the maintainer scripts.
fn check_files(deb: &Path, dir: &Path, binary: &Path, man_page: &[u8]) {
    let root = dir.join("root");
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&root));
    let read = |p: &str| std::fs::read(root.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    let unit = std::fs::read(root.join("usr/lib/systemd/system/popsel.service"))
        .or_else(|_| std::fs::read(root.join("lib/systemd/system/popsel.service")))
        .expect("the unit");
    assert_eq!(
        unit,
        std::fs::read("deploy/systemd/popsel.service").unwrap()
    );
    assert_eq!(
        read("etc/popsel/popsel.toml"),
        std::fs::read("config/popsel.example.toml").unwrap()
    );
    assert_eq!(read("usr/bin/popsel"), std::fs::read(binary).unwrap());
    assert_eq!(read("usr/share/man/man1/popsel.1"), man_page);
    for (shell, path) in [
        ("bash", "usr/share/bash-completion/completions/popsel"),
        ("zsh", "usr/share/zsh/vendor-completions/_popsel"),
        ("fish", "usr/share/fish/vendor_completions.d/popsel.fish"),
    ] {
        assert_eq!(
            Some(read(path)),
            popsel_prints(&["completions", shell]),
            "{shell}"
        );
    }

    let control = dir.join("control");
    run(Command::new("dpkg-deb").arg("-e").arg(deb).arg(&control));
    let conffiles = std::fs::read_to_string(control.join("conffiles")).expect("conffiles");
    assert!(
        conffiles.lines().any(|l| l == "/etc/popsel/popsel.toml"),
        "{conffiles}"
    );
    let postinst = std::fs::read_to_string(control.join("postinst")).expect("postinst");
    // The credentials directory the unit loads, root's only; the unit neither enabled nor
    // started before the config has a token.
    assert!(
        postinst.contains("install -d -m 0700 -o root -g root /etc/popsel/credentials"),
        "{postinst}"
    );
    assert!(!postinst.contains("deb-systemd-invoke start"), "{postinst}");
}
