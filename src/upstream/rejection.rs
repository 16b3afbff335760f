//! What a rejection (4003/4001, or an `auth_failed` frame) means (contract §c.4, §b.5,
//! §b.6): probe the token unless it has expired, decide `needs_pairing` and say why on
//! `/status`, the metrics and the log. The delay is the reconnect loop's (the cap).

use super::probe::{Outcome, Prober};
use super::{stats, Upstream, REJECTIONS_BEFORE_NEEDS_PAIRING};
use crate::pairing::Credentials;
use tokio_util::sync::CancellationToken;

/// Why a rejection asks for pairing, or `None` when it does not. `frame`: central sent
/// `auth_failed` (§b.5: treat it like an expired token). `unexplained`: rejections in a
/// row the probe could not explain, this one included.
pub fn needs_pairing_reason(
    expired: bool,
    frame: bool,
    outcome: Option<&Outcome>,
    unexplained: u64,
) -> Option<&'static str> {
    match outcome {
        _ if expired => Some("token_expired"),
        Some(Outcome::DeviceInactive) => Some("device_inactive"),
        Some(Outcome::TokenInvalid { .. }) => Some("token_invalid"),
        _ if frame => Some("auth_failed_frame"),
        Some(Outcome::TokenOk) => None,
        _ if unexplained >= REJECTIONS_BEFORE_NEEDS_PAIRING => Some("repeated_rejections"),
        _ => None,
    }
}

impl Upstream {
    /// A rejection (4003/4001, or an `auth_failed` frame when `code` is 0): probes the
    /// token unless it has expired, then decides `needs_pairing` (contract §c.4).
    /// `true` when shutting down.
    pub(crate) async fn rejected(
        &mut self,
        code: u16,
        expired: bool,
        prober: &Prober,
        creds: &Credentials,
        token: &CancellationToken,
    ) -> bool {
        let outcome = if expired {
            None
        } else {
            tokio::select! {
                () = token.cancelled() => return true,
                o = prober.probe(&creds.server, &creds.token) => Some(o),
            }
        };
        let (n, reason) = self.link.rejected(expired, code == 0, outcome.as_ref());
        // The hub first, then the counters: whoever sees the count sees the decision.
        if reason.is_some() {
            self.hub.update(|f| f.needs_pairing = true);
        }
        // An expired token is not probed; the last probe stays on show.
        if let Some(o) = &outcome {
            self.stats.info(|i| {
                i.last_probe = Some(stats::ProbeReport {
                    outcome: o.label(),
                    detail: o.detail(),
                    at: crate::protocol::now_rfc3339(),
                });
            });
            stats::inc(&self.stats.probes[o.index()]);
        }
        self.publish();
        let probe = outcome.as_ref().map_or("skipped", Outcome::label);
        let detail = outcome.as_ref().map(Outcome::detail).unwrap_or_default();
        let message = match &outcome {
            Some(Outcome::DeviceInactive) => "central says the device is suspended or revoked; an operator must reactivate it in CivicPress",
            Some(Outcome::TokenInvalid { .. }) => "central no longer accepts the device token; pair again with a fresh code",
            Some(Outcome::TokenOk) => "central refused the connection but accepts the token; retrying later",
            _ => "central rejected the device token",
        };
        tracing::warn!(
            operation = "upstream.connect",
            close_code = code,
            rejections = n,
            token_expired = expired,
            probe,
            probe_detail = %detail,
            needs_pairing = reason.is_some(),
            "{message}"
        );
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// expired, `auth_failed` frame, probe outcome, unexplained in a row → reason.
    type Row<'a> = (bool, bool, Option<&'a Outcome>, u64, Option<&'a str>);

    #[test]
    fn a_named_cause_decides_at_once_and_silence_needs_three_in_a_row() {
        let unknown = Outcome::Unknown {
            detail: "HTTP_404".into(),
        };
        let invalid = Outcome::TokenInvalid {
            code: "AUTH_FAILED".into(),
        };
        let table: [Row<'_>; 9] = [
            (true, false, None, 1, Some("token_expired")),
            (
                false,
                false,
                Some(&Outcome::DeviceInactive),
                0,
                Some("device_inactive"),
            ),
            (false, false, Some(&invalid), 0, Some("token_invalid")),
            (false, false, Some(&Outcome::TokenOk), 0, None),
            (
                false,
                true,
                Some(&Outcome::TokenOk),
                0,
                Some("auth_failed_frame"),
            ),
            (false, false, Some(&unknown), 1, None),
            (false, false, Some(&unknown), 2, None),
            (false, false, Some(&unknown), 3, Some("repeated_rejections")),
            (false, false, None, 3, Some("repeated_rejections")),
        ];
        for (expired, frame, outcome, n, want) in table {
            assert_eq!(
                needs_pairing_reason(expired, frame, outcome, n),
                want,
                "{expired} {frame} {outcome:?} {n}"
            );
        }
    }
}
