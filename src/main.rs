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
    match cli::run(cli, settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` prints the whole cause chain on one line.
            tracing::debug!(error = ?e, "command failed");
            eprintln!("tessera: {e:#}");
            ExitCode::FAILURE
        }
    }
}
