//! `bbedge token add|list|revoke`: local room tokens. While the daemon runs, requests go
//! over its control socket (sled admits one process, and a revoke must close live
//! connections); otherwise the store is opened directly. Both paths run the functions
//! below, which wrap [`crate::room::tokens`].

use super::output::{err, out, write_failed};
use crate::app::Paths;
use crate::cli::{Cli, RoleArg, TokenCommand};
use crate::config::Loader;
use crate::control::{self, ControlError};
use crate::error::{exit, ErrorCode};
use crate::room::tokens::{self, Role, TokenError, TokenRecord};
use crate::room::Service;
use crate::store::Store;
use serde_json::{json, Value};

fn failed(e: &TokenError) -> ControlError {
    ControlError::failed(e, e.code())
}

/// `token.add` with `{role, room?, label?}` → `{token, record}`.
pub async fn add(store: &Store, args: Value) -> Result<Value, ControlError> {
    let role = args["role"].as_str().and_then(Role::parse).ok_or_else(|| {
        ControlError::BadRequest("role must be agent, operator, observer or admin".into())
    })?;
    let room = args["room"].as_str().map(str::to_owned);
    let label = args["label"].as_str().map(str::to_owned);
    let (token, record) = tokens::add(store, role, room, label)
        .await
        .map_err(|e| failed(&e))?;
    tracing::info!(operation = "token.add", token_id = %record.id, role = role.as_str(), "token issued");
    Ok(json!({"token": token.expose(), "record": record}))
}

/// `token.list` → `[record…]`.
pub fn list(store: &Store) -> Result<Value, ControlError> {
    let all = tokens::list(store).map_err(|e| failed(&e))?;
    serde_json::to_value(all).map_err(|e| ControlError::Io(e.to_string()))
}

/// `token.revoke` with `{id}` → the record. With the rooms running, live connections
/// of the token are closed at once.
pub async fn revoke(
    store: &Store,
    rooms: Option<&Service>,
    args: Value,
) -> Result<Value, ControlError> {
    let id = args["id"]
        .as_str()
        .ok_or_else(|| ControlError::BadRequest("id is required".into()))?;
    let rec = match rooms {
        Some(svc) => svc.revoke(id).await,
        None => tokens::revoke(store, id).await,
    }
    .map_err(|e| failed(&e))?;
    serde_json::to_value(rec).map_err(|e| ControlError::Io(e.to_string()))
}

/// Runs a `bbedge token …` subcommand; returns the exit code.
pub fn run(cli: &Cli, cmd: &TokenCommand) -> i32 {
    let loaded = match Loader::from_process(cli.config.clone()).load() {
        Ok(l) => l,
        Err(e) => return super::fail("invalid configuration", e.code(), &e, exit::USAGE),
    };
    let paths = Paths::resolve(&loaded.config);
    let (op, args) = match cmd {
        TokenCommand::Add { role, room, label } => {
            let role = match role {
                RoleArg::Agent => "agent",
                RoleArg::Operator => "operator",
                RoleArg::Observer => "observer",
                RoleArg::Admin => "admin",
            };
            (
                "token.add",
                json!({"role": role, "room": room, "label": label}),
            )
        }
        TokenCommand::List { .. } => ("token.list", json!({})),
        TokenCommand::Revoke { id } => ("token.revoke", json!({"id": id})),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return super::fail("cannot start the async runtime", "RUNTIME", &e, exit::OS),
    };
    let store_config = loaded.config.store.clone();
    let result = runtime.block_on(execute(&paths, &store_config, op, args));
    if let (TokenCommand::List { json: true }, Ok(v)) = (cmd, &result) {
        return print_list_json(v);
    }
    match result {
        Ok(v) => match out(render(op, &v)) {
            Ok(()) => exit::OK,
            Err(e) if op == "token.add" => unseen(&runtime, &paths, &store_config, &v, &e),
            Err(e) => write_failed(op, &e),
        },
        Err(e) => {
            let code = match &e {
                ControlError::Failed { code, .. } => code.clone(),
                other => other.code().to_owned(),
            };
            err(format_args!("bbedge {op}: {e} [{code}]"));
            if code == "TOKEN_NOT_FOUND" || matches!(e, ControlError::BadRequest(_)) {
                exit::USAGE
            } else {
                exit::FAILURE
            }
        }
    }
}

