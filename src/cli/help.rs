//! What each command's `--help` says after its options: its exit codes and a few examples.
//! The same text ends its manual page (`popsel man <command>`).

/// The exit codes of a command that talks to the API and has no codes of its own.
macro_rules! api_exit_codes {
    () => {
        "Exit codes:
  0  done
  1  the API call or the input failed (one line on stderr says what and what to check)
  2  usage error (unknown option, bad value)
"
    };
}

pub const POPSEL: &str = "\
Config: the commands that need one (run, plan, apply, check) read --config FILE, else the file
$POPSEL_CONFIG names, else /etc/popsel/popsel.toml. The API commands (tunnels, connectors, pops)
and rank read one only when --config or POPSEL_CONFIG names it, for its [api] section; sim, demo,
completions and man never do. config/popsel.example.toml documents every key.

Exit codes:
  0  success
  1  failure (one line on stderr says what)
  2  usage error; plan, rank, run and demo say more in their --help

Examples:
  popsel demo --once
  popsel check && popsel plan
  popsel rank --site 41.88,-87.63 --catalog config/catalog.sample.json --no-dns --no-probe
";

pub const TUNNELS: &str = concat!(
    api_exit_codes!(),
    "
Examples:
  popsel tunnels list -o json
  MY_PSK=... popsel tunnels create --name \"Chicago IPSec1\" \\
      --authentication-id chicago@branch.example --location-id d88fc23a-... --psk-env MY_PSK
  popsel tunnels status 3f2a9c1e-...
"
);

pub const TUNNELS_LIST: &str = concat!(
    api_exit_codes!(),
    "
Examples:
  popsel tunnels list
  popsel tunnels list -o json --config /etc/popsel/popsel.toml
"
);

pub const TUNNELS_GET: &str = concat!(
    api_exit_codes!(),
    "
Examples:
  popsel tunnels get 3f2a9c1e-...
  popsel tunnels get 3f2a9c1e-... -o json
"
);

pub const TUNNELS_CREATE: &str = concat!(
    api_exit_codes!(),
    "
Examples:
  MY_PSK=... popsel tunnels create --name \"Chicago IPSec1\" \\
      --authentication-id chicago@branch.example --location-id d88fc23a-... --psk-env MY_PSK
  popsel tunnels create --name \"Chicago IPSec2\" --authentication-id 203.0.113.10 \\
      --location-id d88fc23a-... --psk-file /etc/popsel/chicago-2.psk
"
);

pub const TUNNELS_UPDATE: &str = concat!(
    api_exit_codes!(),
    "
Examples:
  popsel tunnels update 3f2a9c1e-... --psk-file /etc/popsel/chicago-1.psk
  popsel tunnels update 3f2a9c1e-... --name \"Chicago IPSec1\" --location-id d88fc23a-...
"
);

pub const TUNNELS_DELETE: &str = concat!(
    api_exit_codes!(),
    "
Examples:
  popsel tunnels delete 3f2a9c1e-...
  popsel tunnels delete 3f2a9c1e-... -o json
"
);

pub const TUNNELS_STATUS: &str = concat!(
    api_exit_codes!(),
    "
Examples:
  popsel tunnels status 3f2a9c1e-...
  popsel tunnels status 3f2a9c1e-... -o json
"
);

pub const CONNECTORS: &str = concat!(
    api_exit_codes!(),
    "
Examples:
  popsel connectors list
  popsel connectors create --name branch-connector
  popsel connectors status 7b0e4d2a-... -o json
"
);

pub const CONNECTORS_LIST: &str = concat!(
    api_exit_codes!(),
    "
Examples:
  popsel connectors list
  popsel connectors list -o json
"
);

pub const CONNECTORS_GET: &str = concat!(
    api_exit_codes!(),
    "
Examples:
  popsel connectors get 7b0e4d2a-...
  popsel connectors get 7b0e4d2a-... -o json
"
);

pub const CONNECTORS_CREATE: &str = concat!(
    api_exit_codes!(),
    "
Examples:
  popsel connectors create --name branch-connector
  popsel connectors create --name branch-connector --zone-id 1c9d7e3f-... -o json
"
);

pub const CONNECTORS_UPDATE: &str = concat!(
    api_exit_codes!(),
    "
Examples:
  popsel connectors update 7b0e4d2a-... --enabled false
  popsel connectors update 7b0e4d2a-... --name branch-connector-2
"
);

pub const CONNECTORS_DELETE: &str = concat!(
    api_exit_codes!(),
    "
Examples:
  popsel connectors delete 7b0e4d2a-...
  popsel connectors delete 7b0e4d2a-... -o json
"
);

