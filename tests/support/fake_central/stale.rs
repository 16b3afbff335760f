//! A connect attempt that central processes late (contract 0.13, §g.1): the upgrade
//! stalls on central's side past the device's own connect timeout; the device gives up
//! and connects again; then central gets to the stale attempt after all, registers
//! the device in its tracker, and when that socket turns out closed it unregisters
//! the device, although the newer connection stays open. Central then answers
//! "not connected" for a device that shows `online` on its side.

use super::Shared;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};

/// Serves an attempt whose upgrade central processes only after `stall` (tokio's clock,
/// so paused-time tests keep it exact against the device's timers).
#[allow(clippy::result_large_err)] // the callback's type is tungstenite's
pub async fn serve<S>(stream: S, conn: u64, stall: Duration, shared: Shared)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::time::sleep(stall).await;
    let bearer: Arc<Mutex<Option<(String, String)>>> = Arc::default();
    let seen = bearer.clone();
    let callback = move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let token = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned);
        if let Some(t) = token {
            *seen.lock().expect("seen") = Some((req.uri().path().to_owned(), t));
        }
        Ok(resp)
    };
    // The request is still in the socket's buffer even though the device has closed
    // its end; the answer may or may not reach anyone.
    let ws = tokio_tungstenite::accept_hdr_async(stream, callback).await;
    let Some((path, token)) = bearer.lock().expect("seen").take() else {
        return;
    };
    let uuid = path.rsplit('/').next().unwrap_or("").to_owned();
    let known = shared.with(|s| s.tokens.get(&token).is_some_and(|d| d.uuid == uuid));
    if !known {
        return;
    }
    // Registered late…
    shared.with(|s| {
        let now = s.now();
        s.tracker.insert(uuid.clone(), now);
        s.late_registrations.push(conn);
    });
    // …and the socket is found closed: closing any socket unregisters the device.
    if let Ok(mut ws) = ws {
        use futures_util::StreamExt;
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(Ok(_)) = ws.next().await {}
        })
        .await;
    }
    shared.with(|s| {
        s.tracker.remove(&uuid);
        s.stale_unregistered.push(conn);
    });
}
