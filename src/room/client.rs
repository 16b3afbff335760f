//! One connection from the finished handshake to its close: admission (token, room,
//! caps), `connection.ack`, then the reader here (checks, rate limit, dispatch) and the
//! [`writer`](super::writer) (queue, pings, idle timeout, farewell) in a task of its own.

use super::frames;
use super::handshake::{Target, Upgrade};
use super::limits::Handshake;
use super::outbox::{self, Farewell, Outbox};
use super::reader::{linger, read, Handler};
use super::registry::Participant;
use super::stats::reason;
use super::writer::{echo, farewell, write};
use super::{tokens, Service};
use crate::bus::HookEvent;
use crate::protocol::check::Refusal;
use crate::protocol::{Inbound, MessageType, RealtimeCode};
use futures_util::StreamExt;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Serves one upgraded connection until it closes.
pub async fn serve<S>(
    svc: Arc<Service>,
    mut ws: WebSocketStream<S>,
    up: Upgrade,
    peer: SocketAddr,
    slot: Handshake,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let refuse = |code: &'static str| svc.stats.dropped(code);
    if matches!(up.target, Some(Target::Echo)) {
        // The conformance endpoint counts as an observer once upgraded.
        let Some(_joined) = svc.limits.join(tokens::Role::Observer) else {
            refuse(reason::CONNECTION_LIMIT);
            let why = frames::close_reason(
                RealtimeCode::ConnectionLimitExceeded,
                &[("reason", "connection limit reached")],
            );
            return farewell(&mut ws, None, Some(4029), &why).await;
        };
        drop(slot);
        // Boxed: a room connection's task carries no room for the echo loop.
        return Box::pin(echo(&svc, ws)).await;
    }
    let Some(Target::Room { kind, id }) = up.target else {
        refuse(reason::AUTH);
        let last = frames::error(
            RealtimeCode::UnknownError.as_str(),
            "Invalid room URL format",
        );
        return farewell(&mut ws, Some(last), None, "").await;
    };
    let Some(ty) = svc.registry.get(&kind).cloned() else {
        refuse(reason::AUTH);
        let why = frames::close_reason(
            RealtimeCode::RoomTypeNotRegistered,
            &[("roomType", kind.as_str())],
        );
        return farewell(&mut ws, None, Some(4004), &why).await;
    };
    if up.query_token {
        tracing::warn!(operation = "room.auth", peer = %peer, "a ?token= query is refused; send the token in Authorization or the auth.<token> subprotocol");
    }
    let Some(token) = up.token else {
        refuse(reason::AUTH);
        return farewell(&mut ws, Some(frames::auth_failed()), None, "").await;
    };
    let record = match tokens::lookup(&svc.store, &token) {
        Ok(Some(r)) if ty.authorise(&id, &r).is_ok() => r,
        Ok(r) => {
            refuse(reason::AUTH);
            tracing::info!(operation = "room.auth", peer = %peer, room = %id, token_id = r.as_ref().map_or("unknown", |r| r.id.as_str()), "connection refused: token unknown, revoked or for another room");
            let why = frames::close_reason(RealtimeCode::PermissionDenied, &[]);
            return farewell(&mut ws, Some(frames::auth_failed()), Some(4003), &why).await;
        }
        Err(e) => {
            refuse(reason::AUTH);
            tracing::error!(operation = "room.auth", error = %e, "cannot read tokens");
            let why = frames::close_reason(RealtimeCode::PermissionDenied, &[]);
            let last = frames::error(
                RealtimeCode::UnknownError.as_str(),
                "Token store unavailable",
            );
            return farewell(&mut ws, Some(last), Some(4003), &why).await;
        }
    };
    let limit = |what: String| {
        frames::close_reason(
            RealtimeCode::ConnectionLimitExceeded,
            &[("reason", what.as_str())],
        )
    };
    let Some(_joined) = svc.limits.join(record.role) else {
        refuse(reason::CONNECTION_LIMIT);
        let caps = svc.limits.caps();
        let why = limit(format!(
            "connection limit reached ({} of {} open to {}s)",
            caps.joined_cap(record.role),
            caps.max_connections,
            record.role.as_str()
        ));
        return farewell(&mut ws, None, Some(4029), &why).await;
    };
    let Some(_ip) = svc.limits.ip(peer.ip()) else {
        refuse(reason::CONNECTION_LIMIT);
        let why = limit(format!(
            "per-IP connection limit reached ({})",
            svc.limits.caps().max_per_ip
        ));
        return farewell(&mut ws, None, Some(4029), &why).await;
    };
    let Some(_tok) = svc.limits.token(&record.id) else {
        refuse(reason::CONNECTION_LIMIT);
        let why = limit(format!(
            "per-user connection limit reached ({})",
            svc.limits.caps().max_per_token
        ));
        return farewell(&mut ws, None, Some(4029), &why).await;
    };

    let l = &svc.cfg.limits;
    let (out, inbox) = outbox::queue(l.send_queue_frames, l.send_queue_bytes, svc.stats.clone());
    let me = Participant {
        id: frames::client_id(),
        role: record.role,
        label: record.label.clone(),
        token_id: record.id.clone(),
        out: out.clone(),
        presence: Default::default(),
    };
    let room_id = format!("{kind}:{id}");
    out.push(frames::connection_ack(&room_id, &me.id));
    let room = match svc.rooms.join(&ty, &id, me.clone()) {
        Ok(room) => room,
        Err(max) => {
            refuse(reason::CONNECTION_LIMIT);
            let msg = format!("Room limit reached ({max}); cannot create room {room_id}");
            let why = frames::close_reason(RealtimeCode::RoomLimitReached, &[]);
            let last = frames::error(RealtimeCode::UnknownError.as_str(), &msg);
            return farewell(&mut ws, Some(last), Some(4029), &why).await;
        }
    };
    // Joined: the handshake slot goes back for the next newcomer.
    drop(slot);
    if matches!(record.role, tokens::Role::Agent | tokens::Role::Operator) {
        svc.limits.trust(peer.ip());
    }
    if svc.stopping.is_cancelled() {
        // Joined after the shutdown's close_all went by.
        out.close(super::server::shutting_down());
    }
    let role = record.role.as_str();
    let gauge = svc.stats.role(role);
    gauge.inc();
    let span = tracing::info_span!("client", room = %room_id, client = %me.id, role);
    let entered = span.enter();
    tracing::info!(operation = "room.join", peer = %peer, token_id = %record.id, "client joined");
    svc.bus.publish(HookEvent::ClientConnected {
        room: room_id.clone(),
        client: me.id.clone(),
        role: role.to_owned(),
    });
    drop(entered);

    let last_seen = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let (sink, mut stream) = ws.split();
    // The writer is a task of its own: in one task with the reader (`join!`), every
    // wake-up of the writer (every delivery) polled the reader too, its close signal
    // and its socket (perf: a lock and a readiness check per delivery).
    let writer = tokio::spawn({
        let (svc, out, presence, last_seen) = (
            svc.clone(),
            out.clone(),
            me.presence.clone(),
            last_seen.clone(),
        );
        async move {
            let mut sink = sink;
            write(&svc, &out, &presence, inbox, &mut sink, &last_seen, started).await;
            sink
        }
    });
    let mut frames = RoomFrames {
        svc: &svc,
        room: &room,
        me: &me,
        bucket: Bucket::new(svc.cfg.rate_limiting.messages_per_second),
    };
    read(&svc, &mut stream, &out, &last_seen, started, &mut frames).await;
    let sink = writer.await;
    let ws = sink.ok().and_then(|sink| stream.reunite(sink).ok());

    let left = room.leave(&me.id);
    if left == 0 {
        svc.rooms.schedule_cleanup(&room);
    }
    gauge.dec();
    let why = out.farewell().map_or("closed", |f| f.why);
    let entered = span.enter();
    tracing::info!(operation = "room.leave", reason = why, "client left");
    svc.bus.publish(HookEvent::ClientDisconnected {
        room: room_id,
        client: me.id.clone(),
        role: role.to_owned(),
        reason: why.to_owned(),
    });
    drop(entered);
    if let Some(mut ws) = ws {
        linger(ws.get_mut()).await;
    }
}

