//! The room-type registry: the extension point. A room type authorises connections and
//! makes each room's logic; the logic handles frames, joins, leaves, timers and
//! snapshots. Adding a type is one module implementing [`RoomType`] plus one
//! [`Registry::register`] line (see the test-only `counter` type below).

use super::fan::{Fan, SKIP};
use super::outbox::Outbox;
use super::presence::Presence;
use super::stats::Stats;
use super::tokens::{Role, TokenRecord};
use crate::protocol::{Inbound, MessageType, RealtimeCode};
use crate::relay::{AgentReply, ToAgent};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// A kind of room, shared by every room of that kind.
pub trait RoomType: Send + Sync + 'static {
    /// The name in URLs (`/realtime/<name>/<id>`) and room ids (`<name>:<id>`).
    fn name(&self) -> &'static str;
    /// Whether `token` may join room `id`; `Err` is the refusal (4003).
    fn authorise(&self, id: &str, token: &TokenRecord) -> Result<(), RealtimeCode>;
    /// Whether `role` may send frames of type `ty` at all (else `FORBIDDEN`).
    fn permits(&self, role: Role, ty: MessageType) -> bool;
    /// The logic of a new room `id`.
    fn create(&self, id: &str) -> Box<dyn RoomLogic>;
}

/// One room's own state and behaviour. Called with the room locked: never block.
pub trait RoomLogic: Send + 'static {
    /// A checked, permitted frame from `from`, typed and with its text as received.
    fn on_frame(&mut self, ctx: &mut Ctx<'_>, from: &Participant, frame: &Inbound);
    /// `who` left (already removed from the participants).
    fn on_leave(&mut self, _ctx: &mut Ctx<'_>, _who: &Participant) {}
    /// A timer set with [`Ctx::after`] fired.
    fn on_timer(&mut self, _ctx: &mut Ctx<'_>, _key: &str) {}
    /// A command from the upstream link (device rooms only).
    fn on_upstream(&mut self, _ctx: &mut Ctx<'_>, cmd: ToAgent) {
        let _ = cmd.reply.send(AgentReply::NotConnected);
    }
    /// The state a late joiner gets in `room_state`; `participants` includes the joiner.
    fn state(&self, _participants: &[Participant]) -> Value {
        json!({})
    }
    /// The state to keep on flash; `None`: nothing worth keeping.
    fn snapshot(&self) -> Option<Vec<u8>> {
        None
    }
    /// Restores from [`RoomLogic::snapshot`] bytes.
    fn restore(&mut self, _bytes: &[u8]) -> Result<(), String> {
        Ok(())
    }
}

/// A joined client as the room sees it.
#[derive(Debug, Clone)]
pub struct Participant {
    /// `client_<ms>_<rand>`, as sent in `connection.ack`.
    pub id: String,
    /// The token's role.
    pub role: Role,
    /// The token's label.
    pub label: String,
    /// The token's id (revocation closes every connection of it).
    pub token_id: String,
    /// Its send queue.
    pub out: Outbox,
    /// Presence not yet written to it (kept apart from `out`, coalesced).
    pub presence: Arc<Presence>,
}

impl Participant {
    /// `{id, role, label}` for `room_state` and presence frames.
    pub fn describe(&self) -> Value {
        json!({"id": self.id, "role": self.role.as_str(), "label": self.label})
    }
}

/// Called when a timer fires: `(room, key)`.
pub type TimerFn = Arc<dyn Fn(String) + Send + Sync>;

/// What room logic may do while handling something.
pub struct Ctx<'a> {
    /// The room id, `<type>:<id>`.
    pub room_id: &'a str,
    /// The room's broadcast ring.
    pub(super) fan: &'a Fan,
    /// Everyone joined, in join order.
    pub participants: &'a [Participant],
    /// Metrics.
    pub stats: &'a Stats,
    /// Set by logic whose snapshot-worthy state changed.
    pub changed: u32,
    pub(super) timer: &'a TimerFn,
}

impl Ctx<'_> {
    /// Queues `text` for one client; false if it is gone or its queue is full.
    pub fn send_to(&self, client: &str, text: Utf8Bytes) -> bool {
        self.participants
            .iter()
            .find(|p| p.id == client)
            .is_some_and(|p| p.out.push(text))
    }

    /// Queues `text` for every participant `to` selects. Never waits.
    ///
    /// Sent once, through the room's ring, when `to` leaves out at most [`SKIP`]
    /// participants (the sender, an operator answered directly); then every client whose
    /// writer lags past its bounds is closed with 1013. Otherwise (to agents only, say)
    /// queued client by client.
    pub fn broadcast(&self, text: &Utf8Bytes, to: impl Fn(&Participant) -> bool) {
        let mut skip = [0; SKIP];
        let mut left_out = 0;
        for p in self.participants.iter().filter(|p| !to(p)) {
            if let Some(k) = skip.get_mut(left_out) {
                *k = p.out.key();
            }
            left_out += 1;
        }
        if left_out <= SKIP {
            self.fan.send(text.clone(), skip);
            for p in self.participants {
                p.out.check_lag();
            }
            return;
        }
        for p in self.participants.iter().filter(|p| to(p)) {
            p.out.push(text.clone());
        }
    }

    /// Marks the state changed (counts towards `snapshots.max_updates`).
    pub fn mark_changed(&mut self) {
        self.changed += 1;
    }

    /// Calls [`RoomLogic::on_timer`] with `key` after `delay`.
    pub fn after(&self, delay: Duration, key: String) {
        let timer = self.timer.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            timer(key);
        });
    }
}

