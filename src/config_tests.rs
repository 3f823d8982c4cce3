use std::os::unix::fs::PermissionsExt;

use secrecy::ExposeSecret;

use std::time::Duration;

use super::*;
use crate::fixtures::{
    CHICAGO, CHICAGO_1, CHICAGO_2, CHICAGO_LATITUDE, CHICAGO_LONGITUDE, SiteToml,
};
use crate::location::{Role, Site};

/// The sections under test. Text rather than merged into the site: the rules below edit it
/// line by line, and put a `[probe]` section after `page_size`.
const SETTINGS: &str = r#"
[api]
base_url = "http://127.0.0.1:9"
timeout = "3s"
page_size = 20

[selection]
switch_min_improvement_ms = 12
countries = ["US", "CA"]
"#;

/// A good config: [`SETTINGS`], and the demo site's "chicago" with the primary's PSK from
/// `CHI_PSK_1`, the secondary's from `chi2.psk`, and an IP address as the secondary's
/// authentication ID, so that both kinds are checked.
fn good() -> String {
    let chicago = SiteToml::demo()
        .only(CHICAGO)
        .psk_env(CHICAGO_1, "CHI_PSK_1")
        .psk_file(CHICAGO_2, "chi2.psk")
        .set(CHICAGO_2, "authentication_id", "203.0.113.7");
    format!("{SETTINGS}\n{}", chicago.render())
}

/// A directory holding `chi2.psk` (mode 600) for the config's relative `psk_file`.
fn dir_with_psk(mode: u32) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chi2.psk");
    std::fs::write(&path, "file-psk-0123\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    dir
}

fn env(k: &str) -> Option<String> {
    (k == "CHI_PSK_1").then(|| "env-psk-0123".to_owned())
}

fn parse(text: &str, dir: &Path) -> Result<Config, ConfigError> {
    Config::parse_with(text, "popsel.toml", dir, &env)
}

/// Every problem of `text`, as reported.
fn problems(text: &str) -> Vec<String> {
    let dir = dir_with_psk(0o600);
    parse(text, dir.path()).unwrap_err().problems
}

#[test]
fn a_good_config_loads_with_defaults_filled_in() {
    let dir = dir_with_psk(0o600);
    let c = parse(&good(), dir.path()).unwrap();
    assert_eq!(c.api.timeout, Duration::from_secs(3));
    assert_eq!(c.api.page_size, 20);
    assert_eq!(
        c.metrics.series,
        crate::metrics::SeriesOptions {
            rtt_histogram: false,
            endpoints: false,
            ranked_pops: 5
        },
        "fleet-sized series by default"
    );
    assert_eq!(c.selection.switch_min_improvement_ms, 12.0);
    assert_eq!(c.selection.switch_after_cycles, 3);
    assert_eq!(c.selection.filter.countries, ["US", "CA"]);
    assert_eq!(
        c.state_dir,
        Path::new("/var/lib/popsel"),
        "absolute paths stay as written"
    );
    let chicago = &c.locations[0];
    assert!(chicago.local);
    assert!(chicago.local_ts.is_empty() && chicago.remote_ts.is_empty());
    assert_eq!(
        chicago.site,
        Site {
            latitude: CHICAGO_LATITUDE,
            longitude: CHICAGO_LONGITUDE
        }
    );
    let [t1, t2] = &chicago.tunnels[..] else {
        panic!("two tunnels")
    };
    assert_eq!((t1.role, t2.role), (Role::Primary, Role::Secondary));
    assert_eq!(t1.psk.expose_secret(), "env-psk-0123");
    assert_eq!(t2.psk.expose_secret(), "file-psk-0123", "trimmed");
    assert!(!format!("{c:?}").contains("psk-0123"), "Debug shows no PSK");
    assert_eq!(c.tunnels().count(), 2);
}

#[test]
fn syntax_and_unknown_keys_are_reported_with_the_file() {
    let e = parse("[api]\nbase_ulr = \"x\"\n", Path::new("."))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("config popsel.toml:") && e.contains("base_ulr"),
        "{e}"
    );
    let e = parse("[api]\ntimeout = \"soon\"\n", Path::new("."))
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"soon\" is not a duration"), "{e}");
}

