//! `cadenza-tui`: build and boot Cadenza in QEMU and watch it in one screen. The whole program is
//! the `tui` library (see its documentation and docs/tui.md); this only parses the command line
//! and reports a fatal error after the terminal has been restored.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = tui::Cli::parse();
    match tui::run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("cadenza-tui: {error:#}");
            ExitCode::FAILURE
        }
    }
}
