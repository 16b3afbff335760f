//! `bbedge pair` and `bbedge unpair`: the work happens here, in the CLI process (the
//! daemon need not run); afterwards a running daemon is told over the control socket to
//! re-read the credentials, so it needs no restart.
//!
//! Output is one sentence: on stdout when paired, on stderr with its code otherwise.
//! The exit codes are in [`crate::pairing::failure::exit`] and `bbedge pair --help`.

use super::output::{err, out_or_ioerr};
use crate::cli::{Cli, LogFormatArg, PairArgs};
use crate::config::{Loaded, Loader, LogFormat};
use crate::control::{self, ControlError};
use crate::error::{exit, ErrorCode};
use crate::pairing::failure::exit as pair_exit;
use crate::pairing::register::{self, Inputs, Settings};
use crate::pairing::{private_file, PairError};
use crate::secret::Secret;
use crate::telemetry::{self, LogSettings};
use serde_json::json;
use std::io::BufRead;

/// `bbedge pair`; returns the exit code.
pub fn pair(cli: &Cli, args: &PairArgs) -> i32 {
    let Some((loaded, rt)) = setup(cli) else {
        return exit::USAGE;
    };
    let config = &loaded.config;
    let paths = crate::app::Paths::resolve(config);
    let code = if args.code.trim() == "-" {
        // `--code -` reads it from stdin, keeping it out of `ps` and shell history.
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
        Secret::new(line.trim())
    } else {
        Secret::new(args.code.clone())
    };
    let inputs = Inputs {
        server: args.server.clone(),
        device_uuid: args.device_uuid.clone(),
        code,
        name: args.name.clone(),
        realtime_url: args.realtime_url.clone(),
        room_location: None,
    };
    let settings = Settings::new(config, &paths);
    let result = rt.block_on(async {
        let req = inputs.check(&config.device, settings.allow_insecure)?;
        register::pair(&req, &settings).await
    });
    match result {
        Ok(creds) if creds.not_accepted().is_some() => {
            // Central took the code (it is spent) but refuses the device: never "Paired".
            let status = creds.not_accepted().unwrap_or("inactive");
            let message = format!(
                "Central accepted the code but has device {} as '{status}', so it refuses the box's connections until an operator sets it active (or enrolls a new device); the credentials are kept for when it is active again.",
                creds.device_id
            );
            super::output::err(format_args!(
                "bbedge pair: warning: {message} [{NOT_ACCEPTED}]"
            ));
            tell_daemon(&rt, &paths.state_dir, true);
            let args = json!({"code": NOT_ACCEPTED, "message": message});
            let _ = rt.block_on(control::request(&paths.state_dir, "pairing.report", args));
            pair_exit::DEVICE_NOT_ACCEPTED
        }
        Ok(creds) => {
            // The daemon is told first: the pairing stands whether or not stdout works.
            let after = tell_daemon(&rt, &paths.state_dir, true);
            let text = format!(
                "Paired with {} as \"{}\" (device {}); the token expires at {}.\n{after}",
                creds.server, creds.name, creds.device_id, creds.expires_at
            );
            out_or_ioerr("pair", text, pair_exit::PAIRED)
        }
        Err(e) => {
            err(format_args!("bbedge pair: {e} [{}]", e.code()));
            report_to_daemon(&rt, &paths.state_dir, &e);
            e.exit_code()
        }
    }
}

/// The code `bbedge pair` and `/status` give a registration central answered with a
/// `suspended`, `revoked` or `decommissioned` device.
pub const NOT_ACCEPTED: &str = "PAIR_DEVICE_NOT_ACCEPTED";

/// `bbedge unpair`: removes the credentials and the key; returns the exit code.
pub fn unpair(cli: &Cli) -> i32 {
    let Some((loaded, rt)) = setup(cli) else {
        return exit::USAGE;
    };
    let paths = crate::app::Paths::resolve(&loaded.config);
    let mut removed = Vec::new();
    for (what, path) in [
        ("credentials", &paths.credentials),
        ("signing key", &paths.key),
    ] {
        match private_file::remove(path) {
            Ok(true) => removed.push(what),
            Ok(false) => {}
            Err(e) => {
                err(format_args!(
                    "bbedge unpair: cannot remove the {what} at {}: {e}; run it as the daemon's user or root. [PAIRING_WRITE_FAILED]",
                    path.display()
                ));
                return pair_exit::FILES;
            }
        }
    }
    let after = tell_daemon(&rt, &paths.state_dir, false);
    let text = if removed.is_empty() {
        format!("This box was not paired; there was nothing to remove.\n{after}")
    } else {
        format!(
            "Unpaired: removed the {}; the box no longer connects to CivicPress.\n{after}",
            removed.join(" and the ")
        )
    };
    out_or_ioerr("unpair", text, exit::OK)
}

fn setup(cli: &Cli) -> Option<(Loaded, tokio::runtime::Runtime)> {
    let loaded = match Loader::from_process(cli.config.clone()).load() {
        Ok(l) => l,
        Err(e) => {
            super::fail("invalid configuration", e.code(), &e, exit::USAGE);
            return None;
        }
    };
    // A command prints its own sentence; logs only add detail with -v.
    telemetry::init(&LogSettings {
        level: "warn".into(),
        format: match cli.log_format {
            Some(LogFormatArg::Json) => LogFormat::Json,
            Some(LogFormatArg::Journald) => LogFormat::Journald,
            _ => LogFormat::Text,
        },
        verbose: cli.verbose,
    });
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Some((loaded, rt)),
        Err(e) => {
            super::fail("cannot start the async runtime", "RUNTIME", &e, exit::OS);
            None
        }
    }
}

/// Asks a running daemon to re-read the credentials; returns the lines for stdout
/// (empty, or ending in a newline). A refusal is said on stderr at once.
fn tell_daemon(rt: &tokio::runtime::Runtime, state_dir: &std::path::Path, paired: bool) -> String {
    match rt.block_on(control::request(state_dir, "pairing.reload", json!({}))) {
        Ok(_) => "The running daemon picked up the change.\n".to_owned(),
        Err(ControlError::NotRunning) if paired => "The daemon is not running: start it now (systemctl start bbedge), because CivicPress activates a box only if it connects within 15 minutes of the code being issued.\n".to_owned(),
        Err(ControlError::NotRunning) => String::new(),
        Err(e) => {
            err(format_args!(
                "bbedge: the daemon did not take the change ({e}); restart it with `systemctl restart bbedge`."
            ));
            String::new()
        }
    }
}

/// Best effort: a running daemon shows the failure on `/status`.
fn report_to_daemon(rt: &tokio::runtime::Runtime, state_dir: &std::path::Path, e: &PairError) {
    let args = json!({"code": e.code(), "message": e.to_string()});
    let _ = rt.block_on(control::request(state_dir, "pairing.report", args));
}
