//! The central contract on one screen: message types, frame builders, error codes and
//! close codes (`../shared/protocol/central-contract.md`).
//!
//! bbedge's frame types are written from the contract's facts; the schema itself is
//! test data and never embedded here.

pub mod check;
pub mod codes;
pub mod deadlines;
pub mod frame;

pub use codes::RealtimeCode;
pub use frame::{new_id, now_ms, now_rfc3339, MessageType};
