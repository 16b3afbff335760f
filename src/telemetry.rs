//! Logging: `tracing` with structured fields, to journald under systemd, as text on a
//! terminal, or as JSON lines.

use crate::config::LogFormat;
use std::io::{IsTerminal, Write};
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
                let mut stderr = std::io::stderr().lock();
                let _ = writeln!(
                    stderr,
                    "bbedge: journald unreachable ({e}); logging to stderr"
                );
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
                        .log_internal_errors(false)
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
    // A log line stderr cannot take (a broken journal stream: EPIPE) is dropped. The
    // layer's own report of it (off by default; kept off here on purpose) would go to
    // the same stderr with eprintln!, which panics.
    fmt::layer()
        .with_writer(std::io::stderr)
        .log_internal_errors(false)
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
    // RUST_LOG is a developer's override; one that would hide every line (`warning`) or
    // is not UTF-8 is not used, and the config's level applies.
    if let Some(env) = std::env::var_os("RUST_LOG") {
        if let Some(f) = env
            .to_str()
            .filter(|s| check_filter(s).is_ok())
            .and_then(|s| EnvFilter::try_new(s).ok())
        {
            return f;
        }
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(
            stderr,
            "bbedge: RUST_LOG is not a usable filter ({LEVEL_WORDS_HELP}); using [logging] level"
        );
    }
    if check_filter(&settings.level).is_err() {
        return EnvFilter::new("info");
    }
    EnvFilter::try_new(&settings.level).unwrap_or_else(|_| EnvFilter::new("info"))
}

/// The levels a filter may name.
pub const LEVEL_WORDS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// What [`check_filter`] allows, for error messages.
pub const LEVEL_WORDS_HELP: &str =
    "use off, error, warn, info, debug or trace, or directives such as \"info,bbedge::room=debug\"";

/// Checks a log filter stricter than `EnvFilter` does: `EnvFilter` reads a bare word
/// such as `warning` as a *target* to show at every level and everything else as off,
/// so a typo in the level silently hides every line, errors included. Here each
/// comma-separated directive is either a level word or `target=level`; returns the
/// first directive that is neither.
pub fn check_filter(filter: &str) -> Result<(), String> {
    let is_level = |w: &str| LEVEL_WORDS.iter().any(|l| l.eq_ignore_ascii_case(w.trim()));
    let mut any = false;
    for directive in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        any = true;
        let ok = match directive.rsplit_once('=') {
            None => is_level(directive),
            Some((target, level)) => !target.trim().is_empty() && is_level(level),
        };
        if !ok {
            return Err(directive.to_owned());
        }
    }
    if !any {
        return Err(String::new());
    }
    EnvFilter::try_new(filter)
        .map(|_| ())
        .map_err(|_| filter.to_owned())
}

#[cfg(test)]
mod tests {
    use super::check_filter;

    #[test]
    fn filters_that_would_hide_every_line_are_refused() {
        for bad in [
            "warning",
            "",
            " , ",
            "info,bbedge::room=verbose",
            "bbedge::room",
            "=info",
            "info,[",
        ] {
            assert!(check_filter(bad).is_err(), "{bad:?} must be refused");
        }
        assert_eq!(check_filter("info,warning").unwrap_err(), "warning");
    }

    #[test]
    fn levels_and_target_directives_pass() {
        for good in [
            "info",
            "WARN",
            "off",
            "info,bbedge::room=debug",
            "error,tower_http=trace",
        ] {
            assert!(check_filter(good).is_ok(), "{good:?} must pass");
        }
    }
}