/// Each rule, by replacing one line of the good config, with the message it must give.
#[test]
fn every_rule_names_its_key_and_says_what_is_wrong() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "latitude = 41.88",
            "latitude = 91.5",
            "locations[0].latitude: 91.5 is out of range (-90 to 90)",
        ),
        (
            "longitude = -87.63",
            "longitude = -181",
            "locations[0].longitude: -181 is out of range (-180 to 180)",
        ),
        (
            "longitude = -87.63",
            "",
            "locations[0].longitude: is missing",
        ),
        (
            "name = \"chicago\"",
            "name = \"\"",
            "locations[0].name: is missing",
        ),
        (
            "latitude = 41.88",
            "latitude = 41.88\nlocal_ts = [\"10.1.0.0/24\", \"10.2.0.5/16\"]",
            "locations[0].local_ts[1]: \"10.2.0.5/16\" has host bits set; the subnet is 10.2.0.0/16",
        ),
        (
            "page_size = 20",
            "page_size = 20\n[edge]\nvici_socket = \"run/charon.vici\"",
            "edge.vici_socket: run/charon.vici is not an absolute path (e.g. \"/run/charon.vici\")",
        ),
        (
            "page_size = 20",
            "page_size = 20\n[edge]\nvici_socket = \"/run/charon.vici\"\nswanctl_dir = \"/etc/swanctl/conf.d\"",
            "edge.vici_socket: popsel either drives charon (vici_socket) or writes files for it (swanctl_dir): set one",
        ),
        (
            "page_size = 20",
            "page_size = 20\n[metrics]\nranked_pops = -1",
            "metrics.ranked_pops: -1 is negative: give 0 (every PoP) or a number of PoPs",
        ),
        (
            "page_size = 20",
            "page_size = 20\n[probe]\ninterface = \"wan 0\"",
            "probe.interface: \"wan 0\" is not a network device name (no '/' or spaces, e.g. \"eth0\")",
        ),
        (
            "page_size = 20",
            "page_size = 20\n[probe]\ninterface = \"a-very-long-device\"",
            "probe.interface: \"a-very-long-device\" is not a network device name (1 to 15 characters, e.g. \"eth0\")",
        ),
        (
            "latitude = 41.88",
            "latitude = 41.88\nremote_ts = [\"0.0.0.0/33\"]",
            "locations[0].remote_ts[0]: \"0.0.0.0/33\": the prefix must be 0 to 32",
        ),
        (
            "location_id = \"d88fc23a-59a1-476a-a62e-a51ff3543fe7\"",
            "",
            "locations[0].location_id: is missing",
        ),
        (
            "authentication_id = \"chicago-primary@branch.example\"",
            "authentication_id = \"bob@\"",
            "locations[0].tunnels[0].authentication_id: \"bob@\" is neither an email nor an IP address",
        ),
        (
            "authentication_id = \"203.0.113.7\"",
            "authentication_id = \"chicago-primary@branch.example\"",
            "locations[0].tunnels[1].authentication_id: \"chicago-primary@branch.example\" is already used by locations[0].tunnels[0]",
        ),
        (
            "name = \"Chicago IPSec2\"",
            "name = \"Chicago IPSec1\"",
            "locations[0].tunnels[1].name: \"Chicago IPSec1\" is already used by locations[0].tunnels[0]",
        ),
        (
            "role = \"secondary\"",
            "role = \"primary\"",
            "locations[0].tunnels: needs exactly one primary tunnel, found 2",
        ),
        (
            "role = \"primary\"",
            "role = \"secondary\"",
            "locations[0].tunnels: needs exactly one primary tunnel, found 0",
        ),
        (
            "role = \"secondary\"",
            "role = \"tertiary\"",
            "locations[0].tunnels[1].role: \"tertiary\" is neither \"primary\" nor \"secondary\"",
        ),
        (
            "psk_env = \"CHI_PSK_1\"",
            "psk_env = \"NOT_SET\"",
            "locations[0].tunnels[0].psk_env: environment variable NOT_SET is not set",
        ),
        (
            "psk_env = \"CHI_PSK_1\"",
            "",
            "locations[0].tunnels[0]: needs a PSK: psk_file",
        ),
        (
            "psk_env = \"CHI_PSK_1\"",
            "psk_env = \"CHI_PSK_1\"\npsk_file = \"chi2.psk\"",
            "locations[0].tunnels[0]: give either psk_file or psk_env, not both",
        ),
        (
            "psk_file = \"chi2.psk\"",
            "psk_file = \"missing.psk\"",
            "locations[0].tunnels[1].psk_file: ",
        ),
        (
            "switch_min_improvement_ms = 12",
            "switch_min_improvement_ratio = 1.5",
            "selection.switch_min_improvement_ratio: 1.5 is out of range",
        ),
        (
            "switch_min_improvement_ms = 12",
            "switch_after_cycles = 0",
            "selection.switch_after_cycles: must be at least 1",
        ),
        (
            "page_size = 20",
            "page_size = 0",
            "api.page_size: 0 is out of range; use 1 to 1000",
        ),
        (
            "timeout = \"3s\"",
            "timeout = \"0s\"",
            "api.timeout: must be more than 0s",
        ),
        (
            "switch_min_improvement_ms = 12",
            "switch_min_improvement_ms = inf",
            "selection.switch_min_improvement_ms: must be 0 or more",
        ),
        (
            "page_size = 20",
            "page_size = 20\n[probe]\ncount = 500",
            "probe.count: 500 is out of range; use 1 to 100",
        ),
        (
            "page_size = 20",
            "page_size = 20\n[probe]\ninterval = \"2h\"",
            "probe.interval: 2h is more than 1m",
        ),
        (
            "page_size = 20",
            "page_size = 20\n[probe]\nconcurrency = 0",
            "probe.concurrency: must be at least 1",
        ),
        (
            "page_size = 20",
            "page_size = 20\n[probe]\nconcurrency = 10001",
            "probe.concurrency: 10001 is out of range; use 1 to 10000",
        ),
        (
            "page_size = 20",
            "page_size = 20\n[probe]\nconcurrency = 18446744073709551615",
            "probe.concurrency: 18446744073709551615 is out of range; use 1 to 10000",
        ),
        (
            "page_size = 20",
            "page_size = 20\nmax_response_bytes = 1000",
            "api.max_response_bytes: 1000 is out of range; use 65536 (64 KiB) to 1073741824 (1 GiB) bytes",
        ),
        (
            "page_size = 20",
            "page_size = 20\nmax_catalog_bytes = 9999999999999",
            "api.max_catalog_bytes: 9999999999999 is out of range",
        ),
        (
            "base_url = \"http://127.0.0.1:9\"",
            "base_url = \"http://api.example\"",
            "api.base_url: \"http://api.example/\" is not usable: plain http to api.example, which is not this machine, would send the API token unencrypted; use https://, or set [api] allow_insecure_http = true if the path to it is trusted",
        ),
        (
            "timeout = \"3s\"",
            "timeout = \"584542046090y\"",
            "api.timeout: 584542046090years ",
        ),
        (
            "page_size = 20",
            "page_size = 20\n[dns]\ntimeout = \"1h\"",
            "dns.timeout: 1h is more than 1m",
        ),
        (
            "page_size = 20",
            "page_size = 20\n[edge]\non_change_timeout = \"2h\"",
            "edge.on_change_timeout: 2h is more than 1h",
        ),
        (
            "page_size = 20",
            "page_size = 20\n[agent]\nprobe_interval = \"100000000y\"",
            "agent.probe_interval: 100000000years is more than 7days",
        ),
        (
            "base_url = \"http://127.0.0.1:9\"",
            "base_url = \"ftp://127.0.0.1:9\"",
            "api.base_url: \"ftp://127.0.0.1:9/\" is not usable: the scheme must be http or https",
        ),
    ];
    let good = good();
    for (from, to, message) in cases {
        assert!(good.contains(from), "fixture lacks {from:?}");
        let got = problems(&good.replacen(from, to, 1));
        assert!(
            got.iter().any(|p| p.starts_with(message)),
            "{to:?}: expected {message:?}, got {got:#?}"
        );
    }
}

