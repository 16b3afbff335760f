//! Logging: `tracing` with structured fields, to journald under systemd, as text on a
//! terminal, or as JSON lines.

use crate::config::LogFormat;
use std::io::IsTerminal;
use tracing_subscriber::{fmt, prelude::*, EnvFilter};

/// Log settings resolved from config, `RUST_LOG`, `-v` and `--log-format`.
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// The config's level or filter.
    pub level: String,
    /// The config's (or `--log-format`'s) format.
    pub format: LogFormat,
    /// `-v` count: 1 = debug, 2+ = trace; overrides the level.
    pub verbose: u8,
}

/// What was actually set up, for the first log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The systemd journal.
    Journald,
    /// Text on stderr.
    Text,
    /// JSON lines on stderr.
    Json,
}

/// Installs the global subscriber. Safe to call once; later calls do nothing.
pub fn init(settings: &LogSettings) -> Output {
    let filter = filter(settings);
    let under_systemd = std::env::var_os("JOURNAL_STREAM").is_some();
    let want = match settings.format {
        LogFormat::Auto if under_systemd => Output::Journald,
        LogFormat::Auto | LogFormat::Text => Output::Text,
        LogFormat::Json => Output::Json,
        LogFormat::Journald => Output::Journald,
    };
    let registry = tracing_subscriber::registry().with(filter);
    match want {
        Output::Journald => match tracing_journald::layer() {
            Ok(layer) => {
                let _ = registry
                    .with(layer.with_syslog_identifier("bbedge".into()))
                    .try_init();
                Output::Journald
            }
            Err(e) => {
                eprintln!("bbedge: journald unreachable ({e}); logging to stderr");
                let _ = registry.with(text_layer(false)).try_init();
                Output::Text
            }
        },
        Output::Json => {
            let _ = registry
                .with(
                    fmt::layer()
                        .json()
                        .with_writer(std::io::stderr)
                        .flatten_event(true),
                )
                .try_init();
            Output::Json
        }
        Output::Text => {
            let _ = registry
                .with(text_layer(std::io::stderr().is_terminal()))
                .try_init();
            Output::Text
        }
    }
}

fn text_layer<S>(ansi: bool) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
}

fn filter(settings: &LogSettings) -> EnvFilter {
    if settings.verbose > 0 {
        return EnvFilter::new(if settings.verbose == 1 {
            "debug"
        } else {
            "trace"
        });
    }
    if let Ok(env) = std::env::var("RUST_LOG") {
        if let Ok(f) = EnvFilter::try_new(env) {
            return f;
        }
    }
    EnvFilter::try_new(&settings.level).unwrap_or_else(|_| EnvFilter::new("info"))
}