pub const CONNECTORS_STATUS: &str = concat!(
    api_exit_codes!(),
    "
Examples:
  popsel connectors status 7b0e4d2a-...
  popsel connectors status 7b0e4d2a-... -o json
"
);

pub const CONNECTORS_REGENERATE: &str = concat!(
    api_exit_codes!(),
    "
Examples:
  popsel connectors regenerate 7b0e4d2a-...
  popsel connectors regenerate 7b0e4d2a-... -o json
"
);

pub const POPS: &str = concat!(
    api_exit_codes!(),
    "
Examples:
  popsel pops
  popsel pops -o json --api-url https://admin-api.axissecurity.com
"
);

pub const RANK: &str = "\
Exit codes:
  0  a ranking was produced (also by distance alone)
  1  the API failed
  2  bad input or usage error (the message names the flag, file or field)
  3  nothing to rank (no usable PoP after the filters)

Examples:
  popsel rank --site 41.88,-87.63 --catalog config/catalog.sample.json --no-dns --no-probe --top 5 --wide
  popsel rank --site 50.11,8.68 --country DE --country NL --nameserver 192.0.2.53 -o json
  popsel rank --site 41.88,-87.63 --interface wan0 --bypass-xfrm -o csv
";

pub const PLAN: &str = "\
Exit codes:
  0  the plan was made, changes pending or not
  1  error, conflicts included (they need a human)
  2  usage error; with --detailed-exitcode: changes pending (0 then means no changes)

Examples:
  popsel plan
  popsel plan --config /etc/popsel/popsel.toml --no-probe -o json
  popsel plan --detailed-exitcode; [ $? -eq 2 ] && popsel apply --yes
";

pub const APPLY: &str = "\
Exit codes:
  0  done (or nothing to change)
  1  something failed, conflicts remain, or the confirmation was not given
  2  usage error

Examples:
  popsel apply
  popsel apply --yes --no-probe
  popsel apply --yes --prune --config /etc/popsel/popsel.toml
";

pub const RUN: &str = "\
Exit codes:
  0    stopped by SIGTERM or SIGINT (the agent's normal end); with --once, every stage succeeded
  1    the agent could not start (config, state dir, metrics address); with --once, a stage failed
  2    usage error
  130  with --once, SIGINT cut the cycle short (143: SIGTERM)

Examples:
  popsel run
  popsel run --config /etc/popsel/popsel.toml --log-format json
  popsel run --once --no-probe --metrics-listen 127.0.0.1:0
";

pub const CHECK: &str = "\
Validates offline (no network call) what popsel run would load: the config, every PSK it
references (environment variables set, files readable, never printed) and the API token. Each
problem is one line on stdout, with its key path; a summary goes to stderr.

Exit codes:
  0  valid
  1  invalid, or no config found
  2  usage error

Examples:
  popsel check
  popsel check --config /etc/popsel/popsel.toml
  POPSEL_CONFIG=./popsel.toml popsel check && popsel plan
";

pub const SIM: &str = "\
Exit codes:
  0  stopped by SIGTERM or SIGINT
  1  could not start (no token, bad catalogue or fault rates, address in use)
  2  usage error

Examples:
  POPSEL_API_TOKEN=test-token popsel sim --listen 127.0.0.1:0
  popsel sim --token test-token --fail-rate 0.1 --throttle-rate 0.05 --delay 50ms
";

pub const DEMO: &str = "\
As root (CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_NET_RAW) the demo measures latency in an emulated
network, a network namespace of its own where the sample PoPs answer ICMP echo after delays from
their distance; otherwise it ranks by distance and says so.

Exit codes:
  0    the cycle succeeded (and, without --once, Ctrl-C stopped the metrics server)
  1    a stage of the cycle failed
  2    usage error
  130  SIGINT cut the cycle short (143: SIGTERM)

Examples:
  popsel demo
  popsel demo --once
  popsel demo --metrics-listen 127.0.0.1:0
";

pub const COMPLETIONS: &str = "\
Exit codes:
  0  printed
  1  stdout could not be written
  2  usage error (a shell other than bash, zsh or fish)

Examples:
  popsel completions bash > /etc/bash_completion.d/popsel
  popsel completions zsh > \"${fpath[1]}/_popsel\"
  popsel completions fish > ~/.config/fish/completions/popsel.fish
";

pub const MAN: &str = "\
Exit codes:
  0  printed
  1  no such command, or stdout could not be written
  2  usage error

Examples:
  popsel man | man -l -
  popsel man plan > popsel-plan.1
  popsel man tunnels create | man -l -
";
