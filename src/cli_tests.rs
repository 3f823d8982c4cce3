use std::collections::BTreeSet;

use clap::CommandFactory;

use super::*;

/// Every command of the tree with its full name (`popsel tunnels create`), clap's `help`
/// commands left out.
fn commands() -> Vec<(String, clap::Command)> {
    fn walk(prefix: &str, command: &clap::Command, out: &mut Vec<(String, clap::Command)>) {
        for sub in command.get_subcommands() {
            if sub.get_name() == "help" {
                continue;
            }
            let name = format!("{prefix} {}", sub.get_name());
            walk(&name, sub, out);
            out.push((name, sub.clone()));
        }
    }
    let mut root = Cli::command();
    root.build();
    let mut out = vec![("popsel".to_owned(), root.clone())];
    walk("popsel", &root, &mut out);
    out
}

/// The commands that have the long option `long` (visible).
fn having(long: &str) -> BTreeSet<String> {
    commands()
        .into_iter()
        .filter(|(_, c)| {
            c.get_arguments()
                .any(|a| a.get_long() == Some(long) && !a.is_hide_set())
        })
        .map(|(name, _)| name)
        .collect()
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| format!("popsel {s}")).collect()
}

const API_COMMANDS: &[&str] = &[
    "tunnels",
    "tunnels list",
    "tunnels get",
    "tunnels create",
    "tunnels update",
    "tunnels delete",
    "tunnels status",
    "connectors",
    "connectors list",
    "connectors get",
    "connectors create",
    "connectors update",
    "connectors delete",
    "connectors status",
    "connectors regenerate",
    "pops",
    "rank",
];

const SITE_COMMANDS: &[&str] = &["plan", "apply", "run", "check"];

#[test]
fn clap_finds_nothing_wrong_with_the_definitions() {
    Cli::command().debug_assert();
}

#[test]
fn every_command_says_its_exit_codes_and_gives_examples() {
    for (name, command) in commands() {
        let after = command
            .get_after_help()
            .map(|h| h.to_string())
            .unwrap_or_default();
        assert!(after.contains("Exit codes:"), "{name}: {after:?}");
        assert!(after.contains("\n  2 "), "{name}: usage error: {after:?}");
        let examples = example_lines(&after);
        assert!(
            (2..=3).contains(&examples.len()),
            "{name}: {} examples: {examples:?}",
            examples.len()
        );
        if name != "popsel" {
            assert!(
                examples
                    .iter()
                    .all(|e| e.contains(&format!("{name} ")) || e.ends_with(&name)),
                "{name}: an example of another command: {examples:?}"
            );
        }
    }
}

#[test]
fn every_example_in_the_help_parses() {
    for (name, command) in commands() {
        let after = command
            .get_after_help()
            .map(|h| h.to_string())
            .unwrap_or_default();
        for example in example_lines(&after) {
            for args in popsel_invocations(&example) {
                if let Err(e) = Cli::from_args(&args) {
                    panic!("{name}: example {example:?} does not parse: {e}");
                }
            }
        }
    }
}

#[test]
fn every_option_and_argument_has_a_line_of_help() {
    for (name, command) in commands() {
        for arg in command.get_arguments().filter(|a| !a.is_hide_set()) {
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            assert!(
                !help.trim().is_empty(),
                "{name}: {} has no help",
                arg.get_id()
            );
        }
    }
}

#[test]
fn o_is_short_for_output_wherever_there_is_one() {
    let mut outputs = 0;
    for (name, command) in commands() {
        for arg in command.get_arguments() {
            if arg.get_long() == Some("output") {
                outputs += 1;
                assert_eq!(arg.get_short(), Some('o'), "{name}");
            } else {
                assert_ne!(
                    arg.get_short(),
                    Some('o'),
                    "{name}: -o for {}",
                    arg.get_id()
                );
            }
        }
    }
    assert!(outputs >= 18, "{outputs} commands with --output");
}

#[test]
fn api_options_only_on_the_commands_that_talk_to_the_api() {
    let talkers: BTreeSet<String> = names(API_COMMANDS)
        .into_iter()
        .chain(names(SITE_COMMANDS))
        .collect();
    assert_eq!(having("api-url"), talkers);
    assert_eq!(having("token-file"), talkers);
    assert_eq!(having("config"), talkers);
    let mut logging = talkers.clone();
    logging.remove("popsel check");
    logging.extend(names(&["sim", "demo"]));
    assert_eq!(having("log-format"), logging);
    assert_eq!(having("detailed-exitcode"), names(&["plan"]));
}

#[test]
fn the_options_of_earlier_versions_before_the_command_still_work_and_are_not_listed() {
    let cli = Cli::from_args([
        "popsel",
        "--api-url",
        "http://127.0.0.1:1",
        "--token-file",
        "t",
        "--log-format",
        "json",
        "tunnels",
        "list",
    ])
    .unwrap();
    let Command::Tunnels { api, .. } = &cli.command else {
        panic!("{cli:?}")
    };
    assert_eq!(
        api.connection.api_url.as_deref(),
        Some("http://127.0.0.1:1")
    );
    assert_eq!(api.connection.token_file, Some("t".into()));
    assert_eq!(cli.log_format(), LogFormat::Json);

    let cli = Cli::from_args(["popsel", "--config", "c.toml", "run", "--once"]).unwrap();
    let Command::Run(args) = &cli.command else {
        panic!("{cli:?}")
    };
    assert_eq!(args.site.config, Some("c.toml".into()));

    let root = Cli::command();
    assert!(
        root.get_arguments()
            .all(|a| a.is_hide_set() || a.get_id() == "help" || a.get_id() == "version")
    );
}

