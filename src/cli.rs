//! The command line (clap). Every flag that makes sense in a unit file also reads a
//! `BBEDGE_*` variable; secret values are hidden from `--help`.

use crate::commands::output;
use crate::error::exit;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// `bbedge --version`: version, git hash and target triple.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("BBEDGE_GIT_HASH"),
    ", ",
    env!("BBEDGE_TARGET"),
    ")"
);

/// The edge service of a CivicPress broadcast box.
#[derive(Debug, Parser)]
#[command(name = "bbedge", version = LONG_VERSION, about, propagate_version = true)]
pub struct Cli {
    /// Config file (default: /etc/bbedge/bbedge.toml when it exists; drop-ins in <file>.d/).
    #[arg(long, short = 'c', global = true, env = "BBEDGE_CONFIG")]
    pub config: Option<PathBuf>,
    /// More log output: -v debug, -vv trace (overrides the config and RUST_LOG).
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log format (overrides [logging] format).
    #[arg(long, global = true, env = "BBEDGE_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormatArg>,
    /// What to do; `run` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// `--log-format` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormatArg {
    /// journald under systemd, else text.
    Auto,
    /// Human-readable text.
    Text,
    /// JSON lines.
    Json,
    /// The systemd journal.
    Journald,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (the default).
    Run,
    /// Check or print the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Ask the running daemon for its status and print a summary.
    Status(StatusArgs),
    /// Manage local tokens (room roles agent, operator, observer; admin for the web page).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Pair this box with a CivicPress server using an enrollment code.
    #[command(after_help = crate::pairing::failure::EXIT_CODES_HELP)]
    Pair(PairArgs),
    /// Remove this box's credentials and signing key.
    Unpair,
    /// Drive the status LED by hand.
    #[command(subcommand)]
    Led(LedCommand),
    /// Inspect the database.
    #[command(subcommand)]
    Store(StoreCommand),
    /// List the CivicPress boxes advertising on the LAN (mDNS).
    Discover(crate::commands::discover::DiscoverArgs),
}

/// `bbedge store …`
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Open the database and read it to the end (the daemon runs this as a child
    /// before opening it); one JSON line; exit 0 sound, 65 corrupt, 75 in use.
    Check {
        /// The database directory (default: the one `run` would use).
        path: Option<PathBuf>,
    },
}

/// `bbedge config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Load and validate a config file (default: the one `run` would use), with drop-ins and environment.
    Check {
        /// The file to check.
        file: Option<PathBuf>,
        /// Print the result as JSON: `ok`, the layers read and the effective configuration.
        #[arg(long)]
        json: bool,
    },
    /// Print the built-in default configuration.
    Default,
}

/// `bbedge status`
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The daemon's health URL (default: from [health] in the config).
    #[arg(long, env = "BBEDGE_HEALTH_URL")]
    pub url: Option<String>,
    /// Print the raw JSON.
    #[arg(long)]
    pub json: bool,
}

/// Roles of local room tokens.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum RoleArg {
    /// The box's capture process.
    Agent,
    /// May send commands.
    Operator,
    /// Read-only.
    Observer,
    /// Signs in to the box's web page (`[web]`); admits to no room.
    Admin,
}

