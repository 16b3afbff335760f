//! What the link reports: the `/status` "upstream" section and the `bbedge_upstream_*`
//! metrics (with the link's samples of `bbedge_frames_total` and
//! `bbedge_frames_dropped_total`), from one set of shared counters. Write-only for the link: nothing here
//! decides anything ([`super::state::Link`] does); [`LinkInfo`] is the copy of the
//! link's state that [`super::Upstream::publish`] keeps. Cumulative counts are
//! exported as Prometheus counters (`…_total`), levels as gauges.

use super::outbox::Outbox;
use super::state::LinkState;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Link facts that are not counters.
#[derive(Debug, Default, Clone)]
pub struct LinkInfo {
    /// The link's state ([`LinkState::name`] gives the `/status` text).
    pub state: LinkState,
    /// Rejections in a row since the last acknowledged connection.
    pub rejections: u64,
    /// The room URL (never carries the token).
    pub url: Option<String>,
    /// When the current connection was acknowledged, RFC 3339.
    pub connected_since: Option<String>,
    /// The last error code (close code name, `TLS_CERTIFICATE`, …) since the last
    /// acknowledged connection (an acknowledgement clears it).
    pub last_error: Option<String>,
    /// The attempt [`LinkInfo::last_error`] belongs to.
    pub last_error_attempt: Option<u64>,
    /// When it happened, RFC 3339.
    pub last_error_at: Option<String>,
    /// Central's `clientId` for this socket.
    pub client_id: Option<String>,
    /// Central's clock minus ours, ms (from the JSON pong).
    pub clock_skew_ms: Option<i64>,
    /// When the next connection attempt is due while backing off.
    pub retry_at: Option<std::time::Instant>,
    /// The last token probe after a rejection (§b.6).
    pub last_probe: Option<ProbeReport>,
    /// Why the link set `needs_pairing` (`token_expired`, `device_inactive`,
    /// `token_invalid`, `auth_failed_frame`, `repeated_rejections`, `re_enrolled`);
    /// cleared by the next acknowledged connection.
    pub needs_pairing_reason: Option<&'static str>,
}

/// One token probe as `/status` shows it.
#[derive(Debug, Clone)]
pub struct ProbeReport {
    /// [`super::probe::Outcome::label`].
    pub outcome: &'static str,
    /// Central's `error.code`, `HTTP_<status>`, or what failed.
    pub detail: String,
    /// When, RFC 3339.
    pub at: String,
}

/// Counters shared by the link task, the intake task, `/status` and `/metrics`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Non-counter facts.
    pub info: Mutex<LinkInfo>,
    /// Connection attempts.
    pub attempts: AtomicU64,
    /// Connections acknowledged by central.
    pub connects: AtomicU64,
    /// Frames written upstream.
    pub frames_out: AtomicU64,
    /// Frames read from central.
    pub frames_in: AtomicU64,
    /// Inbound frames that were not JSON objects or missed required fields.
    pub malformed_in: AtomicU64,
    /// Inbound frames of a type bbedge does not act on.
    pub unknown_in: AtomicU64,
    /// Times a frame waited for the rate budget.
    pub budget_waits: AtomicU64,
    /// Acks dropped because their command's deadline passed.
    pub ack_expired: AtomicU64,
    /// Preview frames dropped while offline or with the live queue full.
    pub preview_dropped: AtomicU64,
    /// Agent frames refused (`STORE_FULL`, store error, unknown type).
    pub refused: AtomicU64,
    /// Token probes by outcome, in [`super::probe::LABELS`] order.
    pub probes: [AtomicU64; 4],
    /// Connections refused with 4029 (a connection cap, §g.2).
    pub limited: AtomicU64,
    /// Voluntary clean reconnects after an unclean drop (§g.1).
    pub clean_reconnects: AtomicU64,
    /// Commands answered by bbedge with `AGENT_NOT_CONNECTED`/`AGENT_TIMEOUT`.
    pub agent_failures: AtomicU64,
    /// Whether the signing key could sign the last manifest that needed it.
    pub signing: super::signing::KeyState,
}

/// Adds one.
pub fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

impl Stats {
    /// Changes the link facts.
    pub fn info(&self, f: impl FnOnce(&mut LinkInfo)) {
        if let Ok(mut i) = self.info.lock() {
            f(&mut i);
        }
    }