/// Room types by name.
#[derive(Clone, Default)]
pub struct Registry {
    types: HashMap<&'static str, Arc<dyn RoomType>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.types.keys()).finish()
    }
}

impl Registry {
    /// Adds a room type under its name.
    pub fn register(&mut self, ty: Arc<dyn RoomType>) {
        self.types.insert(ty.name(), ty);
    }

    /// The type named `name`, if registered.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn RoomType>> {
        self.types.get(name)
    }
}

/// Keeps `Weak` out of the signatures above.
pub(super) fn timer_for(room: Weak<super::live::Room>) -> TimerFn {
    Arc::new(move |key| {
        if let Some(room) = room.upgrade() {
            room.timer(&key);
        }
    })
}

#[cfg(test)]
mod tests {
    //! A second room type, to show the extension takes one module and one line.
    use super::*;

    /// `counter` rooms count the frames they see and tell everyone.
    struct CounterType;
    #[derive(Default)]
    struct Counter(u64);

    impl RoomType for CounterType {
        fn name(&self) -> &'static str {
            "counter"
        }
        fn authorise(&self, _id: &str, _t: &TokenRecord) -> Result<(), RealtimeCode> {
            Ok(())
        }
        fn permits(&self, _role: Role, ty: MessageType) -> bool {
            ty == MessageType::Event
        }
        fn create(&self, _id: &str) -> Box<dyn RoomLogic> {
            Box::new(Counter::default())
        }
    }

    impl RoomLogic for Counter {
        fn on_frame(&mut self, ctx: &mut Ctx<'_>, _f: &Participant, _x: &Inbound) {
            self.0 += 1;
            ctx.mark_changed();
            ctx.broadcast(&Utf8Bytes::from(self.0.to_string()), |_| true);
        }
        fn snapshot(&self) -> Option<Vec<u8>> {
            Some(self.0.to_be_bytes().to_vec())
        }
        fn restore(&mut self, b: &[u8]) -> Result<(), String> {
            self.0 = u64::from_be_bytes(b.try_into().map_err(|_| "bad length")?);
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_second_type_registers_with_one_line_and_handles_frames() {
        let mut reg = Registry::default();
        reg.register(Arc::new(CounterType)); // the one registration line
        let ty = reg.get("counter").expect("registered");
        let stats = Arc::new(Stats::default());
        let (out, inbox) = super::super::outbox::queue(4, 1024, stats.clone());
        let p = Participant {
            id: "c1".into(),
            role: Role::Observer,
            label: String::new(),
            token_id: "t".into(),
            out,
            presence: Default::default(),
        };
        let mut logic = ty.create("x");
        logic.restore(&41u64.to_be_bytes()).unwrap();
        let timer: TimerFn = Arc::new(|_| {});
        let parts = [p.clone()];
        let fan = Arc::new(Fan::new(4));
        p.out.attach(&fan);
        let mut ctx = Ctx {
            room_id: "counter:x",
            fan: &fan,
            participants: &parts,
            stats: &stats,
            changed: 0,
            timer: &timer,
        };
        let event = r#"{"type":"event","id":"e","timestamp":"2026-06-20T19:00:30Z","event":"x"}"#;
        logic.on_frame(&mut ctx, &p, &Inbound::parse(event).unwrap());
        assert_eq!(ctx.changed, 1);
        // A broadcast to everyone goes through the room's ring.
        let mut ring = inbox.rx.take_cursor().expect("joined");
        ring.ready().await.unwrap();
        assert_eq!(ring.take(u64::MAX).unwrap().unwrap().text.as_str(), "42");
        assert_eq!(logic.snapshot().unwrap(), 42u64.to_be_bytes().to_vec());
        assert!(reg.get("device").is_none());
    }
}
