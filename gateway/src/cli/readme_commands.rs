//! Every `roster …` command README.md shows, held against the real command line: each is parsed
//! by the binary's clap `Cli` (nothing runs), so a documented flag or subcommand that does not
//! exist, or a value it refuses, fails a test instead of a reader.
//!
//! What is checked: the lines of code blocks that run `roster` (at the start of the line or in
//! `$( … )`) or `cargo run -p roster-gateway -- …`; the command table's rows, a template read
//! with its placeholders (`TENANT`, `N`, …) given plausible values, `[optional]` parts included
//! and every `a|b` alternative tried; and the commands named in the prose, which may leave out
//! required arguments (`roster audit verify` names the command) but nothing else.

use clap::Parser;
use clap::error::ErrorKind;

use crate::Cli;

const README: &str = include_str!("../../../README.md");

/// Where a command was found, which decides how complete it must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    /// A line of a code block: run as written.
    CodeBlock,
    /// A row of the command table: a template, every placeholder filled in.
    Table,
    /// Inline code in the prose: names a command, so required arguments may be missing.
    Prose,
}

/// One documented command: its arguments after `roster`, its README line and where it was.
#[derive(Debug)]
struct Documented {
    line: usize,
    place: Place,
    text: String,
}

/// A value for each placeholder the README's templates use.
fn placeholder(word: &str) -> Option<&'static str> {
    Some(match word {
        "TENANT" | "NAME" => "acme",
        "N" => "3",
        "ADDR" => "127.0.0.1:8080",
        "DIR" => "/tmp/roster-data",
        "URLS" => "nats://127.0.0.1:4222",
        "URL" => "https://roster.example.com",
        "RPS" => "100",
        "CIDR" => "10.0.0.0/8",
        "T" => "2026-03-01T00:00:00Z",
        "FILE" => "okta-export.json",
        "TOKEN_ID" | "WEBHOOK_ID" | "STREAM_ID" => "0197a3c4-5b6d-7e8f-9a0b-1c2d3e4f5a6b",
        "TYPES" => "user.deactivated,user.*",
        "D" => "offboarding",
        "DURATION" => "90d",
        "ROLE" => "write",
        "GROUP" => "Engineering",
        "RG" => "models",
        "USER" => "alice",
        "PATH" => "groups",
        "V" => "engineering",
        _ => return None,
    })
}

fn is_placeholder(word: &str) -> bool {
    word.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && word
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// The arguments of a code block line that runs roster, if it does.
fn from_code_line(line: &str) -> Option<String> {
    let line = line.trim();
    let command = if let Some(rest) = line.strip_prefix("roster ") {
        rest
    } else if let Some((_, rest)) = line.split_once("$(roster ") {
        rest.split(')').next().unwrap_or_default()
    } else if line.starts_with("cargo run")
        && line.contains("-p roster-gateway")
        && !line.contains("--example")
    {
        line.split_once(" -- ")?.1
    } else {
        return None;
    };
    // Cut the shell's comment and pipe.
    let command = command.split(" #").next().unwrap_or_default();
    let command = command.split(" | ").next().unwrap_or_default();
    Some(command.trim().to_owned())
}

/// Every documented command, in README order.
fn documented() -> Vec<Documented> {
    let mut found = Vec::new();
    let mut in_code = false;
    // Inline code may run over a line break: the prose is read as one text, each character
    // remembering its line.
    let mut prose = String::new();
    let mut prose_lines = Vec::new();
    for (index, line) in README.lines().enumerate() {
        let number = index + 1;
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            if let Some(text) = from_code_line(line) {
                found.push(Documented {
                    line: number,
                    place: Place::CodeBlock,
                    text,
                });
            }
            continue;
        }
        // A row's first cell is the command; what its description names is a mention.
        let first_cell = if line.starts_with('|') {
            line.match_indices('|')
                .map(|(at, _)| at)
                .find(|&at| at > 0 && !line[..at].ends_with('\\'))
                .unwrap_or(0)
        } else {
            0
        };
        for at in 0..=line.len() {
            let place = if at < first_cell {
                Place::Table
            } else {
                Place::Prose
            };
            prose_lines.push((number, place));
        }
        prose.push_str(line);
        prose.push(' ');
    }
    let mut rest = prose.as_str();
    let mut offset = 0;
    while let Some(open) = rest.find('`') {
        let Some(length) = rest[open + 1..].find('`') else {
            break;
        };
        let span = &rest[open + 1..open + 1 + length];
        let (line, place) = prose_lines[offset + open];
        let span = span.split_whitespace().collect::<Vec<_>>().join(" ");
        let text = if let Some(arguments) = span.strip_prefix("roster ") {
            Some(arguments.to_owned())
        } else if span.starts_with("cargo run")
            && span.contains("-p roster-gateway")
            && !span.contains("--example")
        {
            span.split_once(" -- ")
                .map(|(_, arguments)| arguments.to_owned())
        } else {
            None
        };
        if let Some(text) = text {
            found.push(Documented { line, place, text });
        }
        offset += open + length + 2;
        rest = &rest[open + length + 2..];
    }
    found
}

