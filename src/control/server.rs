//! The daemon side: handlers registered at build time, one task per connection.

use super::{ControlError, MAX_LINE};
use crate::error::ErrorCode;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Control connections served at once; more wait.
pub const MAX_CONNECTIONS: usize = 4;

type BoxFuture = Pin<Box<dyn Future<Output = Result<Value, ControlError>> + Send>>;

/// A handler: takes the request's `args`, returns a result.
pub type Handler = Arc<dyn Fn(Value) -> BoxFuture + Send + Sync>;

/// The operations the daemon answers, filled by each service at build time.
#[derive(Clone, Default)]
pub struct Handlers {
    map: BTreeMap<&'static str, Handler>,
}

impl std::fmt::Debug for Handlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.map.keys()).finish()
    }
}

impl Handlers {
    /// Registers `op` (`token.add`, `led.identify`, …).
    pub fn register<F, Fut>(&mut self, op: &'static str, f: F)
    where
        F: Fn(Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, ControlError>> + Send + 'static,
    {
        self.map.insert(op, Arc::new(move |args| Box::pin(f(args))));
    }

    async fn call(&self, op: &str, args: Value) -> Result<Value, ControlError> {
        match self.map.get(op) {
            Some(h) => h(args).await,
            None => Err(ControlError::UnknownOp(op.to_owned())),
        }
    }
}

/// The bound socket.
#[derive(Debug)]
pub struct Bound {
    listener: UnixListener,
    path: PathBuf,
}

impl Bound {
    /// Binds `path` (mode 0600), replacing a stale socket left by a crash.
    pub fn bind(path: &Path) -> std::io::Result<Bound> {
        if path.exists() {
            // A live daemon would still answer; a stale file is ours to remove.
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    "another bbedge is running with this state directory",
                ));
            }
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        Ok(Bound {
            listener,
            path: path.to_owned(),
        })
    }

    /// Serves until cancelled, then removes the socket file.
    pub async fn serve(self, handlers: Handlers, shutdown: CancellationToken) {
        let handlers = Arc::new(handlers);
        let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            let permit = tokio::select! {
                () = shutdown.cancelled() => break,
                p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            };
            let stream = tokio::select! {
                () = shutdown.cancelled() => break,
                r = self.listener.accept() => match r {
                    Ok((s, _)) => s,
                    Err(e) => {
                        tracing::warn!(operation = "control.accept", error = %e, "accept failed");
                        continue;
                    }
                },
            };
            let handlers = handlers.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let (read, mut write) = stream.into_split();
                let mut reader = BufReader::new(read).take(MAX_LINE as u64);
                let mut line = String::new();
                let read =
                    tokio::time::timeout(Duration::from_secs(10), reader.read_line(&mut line))
                        .await;
                let answer = match read {
                    Ok(Ok(n)) if n > 0 && line.ends_with('\n') => dispatch(&handlers, &line).await,
                    _ => error_json(&ControlError::BadRequest("expected one JSON line".into())),
                };
                let mut out = answer.to_string();
                out.push('\n');
                let _ = write.write_all(out.as_bytes()).await;
            });
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn dispatch(handlers: &Handlers, line: &str) -> Value {
    let req: Value = match serde_json::from_str(line.trim()) {
        Ok(v) => v,
        Err(e) => return error_json(&ControlError::BadRequest(e.to_string())),
    };
    let Some(op) = req["op"].as_str() else {
        return error_json(&ControlError::BadRequest("missing `op`".into()));
    };
    let args = req.get("args").cloned().unwrap_or(Value::Null);
    tracing::debug!(operation = "control.request", op, "control request");
    match handlers.call(op, args).await {
        Ok(result) => json!({"ok": true, "result": result}),
        Err(e) => {
            tracing::info!(operation = "control.request", op, code = e.code(), error = %e, "control request failed");
            error_json(&e)
        }
    }
}

fn error_json(e: &ControlError) -> Value {
    let code = match e {
        ControlError::Failed { code, .. } => code.clone(),
        other => other.code().to_owned(),
    };
    json!({"ok": false, "code": code, "message": e.to_string()})
}
