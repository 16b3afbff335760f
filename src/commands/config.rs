//! `bbedge config check|default`.

use super::output::{self, out_or_ioerr};
use crate::config::{Loaded, Loader, Source, DEFAULT_TOML};
use crate::error::{exit, ErrorCode};
use serde_json::{json, Value};
use std::path::PathBuf;

/// Prints the built-in configuration.
pub fn print_default() -> i32 {
    out_or_ioerr("config default", DEFAULT_TOML, exit::OK)
}

/// Loads and checks a configuration the way `run` would, and says which layers it read;
/// with `json`, as one JSON object on stdout (also when the configuration is invalid).
pub fn check(file: Option<PathBuf>, json: bool) -> i32 {
    match Loader::from_process(file).load() {
        Ok(loaded) if json => {
            let text = serde_json::to_string_pretty(&report(&loaded)).unwrap_or_default();
            out_or_ioerr("config check", format_args!("{text}\n"), exit::OK)
        }
        Ok(loaded) => {
            let layers: Vec<String> = loaded.layers.iter().map(ToString::to_string).collect();
            out_or_ioerr(
                "config check",
                format_args!("config ok: {}\n", layers.join(" + ")),
                exit::OK,
            )
        }
        Err(e) => {
            let code = super::fail("invalid configuration", e.code(), &e, exit::USAGE);
            if !json {
                return code;
            }
            let v = json!({
                "ok": false,
                "code": e.code(),
                "error": crate::error::chain(&e),
            });
            let text = serde_json::to_string_pretty(&v).unwrap_or_default();
            // Exit 64 either way: that the configuration is invalid matters more than
            // that stdout is gone, and stderr has said why.
            let _ = output::out(format_args!("{text}\n"));
            code
        }
    }
}

/// `config check --json` for a valid configuration: the layers in the order applied,
/// for each key set by a layer the layer that set it last, and the effective values.
/// The configuration holds paths to credential files, never their contents.
pub fn report(loaded: &Loaded) -> Value {
    let provenance: serde_json::Map<String, Value> = loaded
        .provenance
        .iter()
        .map(|(k, src)| (k.clone(), source(src)))
        .collect();
    json!({
        "ok": true,
        "layers": loaded.layers.iter().map(source).collect::<Vec<_>>(),
        "provenance": provenance,
        "config": serde_json::to_value(&loaded.config).unwrap_or(Value::Null),
    })
}

fn source(src: &Source) -> Value {
    match src {
        Source::BuiltIn => json!({"kind": "built-in"}),
        Source::File(p) => json!({"kind": "file", "path": p.to_string_lossy()}),
        Source::Env(name) => json!({"kind": "env", "name": name}),
    }
}