/// `bbedge token …`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue a token; it is printed once and only its hash is kept.
    Add {
        /// The role the token grants.
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Limit the token to one device room id (default: this box's room).
        #[arg(long)]
        room: Option<String>,
        /// A label to recognise the token by.
        #[arg(long)]
        label: Option<String>,
    },
    /// List tokens (ids, roles, labels; never the tokens).
    List {
        /// Print the records as a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id; its live connections are closed at once.
    Revoke {
        /// The token id from `bbedge token list`.
        id: String,
    },
}

/// `bbedge pair`
#[derive(Debug, Args)]
pub struct PairArgs {
    /// The CivicPress base URL, e.g. https://cp.example.org.
    #[arg(long, env = "BBEDGE_PAIR_SERVER")]
    pub server: String,
    /// The device UUID the operator was given with the code.
    #[arg(long, env = "BBEDGE_PAIR_DEVICE_UUID")]
    pub device_uuid: String,
    /// The enrollment code, XXXX-XXXX-XXXX (never logged); `-` reads it from stdin.
    #[arg(long, env = "BBEDGE_PAIR_CODE", hide_env_values = true)]
    pub code: String,
    /// The name shown in CivicPress (default: [device] name).
    #[arg(long)]
    pub name: Option<String>,
    /// The realtime URL when it differs from the server's, e.g. wss://cp.example.org/realtime.
    #[arg(long)]
    pub realtime_url: Option<String>,
}

/// `bbedge led …`
#[derive(Debug, Subcommand)]
pub enum LedCommand {
    /// Blink the identify pattern, then return to the current state.
    Identify {
        /// How long to blink.
        #[arg(long, default_value_t = 15)]
        seconds: u64,
    },
    /// Cycle through every pattern, naming each.
    Test,
}

/// Parses `args`; on failure returns the exit code after saying why: 0 for `--help` and
/// `--version` (74 when they cannot be written), 64 for anything wrong (clap's own
/// code, 2, is not in the table), naming the `BBEDGE_*` variable when a bad value came
/// from one.
pub fn parse<I>(args: I) -> Result<Cli, i32>
where
    I: IntoIterator<Item = OsString>,
{
    let args: Vec<OsString> = args.into_iter().collect();
    let e = match Cli::try_parse_from(&args) {
        Ok(cli) => return Ok(cli),
        Err(e) => e,
    };
    let what = match e.kind() {
        ErrorKind::DisplayHelp => Some("--help"),
        ErrorKind::DisplayVersion => Some("--version"),
        // Everything else, `bbedge token` without a subcommand included, is a refusal.
        _ => None,
    };
    if let Some(what) = what {
        return Err(match output::out(e.render()) {
            Ok(()) => exit::OK,
            Err(io) => output::write_failed(what, &io),
        });
    }
    output::err(e.render().to_string().trim_end());
    if let Some(var) = env_to_blame(&e, &args) {
        output::err(format_args!(
            "bbedge: that value comes from environment variable {var} [CONFIG_BAD_ENV]; fix or unset it"
        ));
    }
    Err(exit::USAGE)
}

/// The `BBEDGE_*` variable that supplied the value clap rejected, if one did: the
/// argument reads a variable, the variable is set and the flag is not on the command line.
fn env_to_blame(e: &clap::Error, args: &[OsString]) -> Option<String> {
    let Some(ContextValue::String(bad)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    let mut commands = vec![Cli::command()];
    while let Some(cmd) = commands.pop() {
        for arg in cmd.get_arguments() {
            let (Some(var), Some(long)) = (arg.get_env(), arg.get_long()) else {
                continue;
            };
            let flag = format!("--{long}");
            // clap names the argument `--long <VALUE>`.
            let named = bad == &flag || bad.starts_with(&format!("{flag} "));
            if !named || std::env::var_os(var).is_none() {
                continue;
            }
            let on_line = args.iter().any(|a| {
                let a = a.as_bytes();
                a == flag.as_bytes() || a.starts_with(format!("{flag}=").as_bytes())
            });
            if !on_line {
                return Some(var.to_string_lossy().into_owned());
            }
        }
        commands.extend(cmd.get_subcommands().cloned());
    }
    None
}

/// The names of `BBEDGE_*` variables whose name or value is not UTF-8 (lossily shown;
/// never the value, which may be a secret such as `BBEDGE_PAIR_CODE`). Variables of
/// other programs are not looked at.
pub fn non_utf8_env() -> Vec<String> {
    std::env::vars_os()
        .filter(|(k, _)| k.as_bytes().starts_with(b"BBEDGE_"))
        .filter(|(k, v)| k.to_str().is_none() || v.to_str().is_none())
        .map(|(k, _)| k.to_string_lossy().into_owned())
        .collect()
}
