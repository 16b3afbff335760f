//! A frame parsed once at the edge, carried with its original text: the typed [`Frame`]
//! is what bbedge reads, the text is what it relays (room fan-out, the upstream outbox
//! and live queue, commands to the agent), byte for byte, never re-serialised.

use super::check::{self, Refusal};
use super::wire::{Frame, MessageType};
use serde_json::Value;
use std::sync::Arc;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// A parsed frame and the exact text it came in (or was first serialised to). Cheap to
/// clone (one shared allocation), so the room, the relay and the upstream pass it on
/// without copying the frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Inbound(Arc<Parsed>);

#[derive(Debug, PartialEq)]
struct Parsed {
    frame: Frame,
    text: Utf8Bytes,
}

impl Inbound {
    /// Parses and checks `text` (the one parse on a LAN frame's way in).
    pub fn parse(text: impl Into<Utf8Bytes>) -> Result<Self, Refusal> {
        let text = text.into();
        let frame = check::parse(&text)?;
        Ok(Self::with_text(frame, text))
    }

    /// Parses `text` into its type without the semantic checks: central's frames,
    /// which bbedge reads (and relays) as central sends them.
    pub fn read(text: impl Into<Utf8Bytes>) -> Result<Self, serde_json::Error> {
        let text = text.into();
        let frame = serde_json::from_str(&text)?;
        Ok(Self::with_text(frame, text))
    }

    /// A frame bbedge built: serialised once, here.
    pub fn new(frame: Frame) -> Self {
        // A `Frame` is strings, booleans and JSON maps: serialising it cannot fail.
        let text = serde_json::to_string(&frame).unwrap_or_default();
        Self::with_text(frame, Utf8Bytes::from(text))
    }

    /// A frame read from `text` some other way (leniently, see `upstream::frames`):
    /// the caller vouches that `frame` is what `text` says.
    pub fn from_parts(frame: Frame, text: Utf8Bytes) -> Self {
        Self::with_text(frame, text)
    }

    fn with_text(frame: Frame, text: Utf8Bytes) -> Self {
        Self(Arc::new(Parsed { frame, text }))
    }

    /// The typed frame.
    pub fn frame(&self) -> &Frame {
        &self.0.frame
    }

    /// The text to relay.
    pub fn text(&self) -> &Utf8Bytes {
        &self.0.text
    }

    /// The frame's type.
    pub fn ty(&self) -> MessageType {
        self.0.frame.ty()
    }

    /// The frame as a JSON value (`room_state`, tests): parsed from the text, so it is
    /// exactly what peers receive.
    pub fn to_value(&self) -> Value {
        serde_json::from_str(&self.0.text).unwrap_or(Value::Null)
    }
}

/// The text as received: what goes on the wire.
impl std::fmt::Display for Inbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::check::CheckError;
    use std::path::PathBuf;

    fn vectors(sub: &str) -> Vec<(String, String)> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/protocol/vectors")
            .join(sub);
        let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read_to_string(&p).unwrap())
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn each_wire_type_round_trips_through_the_typed_frame() {
        let mut seen = std::collections::HashSet::new();
        for (name, text) in vectors("").into_iter().chain(vectors("off-schema")) {
            let Ok(parsed) = Inbound::parse(text.as_str()) else {
                // Off-schema vectors the box never accepts from a LAN peer.
                assert!(
                    name.contains("minimal") || name.contains("signed"),
                    "{name}"
                );
                continue;
            };
            seen.insert(parsed.ty());
            let want: Value = serde_json::from_str(&text).unwrap();
            // The text is kept as received …
            assert_eq!(parsed.text().as_str(), text, "{name}");
            // … and a schema frame's typed form serialises back to the same JSON (the
            // off-schema `control` keeps only what bbedge reads).
            if parsed.ty() == MessageType::Control {
                continue;
            }
            let again: Value = serde_json::to_value(parsed.frame()).unwrap();
            assert_eq!(again, want, "{name}");
            assert_eq!(
                Inbound::new(parsed.frame().clone()).to_value(),
                want,
                "{name}"
            );
        }
        // Every schema type has a vector; `pong`/`control`/`ping` the off-schema ones.
        for &t in MessageType::ALL {
            assert!(seen.contains(&t), "no vector read as {t:?}");
        }
    }

    #[test]
    fn an_unknown_type_is_refused_as_before() {
        let text = r#"{"type":"stream.configure","id":"1","timestamp":"2026-06-20T19:00:30Z"}"#;
        let e = Inbound::parse(text).unwrap_err();
        assert_eq!(
            e,
            Refusal::Check(CheckError::UnknownType("stream.configure".into()))
        );
        let Refusal::Check(e) = e else { unreachable!() };
        assert_eq!(e.reason(), "unknown_type");
        assert_eq!(e.to_string(), "unknown frame type \"stream.configure\"");
        assert_eq!(
            Inbound::parse(r#"{"id":"1"}"#).unwrap_err(),
            Refusal::Check(CheckError::NoType)
        );
        assert_eq!(Inbound::parse("{nope").unwrap_err(), Refusal::NotJson);
    }

    #[test]
    fn refusals_name_the_field_like_the_structural_check() {
        let ok = r#"{"type":"ack","id":"a","timestamp":"2026-06-20T19:00:30Z","commandId":"c","success":true}"#;
        assert!(Inbound::parse(ok).is_ok());
        for (text, want) in [
            (
                r#"{"type":"ack","id":"a","timestamp":"2026-06-20T19:00:30Z","success":true}"#,
                CheckError::Missing("commandId"),
            ),
            (
                r#"{"type":"ack","id":"a","timestamp":"2026-06-20T19:00:30Z","commandId":"c","success":true,"error":null}"#,
                CheckError::Invalid("error"),
            ),
            (
                r#"{"type":"status","id":"a","timestamp":"2026-06-20T19:00:30Z","payload":{},"x":1}"#,
                CheckError::Extra("x".into()),
            ),
            (
                r#"{"type":"status","id":"a","timestamp":"2026-06-20T19:00:30Z","payload":[]}"#,
                CheckError::Invalid("payload"),
            ),
            (
                r#"{"type":"command","id":"a","timestamp":"2026-06-20T19:00:30Z","action":""}"#,
                CheckError::Invalid("action"),
            ),
        ] {
            assert_eq!(Inbound::parse(text), Err(Refusal::Check(want)), "{text}");
        }
    }

    #[test]
    fn the_original_text_is_kept_whatever_its_key_order_and_spacing() {
        let text = "{ \"payload\" : {\"state\":\"idle\"},\n \"timestamp\":\"2026-06-20T19:00:30Z\", \"id\":\"s\", \"type\":\"status\" }";
        let f = Inbound::parse(text).unwrap();
        assert_eq!(f.ty(), MessageType::Status);
        assert_eq!(f.text().as_str(), text);
    }
}
