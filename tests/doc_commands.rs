//! Every `cargo` command in the README, the docs and the examples' headers
//! names things that exist and passes its flags where cargo accepts them:
//! an example, test or bench that is there, features the crate has, and
//! the program's own flags after `--` (which the program must know).
//! `cargo run --example compare --full` fails in cargo; this test fails
//! first.

use std::path::Path;

/// The commands in one document: inline `` `cargo …` `` spans, and the
/// lines of its shell blocks (for a Rust file, only its `//!` lines).
fn commands_in(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let rust = path.extension().is_some_and(|e| e == "rs");
    let mut found = Vec::new();
    let mut in_shell = false;
    for line in text.lines() {
        let line = if rust {
            match line.trim_start().strip_prefix("//!") {
                Some(doc) => doc,
                None => continue,
            }
        } else {
            line
        };
        let fence = line.trim_start().strip_prefix("```");
        if let Some(lang) = fence {
            in_shell = !in_shell && matches!(lang.trim(), "sh" | "bash" | "shell");
            continue;
        }
        let mut snippets: Vec<&str> = line.split('`').skip(1).step_by(2).collect();
        if in_shell {
            snippets.push(line);
        }
        for snippet in snippets {
            let mut rest = snippet;
            while let Some(at) = rest.find("cargo ") {
                let command = &rest[at..];
                let end = command.find([')', '|', '&', ';']).unwrap_or(command.len());
                let command = command[..end].split(" 2>").next().unwrap().trim();
                found.push(command.to_string());
                rest = &rest[at + 6..];
            }
        }
    }
    found
}

/// Cargo's own options that may come before `--` in the commands we use.
const CARGO_FLAGS: &[&str] = &[
    "--release",
    "-q",
    "--quiet",
    "--no-run",
    "--lib",
    "--doc",
    "--all-targets",
    "--no-deps",
    "--check",
    "--all",
    "--examples",
];

/// Cargo's options that take a value.
const CARGO_VALUED: &[&str] = &[
    "--example",
    "--test",
    "--bench",
    "--features",
    "--bin",
    "--target-dir",
];

/// What is wrong with `command`, if anything.
fn check(command: &str, features: &[String]) -> Result<(), String> {
    let tokens: Vec<&str> = command.split_whitespace().collect();
    let Some((&"cargo", rest)) = tokens.split_first() else {
        return Ok(());
    };
    let Some((sub, rest)) = rest.split_first() else {
        return Err("no subcommand".into());
    };
    if !["run", "test", "bench", "build", "clippy", "doc", "fmt"].contains(sub) {
        return Err(format!("unknown subcommand {sub}"));
    }
    let (ours, program) = match rest.iter().position(|t| *t == "--") {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    let mut example = None;
    let mut i = 0;
    while i < ours.len() {
        let token = ours[i];
        if CARGO_VALUED.contains(&token) {
            let value = ours.get(i + 1).ok_or(format!("{token} needs a value"))?;
            let exists = match token {
                "--example" => {
                    example = Some(*value);
                    Path::new(&format!("examples/{value}.rs")).exists()
                        || Path::new(&format!("examples/{value}/main.rs")).exists()
                        || *value == "NAME"
                }
                "--test" => Path::new(&format!("tests/{value}.rs")).exists(),
                "--bench" => Path::new(&format!("benches/{value}.rs")).exists(),
                "--features" => value.split(',').all(|f| features.iter().any(|k| k == f)),
                _ => true,
            };
            if !exists {
                return Err(format!("{token} {value}: there is no such thing"));
            }
            i += 2;
        } else if token.starts_with('-') && !CARGO_FLAGS.contains(&token) {
            return Err(format!(
                "{token} is not a cargo option here: the program's flags go after `--`"
            ));
        } else if (*sub == "run") && !token.starts_with('-') {
            return Err(format!("{token}: the program's arguments go after `--`"));
        } else {
            i += 1; // a test filter, or one of cargo's flags
        }
    }
    // The program's own flags must be ones it knows (they appear, quoted,
    // in its source).
    if let Some(name) = example.filter(|name| *name != "NAME") {
        let source = ["examples/{}.rs", "examples/{}/main.rs"]
            .iter()
            .filter_map(|p| std::fs::read_to_string(p.replace("{}", name)).ok())
            .collect::<String>();
        for flag in program.iter().map(|t| t.trim_matches(['[', ']'])) {
            if flag.starts_with("--") && !source.contains(&format!("\"{flag}\"")) {
                return Err(format!("example {name} has no flag {flag}"));
            }
        }
    }
    Ok(())
}

fn features() -> Vec<String> {
    let manifest = std::fs::read_to_string("Cargo.toml").unwrap();
    let table = manifest.split("[features]").nth(1).unwrap_or("");
    table
        .lines()
        .take_while(|l| !l.starts_with('['))
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim().to_string()))
        .filter(|k| !k.starts_with('#') && !k.is_empty())
        .collect()
}

#[test]
fn every_documented_cargo_command_is_well_formed() {
    let features = features();
    let mut files = vec![Path::new("README.md").to_path_buf()];
    for dir in ["docs", "examples", "examples/compare"] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "md" || e == "rs") {
                files.push(path);
            }
        }
    }
    let mut seen = 0;
    let mut wrong = Vec::new();
    for file in &files {
        for command in commands_in(file) {
            seen += 1;
            if let Err(why) = check(&command, &features) {
                wrong.push(format!("{}: `{command}`: {why}", file.display()));
            }
        }
    }
    assert!(
        seen > 30,
        "found only {seen} commands: is the extraction broken?"
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_checker_catches_what_a_new_user_hit() {
    let features = vec!["hook".to_string()];
    let bad = [
        "cargo run --release --example compare --full",
        "cargo run --example compare -- --fulll",
        "cargo run --example no_such_example",
        "cargo test --test no_such_test",
        "cargo run --features nope --example hello",
        "cargo run --example echo_server 127.0.0.1:7000",
    ];
    for command in bad {
        assert!(check(command, &features).is_err(), "{command}");
    }
    let good = [
        "cargo run --release --example compare -- --full",
        "cargo test --test sim some_seeds -- --nocapture",
        "cargo run --features hook --example std_crates",
        "cargo bench --bench core -- spawn_join",
    ];
    for command in good {
        assert_eq!(check(command, &features), Ok(()), "{command}");
    }
}
