//! A read-only look into the live rooms for the web page (`crate::web`): who is in
//! each room and the room's state, as `room_state` would give a client joining now.

use super::live::Room;
use super::Service;
use serde_json::{json, Value};

impl Room {
    /// `{id, participants: [{id, role, label}…], state}`.
    pub fn view(&self) -> Value {
        let g = self.lock();
        let participants: Vec<Value> = g
            .participants
            .iter()
            .map(super::registry::Participant::describe)
            .collect();
        json!({
            "id": self.id,
            "participants": participants,
            "state": g.logic.state(&g.participants),
        })
    }
}

impl Service {
    /// Every live room's [`Room::view`], and the id of this box's own device room.
    pub fn view(&self) -> Value {
        let rooms: Vec<Value> = self.rooms.all().iter().map(|r| r.view()).collect();
        json!({ "device_room": self.device_id.room_id(), "rooms": rooms })
    }
}