    /// The `/status` section.
    pub fn section(&self, outbox: &Outbox) -> Value {
        let info = self.info.lock().map(|i| i.clone()).unwrap_or_default();
        let d = outbox.depth();
        let now = crate::protocol::now_ms();
        let key = self.signing.problem();
        json!({
            "state": info.state.name(d.frames > 0),
            "url": info.url,
            "connected_since": info.connected_since,
            "client_id": info.client_id,
            "last_error": info.last_error,
            "last_error_attempt": info.last_error_attempt,
            "last_error_at": info.last_error_at,
            "clock_skew_ms": info.clock_skew_ms,
            "retry_in_ms": info.retry_at.map(|t| t.saturating_duration_since(std::time::Instant::now()).as_millis() as u64),
            "connect_attempts": get(&self.attempts),
            "reconnects": get(&self.connects).saturating_sub(1),
            "rejections_in_a_row": info.rejections,
            "needs_pairing_reason": info.needs_pairing_reason,
            "last_probe": info.last_probe.as_ref().map(|p| json!({
                "outcome": p.outcome, "detail": p.detail, "at": p.at,
            })),
            "probes": super::probe::LABELS.iter().zip(&self.probes)
                .map(|(l, n)| (l.to_string(), json!(get(n))))
                .collect::<serde_json::Map<_, _>>(),
            "connection_limit_closes": get(&self.limited),
            "clean_reconnects": get(&self.clean_reconnects),
            "frames_in": get(&self.frames_in),
            "frames_out": get(&self.frames_out),
            "malformed_in": get(&self.malformed_in),
            "unknown_in": get(&self.unknown_in),
            "rate_budget_waits": get(&self.budget_waits),
            "agent_failures": get(&self.agent_failures),
            "outbox": {
                "frames": d.frames,
                "bytes": d.bytes,
                "manifests": d.manifests,
                "oldest_age_s": outbox.oldest_age_ms(now).map(|ms| ms / 1000),
            },
            "signing": {
                "key": if key.is_some() { "unavailable" } else { "ok" },
                "error": key.as_ref().map(|p| p.error.clone()),
                "since": key.as_ref().map(|p| p.since.clone()),
                "manifests_waiting": if key.is_some() { d.manifests } else { 0 },
            },
            "dropped": {
                "outbox_overflow": d.dropped_overflow,
                "outbox_age": d.dropped_age,
                "store_full": d.refused_full,
                "ack_expired": get(&self.ack_expired),
                "preview": get(&self.preview_dropped),
                "refused": get(&self.refused),
            },
        })
    }