#[test]
fn a_secret_in_a_wrong_key_is_never_quoted() {
    let text = good().replace(
        "psk_env = \"CHI_PSK_1\"",
        "psk = \"s3cr3t-in-the-wrong-key\"",
    );
    let e = parse(&text, Path::new(".")).unwrap_err().to_string();
    assert!(
        e.contains("line ") && e.contains("unknown field `psk`"),
        "{e}"
    );
    assert!(!e.contains("s3cr3t"), "{e}");
}

#[test]
fn location_names_must_stay_distinct_in_swanctl_names() {
    let good = good();
    let second = good
        .split("[[locations]]")
        .nth(1)
        .unwrap()
        .replace("name = \"chicago\"", "name = \"chicago_hq\"")
        .replace("Chicago IPSec", "Other IPSec")
        .replace("chicago-primary@", "other-primary@")
        .replace("203.0.113.7", "203.0.113.8");
    let first = good.replace("name = \"chicago\"", "name = \"chicago hq\"");
    let got = problems(&format!("{first}\n[[locations]]{second}"));
    assert_eq!(
        got,
        [
            "locations[1].name: \"chicago_hq\" becomes \"chicago_hq\" in swanctl names, as locations[0] does; choose another"
        ]
    );
}

#[test]
fn a_short_psk_is_reported_by_length_never_quoted() {
    let dir = dir_with_psk(0o600);
    std::fs::write(dir.path().join("chi2.psk"), "s3cr3t\n").unwrap();
    let e = parse(&good(), dir.path()).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains(
            "locations[0].tunnels[1]: the PSK has 6 characters; Atmos requires at least 8"
        ),
        "{text}"
    );
    assert!(!text.contains("s3cr3t"));
}