#[test]
fn the_option_after_the_command_wins_over_the_one_before() {
    let cli = Cli::from_args([
        "popsel",
        "--api-url",
        "http://before",
        "pops",
        "--api-url",
        "http://after",
    ])
    .unwrap();
    let Command::Pops { api, .. } = &cli.command else {
        panic!("{cli:?}")
    };
    assert_eq!(api.connection.api_url.as_deref(), Some("http://after"));
}

#[test]
fn an_option_before_a_command_that_does_not_use_it_is_a_usage_error() {
    for (option, value, command) in [
        ("--api-url", "http://x", "demo"),
        ("--config", "c.toml", "sim"),
        ("--token-file", "t", "completions"),
        ("--log-format", "json", "check"),
        ("--api-url", "http://x", "man"),
    ] {
        let mut args = vec!["popsel", option, value, command];
        if command == "completions" {
            args.push("bash");
        }
        let e = Cli::from_args(&args).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{args:?}");
        let text = e.to_string();
        assert!(text.contains(option) && text.contains(command), "{text}");
    }
    for args in [
        &["popsel", "demo", "--api-url", "http://x"][..],
        &["popsel", "sim", "--config", "c.toml"],
        &["popsel", "check", "--log-format", "json"],
        &["popsel", "completions", "bash", "--config", "c.toml"],
    ] {
        assert_eq!(Cli::from_args(args).unwrap_err().exit_code(), 2, "{args:?}");
    }
}

#[test]
fn rank_takes_a_name_server_in_every_form_and_refuses_the_rest() {
    let rank = |ns: &str| {
        Cli::from_args([
            "popsel",
            "rank",
            "--site",
            "41.88,-87.63",
            "--nameserver",
            ns,
        ])
    };
    for (ns, expected) in [
        ("192.0.2.53", "192.0.2.53:53"),
        ("192.0.2.53:5353", "192.0.2.53:5353"),
        ("::1", "[::1]:53"),
        ("[::1]", "[::1]:53"),
        ("[::1]:5353", "[::1]:5353"),
    ] {
        let cli = rank(ns).unwrap();
        let Command::Rank { args, .. } = &cli.command else {
            panic!("{cli:?}")
        };
        assert_eq!(
            args.nameservers,
            [expected.parse::<SocketAddr>().unwrap()],
            "{ns}"
        );
    }
    for ns in ["localhost", "192.0.2.53:", "[::1]:0", "::1]"] {
        let e = rank(ns).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{ns}");
        assert!(e.to_string().contains("--nameserver"), "{e}");
    }
}

// ---- the examples of the help texts, as command lines ----

/// The lines under `Examples:`, continuation lines (`\` at the end) joined.
fn example_lines(after_help: &str) -> Vec<String> {
    let Some((_, examples)) = after_help.split_once("Examples:\n") else {
        return Vec::new();
    };
    let mut lines = Vec::new();
    let mut pending = String::new();
    for line in examples.lines().take_while(|l| !l.trim().is_empty()) {
        let line = line.trim();
        match line.strip_suffix('\\') {
            Some(head) => pending.push_str(head),
            None => {
                pending.push_str(line);
                lines.push(std::mem::take(&mut pending));
            }
        }
    }
    lines
}

/// Each `popsel …` command of a shell line, as arguments: words split on blanks outside
/// double quotes, commands on `;`, `&&`, `||` and `|`, redirections and leading variable
/// assignments dropped.
fn popsel_invocations(line: &str) -> Vec<Vec<String>> {
    let mut words = Vec::new();
    let (mut word, mut quoted) = (String::new(), false);
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ';' if !quoted => {
                words.extend((!word.is_empty()).then(|| std::mem::take(&mut word)));
                words.push(";".to_owned());
            }
            c if c.is_whitespace() && !quoted => {
                words.extend((!word.is_empty()).then(|| std::mem::take(&mut word)));
            }
            c => word.push(c),
        }
    }
    words.extend((!word.is_empty()).then_some(word));
    let mut commands = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut words = words.into_iter();
    while let Some(w) = words.next() {
        match w.as_str() {
            ";" | "&&" | "||" | "|" => commands.push(std::mem::take(&mut current)),
            ">" => {
                words.next();
            }
            _ if current.is_empty() && w.contains('=') && !w.starts_with('-') => {}
            _ => current.push(w),
        }
    }
    commands.push(current);
    commands
        .into_iter()
        .filter(|c| c.first().is_some_and(|w| w == "popsel"))
        .collect()
}

#[test]
fn the_example_splitter_finds_every_popsel_command() {
    assert_eq!(
        popsel_invocations(
            "MY_PSK=... popsel tunnels create --name \"Chicago IPSec1\"; [ $? -eq 2 ] && popsel man > x.1 | man -l -"
        ),
        [
            vec!["popsel", "tunnels", "create", "--name", "Chicago IPSec1"],
            vec!["popsel", "man"],
        ]
    );
}
