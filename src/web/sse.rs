//! `/events`: a `text/event-stream` of [`snapshot`](super::snapshot::snapshot)s, one at
//! once, one on every change of the device state or of what the LED shows, and one a
//! second (uptime, participants, the outbox). Ends when the session ends or the daemon
//! stops.

use super::http::Body;
use super::Web;
use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::OwnedSemaphorePermit;

/// The longest wait between two messages.
pub const TICK: Duration = Duration::from_secs(1);

struct Stream {
    web: Arc<Web>,
    session: String,
    hub: tokio::sync::watch::Receiver<crate::signal::Facts>,
    led: tokio::sync::watch::Receiver<crate::signal::LedView>,
    tick: tokio::time::Interval,
    first: bool,
    _permit: OwnedSemaphorePermit,
}

/// The event stream for session `session`, holding one of the stream permits.
pub fn stream(web: Arc<Web>, session: String, permit: OwnedSemaphorePermit) -> Body {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let st = Stream {
        hub: web.hub.subscribe(),
        led: web.led.watch(),
        web,
        session,
        tick,
        first: true,
        _permit: permit,
    };
    let s = futures_util::stream::unfold(st, |mut st| async move {
        if !st.first {
            tokio::select! {
                () = st.web.stopping.cancelled() => return None,
                r = st.hub.changed() => r.ok()?,
                r = st.led.changed() => r.ok()?,
                _ = st.tick.tick() => {}
            }
        }
        st.first = false;
        // Signed out, idle, or its admin token revoked (by the CLI too): the stream ends.
        let token_id = st.web.sessions.alive(&st.session, Instant::now())?;
        if !super::routes::still_admin(&st.web, &token_id) {
            st.web.sessions.remove(&st.session);
            return None;
        }
        let data = super::snapshot::snapshot(&st.web);
        let msg = format!("event: status\ndata: {data}\n\n");
        Some((Ok::<_, Infallible>(Frame::data(Bytes::from(msg))), st))
    });
    StreamBody::new(s).boxed_unsync()
}
