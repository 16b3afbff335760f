//! The CLI side: one request, one answer.

use super::{socket_path, ControlError, MAX_LINE};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// Longest a request may take end to end.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends `op` with `args` to the daemon whose state dir is `state_dir`.
pub async fn request(state_dir: &Path, op: &str, args: Value) -> Result<Value, ControlError> {
    let path = socket_path(state_dir);
    let mut stream = match UnixStream::connect(&path).await {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Err(ControlError::NotRunning)
        }
        Err(e) => return Err(ControlError::Io(format!("{}: {e}", path.display()))),
    };
    let io = async {
        let mut line = json!({"op": op, "args": args}).to_string();
        line.push('\n');
        stream.write_all(line.as_bytes()).await?;
        let mut reader = BufReader::new(stream).take(MAX_LINE as u64);
        let mut answer = String::new();
        reader.read_line(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    let answer = tokio::time::timeout(REQUEST_TIMEOUT, io)
        .await
        .map_err(|_| ControlError::Io("the daemon did not answer in time".into()))?
        .map_err(|e| ControlError::Io(e.to_string()))?;
    let v: Value = serde_json::from_str(answer.trim())
        .map_err(|e| ControlError::Io(format!("unreadable answer: {e}")))?;
    if v["ok"].as_bool() == Some(true) {
        Ok(v.get("result").cloned().unwrap_or(Value::Null))
    } else {
        let code = v["code"].as_str().unwrap_or("CONTROL_FAILED").to_owned();
        let message = v["message"].as_str().unwrap_or("failed").to_owned();
        Err(match code.as_str() {
            "CONTROL_UNKNOWN_OP" => ControlError::UnknownOp(op.to_owned()),
            "CONTROL_BAD_REQUEST" => ControlError::BadRequest(message),
            _ => ControlError::Failed { code, message },
        })
    }
}
