use std::process::ExitCode;

use clap::Parser;
use tessera::cli::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match cli.settings() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("tessera: {e}");
            return ExitCode::from(2);
        }
    };
    tessera::telemetry::init(&settings.log);
    if !settings.ignored_env.is_empty() {
        tracing::warn!(
            variables = %settings.ignored_env.join(" "),
            "ignoring TESSERA_* environment variables that name no setting (Kubernetes service links, or another program's)"
        );
    }
    match cli::run(cli, settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::debug!(error = ?e, "command failed");
            eprintln!("tessera: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The cause chain on one line, each cause once: many errors repeat their source's text in
/// their own message, and libpq's messages span lines.
fn one_line(error: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        let mut text = String::new();
        for line in cause
            .to_string()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
        {
            if !text.contains(line) {
                if !text.is_empty() {
                    text.push(' ');
                }
                text.push_str(line);
            }
        }
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}
