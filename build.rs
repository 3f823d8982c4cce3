//! Records the source revision for `popsel_build_info` (git, when building from a checkout).

fn main() {
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-env-changed=POPSEL_REVISION");
    if std::env::var("POPSEL_REVISION").is_ok() {
        return;
    }
    let revision = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    if let Some(revision) = revision {
        println!("cargo:rustc-env=POPSEL_REVISION={revision}");
    }
}
