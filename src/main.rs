//! `bbedge`: parse the command line and hand over to the library. Only this file turns
//! errors into exit codes.
// As in src/lib.rs: nothing from outside may panic (release builds abort on panic).
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bbedge::cli::{self, Command, ConfigCommand};
use bbedge::commands::{self, output};
use bbedge::error::exit;
use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(u8::try_from(run()).unwrap_or(1))
}

fn run() -> i32 {
    // Before clap: a `BBEDGE_*` variable that is not UTF-8 is named here, not by a
    // generic clap error or a panic later (foreign variables are never read).
    if let Some(name) = cli::non_utf8_env().first() {
        output::err(format_args!(
            "bbedge: environment variable {name} is not valid UTF-8 [CONFIG_BAD_ENV]; fix or unset it"
        ));
        return exit::USAGE;
    }
    let cli = match cli::parse(std::env::args_os()) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    match cli.command {
        None | Some(Command::Run) => commands::run::daemon(&cli),
        Some(Command::Config(ConfigCommand::Default)) => commands::config::print_default(),
        Some(Command::Config(ConfigCommand::Check { ref file, json })) => {
            commands::config::check(file.clone().or_else(|| cli.config.clone()), json)
        }
        Some(Command::Status(ref args)) => commands::status::show(&cli, args),
        Some(Command::Token(ref cmd)) => commands::token::run(&cli, cmd),
        Some(Command::Pair(ref args)) => commands::pair::pair(&cli, args),
        Some(Command::Unpair) => commands::pair::unpair(&cli),
        Some(Command::Led(ref cmd)) => commands::led::run(&cli, cmd),
        Some(Command::Store(ref cmd)) => commands::store::run(&cli, cmd),
        Some(Command::Discover(ref args)) => commands::discover::run(args),
    }
}