#[test]
fn a_world_readable_psk_file_is_refused() {
    let dir = dir_with_psk(0o644);
    let e = parse(&good(), dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("locations[0].tunnels[1].psk_file:")
            && e.contains("is world-readable (mode 644); run chmod 600"),
        "{e}"
    );
}

#[test]
fn all_problems_are_reported_at_once() {
    let text = good()
        .replace("latitude = 41.88", "latitude = 100")
        .replace("\"bob\"", "")
        .replace(
            "authentication_id = \"chicago-primary@branch.example\"",
            "authentication_id = \"bob@\"",
        )
        .replace("page_size = 20", "page_size = 5000");
    let got = problems(&text);
    assert_eq!(got.len(), 3, "{got:#?}");
}

#[test]
fn the_example_config_documents_a_valid_configuration() {
    let text = include_str!("../config/popsel.example.toml");
    let dir = tempfile::tempdir().unwrap();
    let c = Config::parse_with(text, "popsel.example.toml", dir.path(), &|k| {
        k.starts_with("POPSEL_PSK_")
            .then(|| "example-psk-value".to_owned())
    })
    .unwrap();
    assert!(!c.locations.is_empty());
}

#[test]
fn api_limits_and_plain_http_are_settings() {
    let dir = dir_with_psk(0o600);
    let c = parse(&good(), dir.path()).unwrap();
    assert_eq!(c.api.max_response_bytes, 4 << 20);
    assert_eq!(c.api.max_catalog_bytes, 32 << 20);
    assert!(!c.api.allow_insecure_http);
    let text = good().replace(
        "base_url = \"http://127.0.0.1:9\"",
        "base_url = \"http://api.example\"\nallow_insecure_http = true\nmax_response_bytes = 65536\nmax_catalog_bytes = 1073741824",
    );
    let c = parse(&text, dir.path()).unwrap();
    assert!(c.api.allow_insecure_http);
    assert_eq!(c.api.max_response_bytes, 65536);
    assert_eq!(c.api.max_catalog_bytes, 1 << 30);
    assert_eq!(c.api.base_url.as_deref(), Some("http://api.example"));
}

