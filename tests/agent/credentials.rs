//! Secrets as systemd credentials: `token_file` and `psk_file` written `credential:NAME` are
//! read from `$CREDENTIALS_DIRECTORY/NAME`, the copies systemd makes for the service
//! (`LoadCredential=`; the only way a service running as `DynamicUser` reads a secret only root
//! may read), and never shown. A relative path still means a file next to the config.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use popsel::sim::Sim;

use crate::emulator::tunnel_id;
use crate::support::site::{self, CHICAGO, CHICAGO_1, CHICAGO_2, SiteDir, SiteToml};
use crate::support::{self, TOKEN, api::assert_no_secrets, assert_exit, show, toml_str};

const PSK_ENV: &str = "POPSEL_CREDENTIALS_TEST_PSK_1";
const PSK_1: &str = "credentials-Chicago-one-41d2";
/// The secondary's PSK, as a credential.
const PSK_2: &str = "credentials-Chicago-two-9a7e";
/// A decoy next to the config under the credential's name: never to be read.
const DECOY: &str = "decoy-next-to-the-config-55";

const TOKEN_CREDENTIAL: &str = "popsel_api-token";
const PSK_CREDENTIAL: &str = "popsel_chicago-2.psk";

/// The demo site's "chicago", the token and the secondary's PSK as credentials, the credentials
/// directory as systemd makes it (files mode 400), and decoys next to the config.
fn site_with_credentials(sim: &Sim) -> (SiteDir, std::path::PathBuf) {
    let mut files = SiteDir::new();
    files.set_env(PSK_ENV, PSK_1);
    let creds = files.path("credentials");
    std::fs::create_dir(&creds).expect("mkdir");
    for (name, secret) in [(TOKEN_CREDENTIAL, TOKEN), (PSK_CREDENTIAL, PSK_2)] {
        let path = creds.join(name);
        std::fs::write(&path, format!("{secret}\n")).expect("write the credential");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).expect("chmod");
        files.write_psk_file(&format!("credential:{name}"), DECOY);
        files.write_psk_file(name, DECOY);
    }
    let config = site::config(&sim.url())
        .only(CHICAGO)
        .psk_env(CHICAGO_1, PSK_ENV)
        .psk_file(CHICAGO_2, &format!("credential:{PSK_CREDENTIAL}"))
        .with(&format!(
            "[api]\ntoken_file = {}\n",
            toml_str(&format!("credential:{TOKEN_CREDENTIAL}"))
        ));
    files.write_config(&config);
    (files, creds)
}

/// `popsel apply` on `files`, the token from nowhere but the config, with `credentials` as
/// `$CREDENTIALS_DIRECTORY` (unset when `None`).
fn apply(files: &SiteDir, credentials: Option<&Path>) -> Command {
    let mut cmd = files.command("apply", &["--yes", "--no-probe", "--no-dns"]);
    cmd.env_remove("POPSEL_API_TOKEN")
        .env_remove("CREDENTIALS_DIRECTORY");
    if let Some(dir) = credentials {
        cmd.env("CREDENTIALS_DIRECTORY", dir);
    }
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_and_a_psk_come_from_credentials_and_never_show() {
    let sim = support::start_sim(support::no_faults()).await;
    let (files, creds) = site_with_credentials(&sim);

    let out = support::run(apply(&files, Some(&creds))).await;
    assert_exit(&out, 0);
    let id = tunnel_id(&sim, CHICAGO_2);
    assert!(
        sim.with_store(|s| s.tunnel_psk_is(&id, PSK_2))
            .expect("the tunnel exists"),
        "the secondary's PSK is not the credential's"
    );
    let id = tunnel_id(&sim, CHICAGO_1);
    assert!(
        sim.with_store(|s| s.tunnel_psk_is(&id, PSK_1))
            .expect("exists")
    );
    let output = format!("{}{}", support::stdout(&out), support::stderr(&out));
    assert_no_secrets(&output, &[PSK_1, PSK_2, DECOY]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_that_are_not_there_are_named_with_the_fix_and_nothing_is_read_elsewhere() {
    let sim = support::start_sim(support::no_faults()).await;
    let (files, creds) = site_with_credentials(&sim);

    // Outside a unit: no $CREDENTIALS_DIRECTORY. Both keys are named, nothing is called.
    let out = support::run(apply(&files, None)).await;
    assert_exit(&out, 1);
    let stderr = support::stderr(&out);
    for part in [
        "api.token_file: names the systemd credential \"popsel_api-token\"",
        "locations[0].tunnels[1].psk_file: names the systemd credential \"popsel_chicago-2.psk\"",
        "$CREDENTIALS_DIRECTORY is not set",
        "LoadCredential=",
    ] {
        assert!(stderr.contains(part), "{part:?} not in:\n{}", show(&out));
    }
    assert!(support::tunnel_names(&sim).is_empty());
    assert_no_secrets(&stderr, &[PSK_1, PSK_2, DECOY]);

    // The unit loads the token but not the PSK.
    std::fs::remove_file(creds.join(PSK_CREDENTIAL)).expect("rm");
    let out = support::run(apply(&files, Some(&creds))).await;
    assert_exit(&out, 1);
    let stderr = support::stderr(&out);
    assert!(
        stderr.contains(&format!(
            "locations[0].tunnels[1].psk_file: the systemd credential \"popsel_chicago-2.psk\" \
             is not in $CREDENTIALS_DIRECTORY ({})",
            creds.display()
        )),
        "{}",
        show(&out)
    );
    assert!(!stderr.contains("api.token_file"), "{}", show(&out));
    assert!(support::tunnel_names(&sim).is_empty());
    assert_no_secrets(&stderr, &[PSK_1, PSK_2, DECOY]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relative_psk_file_is_next_to_the_config_even_under_systemd() {
    let sim = support::start_sim(support::no_faults()).await;
    let (files, creds) = site_with_credentials(&sim);
    // The secondary's psk_file as configs have always written it: a file next to the config,
    // though a credential of that very name is loaded.
    files.write_psk_file(PSK_CREDENTIAL, PSK_1.replace("one", "two").as_str());
    let config = SiteToml::demo()
        .only(CHICAGO)
        .psk_env(CHICAGO_1, PSK_ENV)
        .psk_file(CHICAGO_2, PSK_CREDENTIAL)
        .with(&format!(
            "[api]\nbase_url = {}\ntoken_file = {}\n\n[state]\ndir = \"state\"\n",
            toml_str(&sim.url()),
            toml_str(&format!("credential:{TOKEN_CREDENTIAL}"))
        ));
    files.write_config(&config);
    let out = support::run(apply(&files, Some(&creds))).await;
    assert_exit(&out, 0);
    let id = tunnel_id(&sim, CHICAGO_2);
    let next_to_config = PSK_1.replace("one", "two");
    assert!(
        sim.with_store(|s| s.tunnel_psk_is(&id, &next_to_config))
            .expect("exists"),
        "the relative psk_file was not read next to the config"
    );
}
