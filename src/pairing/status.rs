//! What pairing shows on `/status` ("pairing" section) and `/metrics`: the paired
//! device, the token's expiry and time left, the expiry warning, the last pairing error
//! and the boot file's state. Never the token or the code.

use super::expiry::{assess, SharedClock, TokenState};
use super::CredentialStore;
use serde::Serialize;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The last failed pairing attempt, for `/status`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LastError {
    /// Stable code (`PAIR_CODE_REFUSED`, …).
    pub code: String,
    /// The sentence shown to the person.
    pub message: String,
    /// When, RFC 3339.
    pub at: String,
    /// `cli` or `boot_file`.
    pub source: &'static str,
}

/// Where boot-file pairing stands.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BootState {
    /// The file.
    pub path: String,
    /// `disabled`, `absent`, `invalid`, `no_code`, `already_used`, `pairing`,
    /// `waiting_retry`, `paired`, `failed`.
    pub state: &'static str,
    /// Why (for `invalid`, `failed`, `waiting_retry`), or a note (code not removed).
    pub detail: Option<String>,
    /// Attempts made by this daemon run.
    pub attempts: u32,
    /// When the next attempt is due (`waiting_retry`), RFC 3339.
    pub next_attempt_at: Option<String>,
}

impl BootState {
    /// A state with no detail.
    pub fn new(path: &str, state: &'static str) -> Self {
        Self {
            path: path.to_owned(),
            state,
            detail: None,
            attempts: 0,
            next_attempt_at: None,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    last_error: Option<LastError>,
    boot: Option<BootState>,
    warning: Option<String>,
    warnings_logged: u64,
}

/// Shared by the expiry monitor, boot-file pairing and the `/status` section.
#[derive(Debug, Clone, Default)]
pub struct Report(Arc<Mutex<Inner>>);

impl Report {
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        // A panic elsewhere while holding the lock leaves plain data: keep using it.
        let mut g = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut g)
    }

    /// Records a failed attempt.
    pub fn set_error(&self, e: LastError) {
        self.with(|i| i.last_error = Some(e));
    }

    /// Forgets the last error (after a successful pairing).
    pub fn clear_error(&self) {
        self.with(|i| i.last_error = None);
    }

    /// The last error.
    pub fn last_error(&self) -> Option<LastError> {
        self.with(|i| i.last_error.clone())
    }

    /// Sets the boot-file state.
    pub fn set_boot(&self, b: BootState) {
        self.with(|i| i.boot = Some(b));
    }

    /// The boot-file state.
    pub fn boot(&self) -> Option<BootState> {
        self.with(|i| i.boot.clone())
    }

    /// Sets (or clears) the expiry warning.
    pub fn set_warning(&self, w: Option<String>) {
        self.with(|i| i.warning = w);
    }

    /// The expiry warning.
    pub fn warning(&self) -> Option<String> {
        self.with(|i| i.warning.clone())
    }

    /// Counts an expiry warning written to the log.
    pub fn count_warning_logged(&self) {
        self.with(|i| i.warnings_logged += 1);
    }

    /// How many expiry warnings were logged (tests check the once-an-hour limit).
    pub fn warnings_logged(&self) -> u64 {
        self.with(|i| i.warnings_logged)
    }
}

/// What the "pairing" section is built from.
#[derive(Debug, Clone)]
pub struct View {
    /// The credentials.
    pub creds: CredentialStore,
    /// Errors, warnings, the boot file.
    pub report: Report,
    /// The clock for the token's expiry.
    pub clock: SharedClock,
    /// `[upstream] token_warn_hours`.
    pub warn: Duration,
    /// The device facts (`needs_pairing` from the link, `not_activated`).
    pub hub: crate::signal::StatusHub,
    /// The activation assessment (§a.5).
    pub activation: super::activation::Shared,
}

/// Builds the "pairing" section. `needs_action` is true whenever a person must act
/// (the state is `needs_pairing`, the token expired or is unreadable, central refuses
/// the device); `action` then says what to do.
pub fn section(v: &View) -> Value {
    let current = v.creds.current();
    let now = v.clock.now();
    let (state, left) = assess(current.as_ref(), now, v.warn);
    let activation = *v
        .activation
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let facts = v.hub.facts();
    let token = current.as_ref().map(|c| {
        json!({
            "expires_at": c.expires_at,
            "state": state,
            "seconds_left": left,
            "days_left": left.map(|s| s.max(0) / 86_400),
            "hours_left": left.map(|s| s.max(0) / 3_600),
        })
    });
    let action = super::activation::action(activation, current.as_ref()).or_else(|| {
        let expired = matches!(state, TokenState::Expired | TokenState::Unreadable);
        (facts.needs_pairing || expired).then(|| match (current.is_some(), expired) {
            (false, _) => "This box is not paired (or its credentials are unreadable): get an enrollment code from the CivicPress operator and run `bbedge pair`.".to_owned(),
            (true, true) => "The device token expired or is unreadable: ask the CivicPress operator to re-issue a code for this device and run `bbedge pair` with it.".to_owned(),
            (true, false) => "CivicPress refuses this box's credentials: see upstream.needs_pairing_reason; ask the operator to re-issue a code (or set the device active) and run `bbedge pair` with it.".to_owned(),
        })
    });
    json!({
        "paired": current.is_some(),
        "token_state": state,
        "device_uuid": current.as_ref().map(|c| c.device_uuid.clone()),
        "device_id": current.as_ref().map(|c| c.device_id.clone()),
        "name": current.as_ref().map(|c| c.name.clone()),
        "server": current.as_ref().map(|c| c.server.clone()),
        "realtime_url": current.as_ref().map(|c| c.realtime_url.clone()),
        "paired_at": current.as_ref().map(|c| c.paired_at.clone()),
        "key_registered": current.as_ref().map(|c| c.key_registered),
        "device_status": current.as_ref().and_then(|c| c.device_status.clone()),
        "activation": activation,
        "token": token,
        "warning": v.report.warning(),
        "last_error": v.report.last_error(),
        "boot_file": v.report.boot(),
        "needs_action": action.is_some(),
        "action": action,
    })
}