#[test]
fn credentials_in_the_api_url_are_refused_and_never_shown() {
    for url in [
        "https://user:url-s3cret@api.example",
        "http://url-s3cret@127.0.0.1:9",
        "http://u:url-s3cret@",
    ] {
        let text = good().replace(
            "base_url = \"http://127.0.0.1:9\"",
            &format!("base_url = \"{url}\""),
        );
        let got = problems(&text);
        assert!(
            got.iter().any(|p| p.starts_with("api.base_url: ")),
            "{url}: {got:#?}"
        );
        assert!(!format!("{got:?}").contains("url-s3cret"), "{got:#?}");
    }
    let settings = ApiSettings {
        base_url: Some("https://user:url-s3cret@api.example".into()),
        ..ApiSettings::default()
    };
    assert!(!format!("{settings:?}").contains("url-s3cret"));
}

// ---- where the config comes from ----

mod discovery {
    use std::ffi::OsStr;
    use std::path::Path;

    use super::super::{ConfigSource, NoConfig};

    #[test]
    fn the_flag_wins_over_the_environment_and_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let default = dir.path().join("popsel.toml");
        std::fs::write(&default, "").unwrap();
        let flag = Path::new("flag.toml");
        let env = OsStr::new("env.toml");
        assert_eq!(
            ConfigSource::find(Some(flag), Some(env), &default),
            Ok(ConfigSource::Flag(flag.into()))
        );
        assert_eq!(
            ConfigSource::given(Some(flag), Some(env)),
            Some(ConfigSource::Flag(flag.into()))
        );
    }

    #[test]
    fn the_environment_wins_over_the_default_and_empty_is_unset() {
        let dir = tempfile::tempdir().unwrap();
        let default = dir.path().join("popsel.toml");
        std::fs::write(&default, "").unwrap();
        assert_eq!(
            ConfigSource::find(None, Some(OsStr::new("env.toml")), &default),
            Ok(ConfigSource::Env("env.toml".into()))
        );
        assert_eq!(
            ConfigSource::find(None, Some(OsStr::new("")), &default),
            Ok(ConfigSource::Default(default.clone()))
        );
        assert_eq!(ConfigSource::given(None, Some(OsStr::new(""))), None);
    }

    #[test]
    fn the_default_only_when_something_is_there_and_only_for_who_needs_a_config() {
        let dir = tempfile::tempdir().unwrap();
        let default = dir.path().join("popsel.toml");
        let missing = ConfigSource::find(None, None, &default).unwrap_err();
        assert_eq!(
            missing,
            NoConfig {
                default: default.clone()
            }
        );
        let message = missing.to_string();
        for named in ["--config", "POPSEL_CONFIG", &default.display().to_string()] {
            assert!(message.contains(named), "{named} in {message}");
        }
        std::fs::write(&default, "").unwrap();
        assert_eq!(
            ConfigSource::find(None, None, &default),
            Ok(ConfigSource::Default(default.clone()))
        );
        // A command that works without a config never falls back to the default.
        assert_eq!(ConfigSource::given(None, None), None);
    }

    #[test]
    fn a_default_that_cannot_be_looked_at_is_taken_so_that_the_load_says_why() {
        let dir = tempfile::tempdir().unwrap();
        // A path under a regular file: neither there nor not, as far as stat can tell.
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let below = file.join("popsel.toml");
        assert_eq!(
            ConfigSource::find(None, None, &below),
            Ok(ConfigSource::Default(below.clone()))
        );
    }

    #[test]
    fn a_config_named_by_the_environment_says_so_when_it_fails() {
        let e = ConfigSource::Env("/nonexistent/popsel.toml".into())
            .load()
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("config /nonexistent/popsel.toml (from POPSEL_CONFIG): "),
            "{e}"
        );
        let e = ConfigSource::Flag("/nonexistent/popsel.toml".into())
            .load()
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("config /nonexistent/popsel.toml: "),
            "{e}"
        );
    }
}
