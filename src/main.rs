//! `bbedge`: parse the command line and hand over to the library. Only this file turns
//! errors into exit codes.

use bbedge::cli::{Cli, Command, ConfigCommand};
use bbedge::commands;
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        None | Some(Command::Run) => commands::run::daemon(&cli),
        Some(Command::Config(ConfigCommand::Default)) => commands::config::print_default(),
        Some(Command::Config(ConfigCommand::Check { ref file })) => {
            commands::config::check(file.clone().or_else(|| cli.config.clone()))
        }
        Some(Command::Status(ref args)) => commands::status::show(&cli, args),
        Some(Command::Token(ref cmd)) => commands::token::run(&cli, cmd),
        Some(Command::Pair(ref args)) => commands::pair::pair(&cli, args),
        Some(Command::Unpair) => commands::pair::unpair(&cli),
        Some(Command::Led(ref cmd)) => commands::led::run(&cli, cmd),
        Some(Command::Store(ref cmd)) => commands::store::run(&cli, cmd),
        Some(Command::Discover(ref args)) => commands::discover::run(args),
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
