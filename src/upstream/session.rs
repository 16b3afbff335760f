//! One connection, from the upgrade to the close: wait for `connection.ack` sending
//! nothing (§c.8), hand over to the online loop ([`super::online`]), then close the
//! socket completely and say why it ended ([`Why`]), which the reconnect loop turns into
//! the next delay.

use super::frames::{self, Inbound};
use super::stats::inc;
use super::{link, Upstream};
use crate::pairing::Credentials;
use crate::protocol::now_ms;
use futures_util::StreamExt;
use std::time::Duration;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// How long central may take between the upgrade and `connection.ack`.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(15);
/// How long queued manifests wait for central's clock (the JSON pong) after the ack.
pub const SKEW_WAIT: Duration = Duration::from_secs(3);
/// A write that takes longer than this means the link is stuck.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// The daemon is stopping.
    Shutdown,
    /// New credentials (re-pairing): reconnect at once.
    Credentials,
    /// 4003/4001 or an `auth_failed` frame.
    Rejected {
        /// The close code (0 for a frame).
        code: u16,
    },
    /// `re_enrolled`: wait for a new pairing.
    ReEnrolled,
    /// 4029: a connection cap.
    Limit,
    /// Central closed with a close frame (1000, 1005 on restart, 1008, …), or no
    /// connection was made: central holds no stale socket of ours.
    Lost,
    /// bbedge gave up on an attempt whose fate is unknown (connect, TLS, upgrade or
    /// `connection.ack` timed out): central may still register it late and forget the
    /// device when it closes (contract 0.13, §g.1).
    Abandoned,
    /// An acknowledged link died without a close frame from central (read error, EOF,
    /// pong timeout, stuck write): central may still hold the dead socket (§g.1).
    Dropped,
    /// bbedge closed cleanly on purpose to reconnect, once after a [`Why::Dropped`].
    Voluntary,
}

/// How a connection ended.
#[derive(Debug, Clone, Copy)]
pub struct End {
    /// Why.
    pub why: Why,
    /// How long it was acknowledged (`None`: never).
    pub connected_for: Option<Duration>,
}

impl End {
    /// An end before any ack.
    pub fn new(why: Why) -> Self {
        Self {
            why,
            connected_for: None,
        }
    }
}

pub(crate) fn close_why(frame: Option<&CloseFrame>) -> (Why, u16) {
    let code = frame.map_or(1005, |f| u16::from(f.code));
    let why = match code {
        4001 | 4003 => Why::Rejected { code },
        4029 => Why::Limit,
        _ => Why::Lost,
    };
    (why, code)
}

impl Upstream {
    /// Serves one socket to its end and closes it completely.
    pub(crate) async fn serve(
        &mut self,
        mut ws: link::Ws,
        creds: &Credentials,
        creds_rx: &mut watch::Receiver<Option<Credentials>>,
        token: &CancellationToken,
    ) -> End {
        let client_id = match self.await_ack(&mut ws, token).await {
            Ok(c) => c,
            Err(why) => {
                link::close(ws, 1000, "").await;
                return End::new(why);
            }
        };
        let acked = super::online::clock();
        let started = self.link.acked(acked);
        inc(&self.stats.connects);
        self.hub.update(|f| f.needs_pairing = false);
        self.stats.info(|i| {
            i.connected_since = Some(crate::protocol::now_rfc3339());
            i.client_id = client_id.clone();
        });
        self.publish();
        tracing::info!(operation = "upstream.connect", url = %creds.room_url(), client_id = client_id.as_deref().unwrap_or(""), "connected to central");
        let (why, close_code) = self
            .online_loop(&mut ws, creds, creds_rx, token, started)
            .await;
        self.online
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let connected_for = super::online::clock().saturating_duration_since(acked);
        if let Some(code) = close_code {
            link::close(ws, code, "").await;
        }
        tracing::info!(operation = "upstream.disconnect", reason = ?why, connected_s = connected_for.as_secs(), "disconnected from central");
        End {
            why,
            connected_for: Some(connected_for),
        }
    }

    /// Reads until `control`/`connection.ack`; sends nothing meanwhile.
    async fn await_ack(
        &mut self,
        ws: &mut link::Ws,
        token: &CancellationToken,
    ) -> Result<Option<String>, Why> {
        let deadline = tokio::time::sleep(ACK_TIMEOUT);
        tokio::pin!(deadline);
        loop {
            let msg = tokio::select! {
                () = token.cancelled() => return Err(Why::Shutdown),
                () = &mut deadline => {
                    self.link.failed("ACK_TIMEOUT", now_ms());
                    return Err(Why::Abandoned);
                }
                m = ws.next() => m,
            };
            match msg {
                Some(Ok(Message::Text(t))) => {
                    inc(&self.stats.frames_in);
                    match frames::classify(&t) {
                        Inbound::ConnectionAck { client_id } => return Ok(client_id),
                        Inbound::ControlError { code, message } => {
                            tracing::warn!(operation = "upstream.connect", code = %code, message = %message, "central refused the connection");
                            self.link.failed(code, now_ms());
                        }
                        other => {
                            inc(&self.stats.unknown_in);
                            tracing::debug!(operation = "upstream.connect", frame = ?other, "frame before connection.ack ignored");
                        }
                    }
                }
                Some(Ok(Message::Close(f))) => {
                    let (why, code) = close_why(f.as_ref());
                    self.link.failed(format!("CLOSE_{code}"), now_ms());
                    return Err(why);
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    self.link.failed("CONNECTION_LOST", now_ms());
                    tracing::info!(operation = "upstream.connect", error = %e, "connection lost before connection.ack");
                    return Err(Why::Lost);
                }
                None => return Err(Why::Lost),
            }
        }
    }
}