    /// Registers `bbedge_upstream_*` metrics, refreshed on every scrape, and the link's
    /// samples of `bbedge_frames_total` and `bbedge_frames_dropped_total`
    /// (`link="upstream"`).
    pub fn register(
        self: &Arc<Self>,
        metrics: &mut crate::health::metrics::Metrics,
        outbox: Outbox,
    ) {
        use crate::health::metrics::{Direction, Link};
        for (direction, read) in [
            (
                Direction::In,
                (|s: &Stats| get(&s.frames_in)) as fn(&Stats) -> u64,
            ),
            (Direction::Out, |s: &Stats| get(&s.frames_out)),
        ] {
            let me = self.clone();
            metrics.frames(Link::Upstream, direction, Box::new(move || read(&me)));
        }
        type Read = fn(&Stats, &super::outbox::Depth) -> u64;
        let reasons: [(&'static str, Read); 6] = [
            ("outbox_overflow", |_, d| d.dropped_overflow),
            ("outbox_age", |_, d| d.dropped_age),
            ("store_full", |_, d| d.refused_full),
            ("ack_expired", |s, _| get(&s.ack_expired)),
            ("preview", |s, _| get(&s.preview_dropped)),
            ("malformed_in", |s, _| get(&s.malformed_in)),
        ];
        for (reason, read) in reasons {
            let (me, outbox) = (self.clone(), outbox.clone());
            metrics.frames_dropped(
                Link::Upstream,
                reason,
                Box::new(move || read(&me, &outbox.depth())),
            );
        }
        let online = Gauge::<i64>::default();
        let depth = Gauge::<i64>::default();
        let bytes = Gauge::<i64>::default();
        let attempts = Counter::<u64>::default();
        let waiting_for_key = Gauge::<i64>::default();
        let probes = Family::<Vec<(String, String)>, Counter>::default();
        let reg = metrics.registry();
        reg.register(
            "upstream_token_probes",
            "Token probes after a rejection, by outcome (contract b.6)",
            probes.clone(),
        );
        reg.register(
            "upstream_online",
            "1 while central has acknowledged the link",
            online.clone(),
        );
        reg.register(
            "upstream_outbox_frames",
            "Frames waiting in the outbox",
            depth.clone(),
        );
        reg.register(
            "upstream_outbox_bytes",
            "Bytes waiting in the outbox",
            bytes.clone(),
        );
        reg.register(
            "upstream_connect_attempts",
            "Connection attempts to central",
            attempts.clone(),
        );
        reg.register(
            "upstream_manifests_waiting_for_key",
            "Session manifests held in the outbox because the signing key is unavailable",
            waiting_for_key.clone(),
        );
        let me = self.clone();
        let seen_attempts = AtomicU64::new(0);
        let seen_probes: [AtomicU64; 4] = Default::default();
        metrics.on_scrape(Box::new(move || {
            let d = outbox.depth();
            let info_online = me.info.lock().is_ok_and(|i| i.state.is_online());
            online.set(i64::from(info_online));
            depth.set(d.frames as i64);
            bytes.set(d.bytes as i64);
            let held = if me.signing.problem().is_some() {
                d.manifests
            } else {
                0
            };
            waiting_for_key.set(held as i64);
            bump(&attempts, &seen_attempts, get(&me.attempts));
            let l = |k: &str, v: &str| vec![(k.to_owned(), v.to_owned())];
            for (i, label) in super::probe::LABELS.iter().enumerate() {
                bump(
                    &probes.get_or_create(&l("outcome", label)),
                    &seen_probes[i],
                    get(&me.probes[i]),
                );
            }
        }));
    }
}

/// Moves a Prometheus counter up to `now`, the cumulative count the link keeps.
fn bump(c: &Counter, seen: &AtomicU64, now: u64) {
    c.inc_by(now.saturating_sub(seen.swap(now, Ordering::Relaxed)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::outbox::{Kind, Limits};

    #[tokio::test]
    async fn manifests_waiting_for_the_key_show_on_status_and_metrics() {
        let dir = tempfile::tempdir().unwrap();
        let opened = crate::store::open(&dir.path().join("db"), 1 << 20).unwrap();
        let limits = Limits {
            max_frames: 10,
            max_bytes: 1 << 20,
            max_age_ms: 60_000,
            min_free_bytes: 0,
        };
        let outbox = Outbox::open(opened.store, limits).unwrap();
        outbox.accept(Kind::Manifest, "{}".into(), 0).await.unwrap();
        outbox.accept(Kind::Event, "{}".into(), 0).await.unwrap();
        let stats = Arc::new(Stats::default());
        let mut metrics = crate::health::metrics::Metrics::new();
        stats.register(&mut metrics, outbox.clone());
        let line = "bbedge_upstream_manifests_waiting_for_key ";
        assert!(metrics.encode().contains(&format!("{line}0")), "key fine");
        assert_eq!(stats.section(&outbox)["signing"]["key"], "ok");
        stats.signing.unavailable("cannot read k");
        let text = metrics.encode();
        assert!(text.contains(&format!("{line}1")), "{text}");
        let s = stats.section(&outbox);
        assert_eq!(s["signing"]["key"], "unavailable");
        assert_eq!(s["signing"]["error"], "cannot read k");
        assert_eq!(s["signing"]["manifests_waiting"], 1);
        assert_eq!(s["outbox"]["manifests"], 1, "the event is not counted");
        stats.signing.available();
        assert!(metrics.encode().contains(&format!("{line}0")));
    }

    #[tokio::test]
    async fn cumulative_counts_are_counters_named_total() {
        let dir = tempfile::tempdir().unwrap();
        let opened = crate::store::open(&dir.path().join("db"), 1 << 20).unwrap();
        let limits = Limits {
            max_frames: 10,
            max_bytes: 1 << 20,
            max_age_ms: 60_000,
            min_free_bytes: 0,
        };
        let outbox = Outbox::open(opened.store, limits).unwrap();
        let stats = Arc::new(Stats::default());
        let mut metrics = crate::health::metrics::Metrics::new();
        stats.register(&mut metrics, outbox);
        stats.frames_in.fetch_add(3, Ordering::Relaxed);
        inc(&stats.ack_expired);
        let text = metrics.encode();
        stats.frames_in.fetch_add(2, Ordering::Relaxed);
        let again = metrics.encode();
        for (t, want) in [(&text, 3), (&again, 5)] {
            assert!(
                t.contains(&format!(
                    "bbedge_frames_total{{link=\"upstream\",direction=\"in\"}} {want}"
                )),
                "{t}"
            );
        }
        for name in [
            "frames",
            "frames_dropped",
            "upstream_connect_attempts",
            "upstream_token_probes",
        ] {
            assert!(
                text.contains(&format!("# TYPE bbedge_{name} counter")),
                "{name}: {text}"
            );
        }
        assert!(
            again
                .contains(r#"bbedge_frames_dropped_total{link="upstream",reason="ack_expired"} 1"#),
            "scraped twice, counted once: {again}"
        );
    }
}