/// Runs `op` in the daemon over its control socket, or on the store when none runs.
async fn execute(
    paths: &Paths,
    store_config: &crate::config::Store,
    op: &str,
    args: Value,
) -> Result<Value, ControlError> {
    match control::request(&paths.state_dir, op, args.clone()).await {
        Err(ControlError::NotRunning) => {
            // Through the child check, as the daemon opens it: a db that makes sled
            // panic is quarantined (and said so on stderr), not a crash of this command.
            let store = match crate::store::open::from_command(&paths.store, store_config) {
                Ok(o) => o.store,
                Err(e) => return Err(ControlError::failed(&e, e.code())),
            };
            match op {
                "token.add" => add(&store, args).await,
                "token.list" => list(&store),
                _ => revoke(&store, None, args).await,
            }
        }
        other => other,
    }
}

/// A token was issued but could not be shown (stdout closed or full): nobody has it,
/// so it is revoked again rather than left valid and unknown. Exit 74 either way.
fn unseen(
    runtime: &tokio::runtime::Runtime,
    paths: &Paths,
    store_config: &crate::config::Store,
    issued: &Value,
    e: &std::io::Error,
) -> i32 {
    let id = issued["record"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let undone = runtime.block_on(execute(
        paths,
        store_config,
        "token.revoke",
        json!({ "id": id }),
    ));
    match undone {
        Ok(_) => err(format_args!(
            "bbedge token.add: cannot write the token to stdout [OUTPUT_FAILED]: {e}; token {id} was revoked again, so no unseen token stays valid"
        )),
        Err(r) => err(format_args!(
            "bbedge token.add: cannot write the token to stdout [OUTPUT_FAILED]: {e}; revoking token {id} failed too ({r}): revoke it with `bbedge token revoke {id}`"
        )),
    }
    exit::IOERR
}

/// `token list --json`: the records as a JSON array, re-read as [`TokenRecord`]s so only
/// their fields (never a token or its hash) are printed, whatever the daemon answered.
fn print_list_json(v: &Value) -> i32 {
    let text = serde_json::from_value::<Vec<TokenRecord>>(v.clone())
        .and_then(|all| serde_json::to_string_pretty(&all));
    match text {
        Ok(text) => match out(format_args!("{text}\n")) {
            Ok(()) => exit::OK,
            Err(e) => write_failed("token.list", &e),
        },
        Err(e) => {
            err(format_args!(
                "bbedge token.list: the answer is not a list of token records [CONTROL_BAD_ANSWER]: {e}"
            ));
            exit::FAILURE
        }
    }
}

/// The text printed for a successful `op`.
fn render(op: &str, v: &Value) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    match op {
        "token.add" => {
            let rec: Option<TokenRecord> = serde_json::from_value(v["record"].clone()).ok();
            if let Some(r) = rec {
                let _ = writeln!(
                    s,
                    "id:    {}\nrole:  {}\nroom:  {}",
                    r.id,
                    r.role.as_str(),
                    r.room.as_deref().unwrap_or("(this box)")
                );
            }
            let _ = writeln!(s, "token: {}", v["token"].as_str().unwrap_or(""));
            let _ = writeln!(
                s,
                "\nThe token is shown only this once; bbedge keeps only its hash."
            );
        }
        "token.list" => {
            let all: Vec<TokenRecord> = serde_json::from_value(v.clone()).unwrap_or_default();
            if all.is_empty() {
                let _ = writeln!(
                    s,
                    "no tokens; issue one with `bbedge token add --role observer`"
                );
            }
            for r in all {
                let state = if r.revoked { "revoked" } else { "active" };
                let _ = writeln!(
                    s,
                    "{}  {:<8}  {:<7}  {:<20}  {}  {}",
                    r.id,
                    r.role.as_str(),
                    state,
                    r.room.as_deref().unwrap_or("(this box)"),
                    r.created_at,
                    r.label
                );
            }
        }
        _ => {
            let _ = writeln!(s, "revoked {}", v["id"].as_str().unwrap_or(""));
        }
    }
    s
}
