//! The central contract on one screen: the typed frames ([`wire`]), their checks,
//! the parsed frame carried with its bytes ([`Inbound`]), error codes and close codes
//! (`../shared/protocol/central-contract.md`).
//!
//! bbedge's frame types are written from the contract's facts; the schema itself is
//! test data and never embedded here.

pub mod check;
pub mod codes;
pub mod deadlines;
pub mod frame;
pub mod inbound;
pub mod wire;

pub use codes::RealtimeCode;
pub use frame::{new_id, now_ms, now_rfc3339};
pub use inbound::Inbound;
pub use wire::{Frame, MessageType};