/// The argument lists a documented command stands for: placeholders filled in, `[` `]` and the
/// repetition mark `…` dropped, one list per combination of `a|b` alternatives. A bare `…`
/// ("and the rest") makes the command a mention, as in prose.
fn expand(documented: &Documented) -> Result<(Vec<Vec<String>>, bool), String> {
    let text = documented.text.replace("\\|", "|");
    let mut mention = documented.place == Place::Prose;
    let mut lists: Vec<Vec<String>> = vec![Vec::new()];
    for word in text.split_whitespace() {
        if word == "…" {
            mention = true;
            continue;
        }
        let word = word.trim_matches(|c| c == '[' || c == ']' || c == '…');
        if word.is_empty() {
            continue;
        }
        let word = word
            .strip_prefix('\'')
            .and_then(|inner| inner.strip_suffix('\''))
            .unwrap_or(word);
        let alternatives = word
            .split('|')
            .map(|alternative| {
                if is_placeholder(alternative) {
                    placeholder(alternative).map(str::to_owned).ok_or_else(|| {
                        format!(
                            "README.md:{}: no value for the placeholder {alternative} (add it to \
                             `placeholder`)",
                            documented.line
                        )
                    })
                } else {
                    Ok(alternative.to_owned())
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        lists = lists
            .into_iter()
            .flat_map(|list| {
                alternatives.iter().map(move |alternative| {
                    let mut list = list.clone();
                    list.push(alternative.clone());
                    list
                })
            })
            .collect();
    }
    Ok((lists, mention))
}

/// Whether the command needs the `tools` feature (`bench`, `drift`).
fn needs_tools(arguments: &[String]) -> bool {
    matches!(
        arguments.first().map(String::as_str),
        Some("bench" | "drift")
    )
}

#[test]
fn the_readme_shows_commands_in_every_place_this_test_reads() {
    let found = documented();
    for place in [Place::CodeBlock, Place::Table, Place::Prose] {
        assert!(
            found.iter().any(|documented| documented.place == place),
            "no {place:?} command found in README.md: is the extraction still right?"
        );
    }
    // Those this test was written for: a code block inside `$( … )`, the `cargo run` form, a
    // table row and prose over a line break.
    let texts: Vec<&str> = found.iter().map(|doc| doc.text.as_str()).collect();
    for expected in [
        "tenant create acme",
        "serve",
        r"tenant set TENANT [--sso-enforced\|--no-sso-enforced] [--usernames strict\|derive]",
        "tenant set acme --sso-enforced",
        "role claim set acme --claim groups --value engineering --role write",
    ] {
        assert!(texts.contains(&expected), "{expected:?} not in {texts:#?}");
    }
}

#[test]
fn every_roster_command_in_the_readme_parses() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for documented in documented() {
        let (lists, mention) = match expand(&documented) {
            Ok(expanded) => expanded,
            Err(message) => {
                failures.push(message);
                continue;
            }
        };
        for arguments in lists {
            if needs_tools(&arguments) && cfg!(not(feature = "tools")) {
                continue;
            }
            checked += 1;
            let argv = std::iter::once("roster".to_owned()).chain(arguments.iter().cloned());
            let Err(error) = Cli::try_parse_from(argv) else {
                continue;
            };
            let named_only = matches!(
                error.kind(),
                ErrorKind::MissingRequiredArgument
                    | ErrorKind::MissingSubcommand
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            );
            if !(mention && named_only) {
                failures.push(format!(
                    "README.md:{} ({:?}) `roster {}` as `roster {}`: {}",
                    documented.line,
                    documented.place,
                    documented.text,
                    arguments.join(" "),
                    error.render()
                ));
            }
        }
    }
    assert!(checked > 40, "only {checked} commands checked");
    assert!(
        failures.is_empty(),
        "README commands roster does not accept:\n{}",
        failures.join("\n")
    );
}

#[test]
fn a_command_that_does_not_parse_is_caught() {
    let broken = Documented {
        line: 0,
        place: Place::Prose,
        text: "tenant set acme --sso-enforced maybe".to_owned(),
    };
    let (lists, mention) = expand(&broken).unwrap();
    assert!(mention);
    let argv = std::iter::once("roster".to_owned()).chain(lists[0].iter().cloned());
    assert!(Cli::try_parse_from(argv).is_err());
    let unknown = Documented {
        line: 0,
        place: Place::Table,
        text: "token list WHO".to_owned(),
    };
    assert!(expand(&unknown).is_err());
    let template = Documented {
        line: 0,
        place: Place::Table,
        text: "tenant diff TENANT [--format text\\|json]".to_owned(),
    };
    assert_eq!(
        expand(&template).unwrap(),
        (
            vec![
                vec!["tenant", "diff", "acme", "--format", "text"],
                vec!["tenant", "diff", "acme", "--format", "json"],
            ]
            .into_iter()
            .map(|list| list.into_iter().map(str::to_owned).collect())
            .collect(),
            false
        )
    );
}

#[test]
fn tenant_set_takes_the_sso_switch_both_ways_and_not_both() {
    use crate::Command;
    use crate::cli::tenant::TenantCommand;
    let sso = |arguments: &[&str]| {
        let argv = ["roster", "tenant", "set", "acme"].iter().chain(arguments);
        match Cli::try_parse_from(argv).map(|cli| cli.command) {
            Ok(Command::Tenant(TenantCommand::Set { sso, .. })) => Ok(sso.value()),
            Ok(other) => panic!("{other:?}"),
            Err(error) => Err(error.kind()),
        }
    };
    assert_eq!(sso(&["--sso-enforced"]), Ok(Some(true)));
    assert_eq!(sso(&["--no-sso-enforced"]), Ok(Some(false)));
    assert_eq!(sso(&[]), Ok(None));
    assert_eq!(
        sso(&["--sso-enforced", "--no-sso-enforced"]),
        Err(ErrorKind::ArgumentConflict)
    );
    assert_eq!(
        sso(&["--sso-enforced", "true"]),
        Err(ErrorKind::UnknownArgument)
    );
}

#[test]
fn serve_takes_a_db_cache_from_16_mib_to_64_gib() {
    use crate::Command;
    let cache =
        |value: &str| match Cli::try_parse_from(["roster", "serve", "--db-cache-mib", value])
            .map(|cli| cli.command)
        {
            Ok(Command::Serve(arguments)) => Ok(arguments.db_cache_mib()),
            Ok(other) => panic!("{other:?}"),
            Err(error) => Err(error.kind()),
        };
    assert_eq!(cache("16"), Ok(16));
    assert_eq!(cache("65536"), Ok(65536));
    assert_eq!(cache("8"), Err(ErrorKind::ValueValidation));
    assert_eq!(cache("65537"), Err(ErrorKind::ValueValidation));
    assert_eq!(cache("lots"), Err(ErrorKind::ValueValidation));
}

#[test]
fn serve_takes_memory_for_the_view_and_the_aggregate_from_16_mib() {
    let parsed = |flag: &str, value: &str| {
        Cli::try_parse_from(["roster", "serve", flag, value])
            .map(drop)
            .map_err(|error| error.kind())
    };
    for flag in ["--view-memory-mib", "--aggregate-memory-mib"] {
        assert_eq!(parsed(flag, "16"), Ok(()));
        assert_eq!(parsed(flag, "4096"), Ok(()));
        assert_eq!(parsed(flag, "15"), Err(ErrorKind::ValueValidation));
        assert_eq!(parsed(flag, "-1"), Err(ErrorKind::UnknownArgument));
    }
}