/// What a room does with a client's messages: the rate limit, JSON only, the schema,
/// the role's permissions, then the room. The framing and close handshake around it
/// are the shared [`reader`](super::reader)'s.
struct RoomFrames<'a> {
    svc: &'a Service,
    room: &'a super::live::Room,
    me: &'a Participant,
    bucket: Bucket,
}

impl RoomFrames<'_> {
    fn refuse(&self, code: RealtimeCode, msg: &str, why: &'static str) {
        self.svc.stats.dropped(why);
        tracing::debug!(
            operation = "room.frame",
            reason = why,
            "frame refused: {msg}"
        );
        self.me.out.push(frames::error(code.as_str(), msg));
    }
}

impl Handler for RoomFrames<'_> {
    async fn data(&mut self, msg: Message) -> bool {
        let (svc, out) = (self.svc, &self.me.out);
        svc.stats.frames_in.inc();
        let Message::Text(text) = msg else {
            if !self.bucket.take() {
                rate_limited(svc, out);
                return false;
            }
            self.refuse(
                RealtimeCode::InvalidFrame,
                "Binary frames are not accepted",
                reason::BINARY,
            );
            return true;
        };
        // The one parse: typed, checked, and kept with its text for relaying.
        let parsed = match Inbound::parse(text) {
            Ok(f) if f.ty() == MessageType::Ping => {
                out.push(frames::pong());
                return true;
            }
            Ok(f) => Ok(f),
            Err(e) => Err(e),
        };
        if !self.bucket.take() {
            rate_limited(svc, out);
            return false;
        }
        let f = match parsed {
            Ok(f) => f,
            Err(Refusal::NotJson) => {
                self.refuse(
                    RealtimeCode::InvalidFrame,
                    "Frame is not JSON",
                    reason::NOT_JSON,
                );
                return true;
            }
            Err(Refusal::Check(e)) => {
                self.refuse(RealtimeCode::InvalidFrame, &e.to_string(), e.reason());
                return true;
            }
        };
        let ty = f.ty();
        if !self.room.kind.permits(self.me.role, ty) {
            let msg = format!(
                "A {} may not send {} frames",
                self.me.role.as_str(),
                ty.as_str()
            );
            self.refuse(RealtimeCode::Forbidden, &msg, reason::FORBIDDEN);
            return true;
        }
        self.room.frame(&self.me.id, &f);
        true
    }
}

fn rate_limited(svc: &Service, out: &Outbox) {
    svc.stats.rate_limit_hits.inc();
    svc.stats.dropped(reason::RATE_LIMITED);
    out.close(Farewell {
        last: Some(frames::rate_limited(
            svc.cfg.rate_limiting.messages_per_second,
        )),
        code: Some(1008),
        reason: "Rate limit exceeded".into(),
        why: "rate_limited",
    });
}

/// `messages_per_second` as a token bucket: a burst of one second's worth, refilled
/// continuously.
struct Bucket {
    tokens: f64,
    rate: f64,
    last: Instant,
}

impl Bucket {
    fn new(per_second: u32) -> Self {
        Self {
            tokens: f64::from(per_second),
            rate: f64::from(per_second),
            last: Instant::now(),
        }
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        let dt = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}
