//! The LED's control operations, so `bbedge led …` and other parts reach the LED the
//! running daemon owns: `led.identify {"seconds": n}` and `led.show {"state", "ms"}`.

use super::{DeviceState, Error, LedHandle};
use crate::control::{ControlError, Handlers};
use crate::error::ErrorCode;
use serde_json::{json, Value};
use std::time::Duration;

/// Identify's default length, as `bbedge led identify` without `--seconds`.
pub const DEFAULT_IDENTIFY: Duration = Duration::from_secs(15);

/// Registers `led.identify` and `led.show`.
pub fn register(handlers: &mut Handlers, led: &LedHandle) {
    let h = led.clone();
    handlers.register("led.identify", move |args: Value| {
        let h = h.clone();
        async move {
            let seconds = match args.get("seconds") {
                None | Some(Value::Null) => DEFAULT_IDENTIFY.as_secs(),
                Some(v) => v.as_u64().ok_or_else(|| {
                    ControlError::BadRequest("seconds must be a whole number".into())
                })?,
            };
            h.identify(Duration::from_secs(seconds)).map_err(failed)?;
            Ok(json!({ "seconds": seconds, "backend": h.view().backend }))
        }
    });
    let h = led.clone();
    handlers.register("led.show", move |args: Value| {
        let h = h.clone();
        async move {
            let name = args["state"].as_str().unwrap_or_default();
            let state = parse_state(name)
                .ok_or_else(|| ControlError::BadRequest(format!("unknown state {name:?}")))?;
            let ms = args["ms"]
                .as_u64()
                .ok_or_else(|| ControlError::BadRequest("ms must be a whole number".into()))?;
            h.show(state, Duration::from_millis(ms)).map_err(failed)?;
            Ok(json!({ "state": state, "backend": h.view().backend }))
        }
    });
}

/// The state named `name` (`offline_buffering`, …).
pub fn parse_state(name: &str) -> Option<DeviceState> {
    DeviceState::ALL.into_iter().find(|s| s.as_str() == name)
}

fn failed(e: Error) -> ControlError {
    ControlError::failed(&e, e.code())
}
