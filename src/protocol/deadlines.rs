//! The one table of command deadlines (contract §d.3): how long central waits for an
//! ack per action, and how much of that bbedge keeps back for its own answer.
//!
//! Both the upstream relay and the local device room read it: central's command gets
//! the agent's ack or bbedge's `TIMEOUT` before central's own deadline; a LAN operator
//! (for whom the room stands in for central) gets the same deadline central would give.
//!
//! | action | central's deadline | margin | the agent gets (upstream) |
//! |---|---|---|---|
//! | default, `start_session` included | 5 s | 1.5 s | 3.5 s |
//! | `sources.set`, `switch_source` | 15 s | 3 s | 12 s |
//! | `preview.start`, `preview.stop` | 20 s | 3 s | 17 s |

use std::time::Duration;

/// One row: `(actions, central's deadline, margin)`. The last row is the default.
pub const TABLE: [(&[&str], Duration, Duration); 3] = [
    (
        &["sources.set", "switch_source"],
        Duration::from_secs(15),
        Duration::from_secs(3),
    ),
    (
        &["preview.start", "preview.stop"],
        Duration::from_secs(20),
        Duration::from_secs(3),
    ),
    (&[], Duration::from_secs(5), Duration::from_millis(1500)),
];

fn row(action: &str) -> (Duration, Duration) {
    TABLE
        .iter()
        .find(|(actions, _, _)| actions.is_empty() || actions.contains(&action))
        .map_or(
            (Duration::from_secs(5), Duration::from_millis(1500)),
            |(_, central, margin)| (*central, *margin),
        )
}

/// Central's ack deadline for `action`: after it central answers the operator 504.
pub fn central(action: &str) -> Duration {
    row(action).0
}

/// Time kept back from central's deadline for bbedge's own answer, the rate budget (at
/// most one window) and the network.
pub fn margin(action: &str) -> Duration {
    row(action).1
}

/// How long the agent has to ack a command from central before bbedge answers for it.
pub fn agent(action: &str) -> Duration {
    central(action).saturating_sub(margin(action))
}

/// The `errorCode` bbedge's own timeout ack carries: central turns only `TIMEOUT` (or a
/// message with "timeout") into the operator's 504 "device did not respond".
pub const TIMEOUT_CODE: &str = "TIMEOUT";
/// The message of that ack (contains "timeout" too, for older centrals).
pub const TIMEOUT_MESSAGE: &str = "timeout: the capture agent did not acknowledge in time";
/// bbedge's own code for it, kept in `errorDetails.bbedgeCode` and the logs.
pub const AGENT_TIMEOUT: &str = "AGENT_TIMEOUT";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_and_margins_per_action() {
        let table = [
            ("start_session", 5, 3500),
            ("stop_session", 5, 3500),
            ("get_status", 5, 3500),
            ("sources.set", 15, 12_000),
            ("switch_source", 15, 12_000),
            ("preview.start", 20, 17_000),
            ("preview.stop", 20, 17_000),
            ("watermark.set", 5, 3500),
        ];
        for (action, server, agent_ms) in table {
            assert_eq!(central(action), Duration::from_secs(server), "{action}");
            assert_eq!(agent(action), Duration::from_millis(agent_ms), "{action}");
            assert!(margin(action) < central(action), "{action}");
        }
    }
}
