//! Prometheus metrics: one registry filled by every service at build time, encoded as
//! text exposition on `/metrics` (prometheus-client, so the format is not hand-written).
//! Every metric is listed in docs/METRICS.md (tests/metrics.rs keeps the two equal).
//!
//! Naming: `bbedge_` prefix except the standard `process_*` metrics; cumulative counts
//! are counters (exposed as `…_total`); a point in time is a `…_timestamp_seconds` gauge
//! (Unix seconds) whose sample is absent until the event happened ([`OptionalGauge`]).
//! Frames are counted in one scheme across the local rooms and the upstream link:
//! `bbedge_frames_total{link,direction}` and `bbedge_frames_dropped_total{link,reason}`
//! ([`Metrics::frames`], [`Metrics::frames_dropped`]), with bounded label values only.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::sync::{Arc, Mutex};

/// A hook run before each scrape, to refresh gauges read from elsewhere (RSS, store size).
pub type ScrapeHook = Box<dyn Fn() + Send + Sync>;

/// Reads a cumulative count at scrape time.
pub type CountFn = Box<dyn Fn() -> u64 + Send + Sync>;

/// Reads a value at scrape time; `None` leaves the sample out.
pub type ValueFn = Box<dyn Fn() -> Option<i64> + Send + Sync>;

/// The `link` label of the frame metrics: where a frame came from or went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// The local `device:<uuid>` rooms on the LAN.
    Room,
    /// The WSS link to central.
    Upstream,
}

impl Link {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Link::Room => "room",
            Link::Upstream => "upstream",
        }
    }
}

/// The `direction` label of `bbedge_frames_total`, seen from bbedge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Received by bbedge.
    In,
    /// Sent by bbedge.
    Out,
}

impl Direction {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

/// A label set of bounded values.
pub type Labels = Vec<(&'static str, &'static str)>;

/// A counter family whose samples are added one by one, each read at scrape time from
/// the count its service keeps. Labels are `&'static str`: no value a peer sends can
/// become a label. Clones share the samples.
#[derive(Clone)]
pub struct CounterRows {
    name: &'static str,
    help: &'static str,
    rows: Arc<Mutex<Vec<(Labels, CountFn)>>>,
}

impl std::fmt::Debug for CounterRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CounterRows")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl CounterRows {
    /// An empty family named `name` (without the registry's prefix and `_total`).
    pub fn new(name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            help,
            rows: Arc::default(),
        }
    }

    /// Adds the sample with `labels`, read by `read` at scrape.
    pub fn add(&self, labels: Labels, read: CountFn) {
        if let Ok(mut rows) = self.rows.lock() {
            rows.push((labels, read));
        }
    }
}

impl Collector for CounterRows {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let help = format!("{}.", self.help); // as `Registry::register` writes it
        let mut family = encoder.encode_descriptor(self.name, &help, None, MetricType::Counter)?;
        let Ok(rows) = self.rows.lock() else {
            return Ok(());
        };
        for (labels, read) in rows.iter() {
            if labels.is_empty() {
                // Without `{}`: a family of one unlabelled sample.
                family.encode_counter::<NoLabelSet, u64, u64>(&read(), None)?;
            } else {
                let mut sample = family.encode_family(labels)?;
                sample.encode_counter::<NoLabelSet, u64, u64>(&read(), None)?;
            }
        }
        Ok(())
    }
}

/// A gauge without labels whose sample is left out while its reader returns `None`: a
/// `…_timestamp_seconds` of an event that has not happened yet has no value, rather
/// than a sentinel such as 0 or -1.
pub struct OptionalGauge {
    name: &'static str,
    help: &'static str,
    read: ValueFn,
}

impl std::fmt::Debug for OptionalGauge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OptionalGauge")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl OptionalGauge {
    /// A gauge named `name` (without the registry's prefix) read by `read` at scrape.
    pub fn new(name: &'static str, help: &'static str, read: ValueFn) -> Self {
        Self { name, help, read }
    }
}

impl Collector for OptionalGauge {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let value = (self.read)();
        let help = format!("{}.", self.help); // as `Registry::register` writes it
        let family = encoder.encode_descriptor(self.name, &help, None, MetricType::Gauge)?;
        match value {
            Some(v) => ConstGauge::new(v).encode(family),
            None => Ok(()),
        }
    }
}

/// The registry and its scrape hooks. Built mutable, then shared read-only.
pub struct Metrics {
    /// The standard `process_*` metrics, without the `bbedge` prefix, as every
    /// Prometheus client library names them.
    process: Registry,
    registry: Registry,
    hooks: Vec<ScrapeHook>,
    frames: CounterRows,
    frames_dropped: CounterRows,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// An empty registry with the `bbedge` prefix, holding the shared frame families.
    pub fn new() -> Self {
        let frames = CounterRows::new(
            "frames",
            "Frames received and sent, by link (room, upstream) and direction (in, out)",
        );
        let frames_dropped = CounterRows::new(
            "frames_dropped",
            "Frames dropped or refused, by link (room, upstream) and reason",
        );
        let mut registry = Registry::with_prefix("bbedge");
        registry.register_collector(Box::new(frames.clone()));
        registry.register_collector(Box::new(frames_dropped.clone()));
        Self {
            process: Registry::default(),
            registry,
            hooks: Vec::new(),
            frames,
            frames_dropped,
        }
    }

    /// The registry, for services to register their metrics (`bbedge_` is prefixed).
    pub fn registry(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// The registry of the standard `process_*` metrics (no prefix).
    pub fn process_registry(&mut self) -> &mut Registry {
        &mut self.process
    }

    /// Adds the `bbedge_frames_total{link,direction}` sample of `link` and `direction`,
    /// read by `read` (a cumulative count) at scrape.
    pub fn frames(&self, link: Link, direction: Direction, read: CountFn) {
        self.frames.add(
            vec![("link", link.as_str()), ("direction", direction.as_str())],
            read,
        );
    }

    /// Adds the `bbedge_frames_dropped_total{link,reason}` sample of `link` and
    /// `reason` (a stable code), read by `read` (a cumulative count) at scrape.
    pub fn frames_dropped(&self, link: Link, reason: &'static str, read: CountFn) {
        self.frames_dropped
            .add(vec![("link", link.as_str()), ("reason", reason)], read);
    }

    /// Runs `hook` before every scrape.
    pub fn on_scrape(&mut self, hook: ScrapeHook) {
        self.hooks.push(hook);
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        for hook in &self.hooks {
            hook();
        }
        let mut out = String::new();
        let encoded = prometheus_client::encoding::text::encode_registry(&mut out, &self.process)
            .and_then(|()| prometheus_client::encoding::text::encode(&mut out, &self.registry));
        if let Err(e) = encoded {
            tracing::error!(operation = "metrics.encode", error = %e, "cannot encode metrics");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_from_two_links_are_one_family_and_counters() {
        let m = Metrics::new();
        m.frames(Link::Room, Direction::In, Box::new(|| 3));
        m.frames(Link::Upstream, Direction::Out, Box::new(|| 5));
        m.frames_dropped(Link::Room, "not_json", Box::new(|| 1));
        let text = m.encode();
        assert_eq!(
            text.matches("# TYPE bbedge_frames counter").count(),
            1,
            "{text}"
        );
        assert!(
            text.contains("bbedge_frames_total{link=\"room\",direction=\"in\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("bbedge_frames_total{link=\"upstream\",direction=\"out\"} 5\n"),
            "{text}"
        );
        assert!(
            text.contains("bbedge_frames_dropped_total{link=\"room\",reason=\"not_json\"} 1\n"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "one EOF, at the end: {text}");
        assert_eq!(text.matches("# EOF").count(), 1);
    }

    #[test]
    fn an_optional_gauge_has_no_sample_until_it_has_a_value() {
        let value = Arc::new(std::sync::atomic::AtomicI64::new(0));
        let mut m = Metrics::new();
        let v = value.clone();
        m.registry().register_collector(Box::new(OptionalGauge::new(
            "thing_timestamp_seconds",
            "When the thing happened",
            Box::new(move || Some(v.load(std::sync::atomic::Ordering::Relaxed)).filter(|t| *t > 0)),
        )));
        let before = m.encode();
        assert!(
            before.contains("# TYPE bbedge_thing_timestamp_seconds gauge"),
            "{before}"
        );
        assert!(
            !before.contains("\nbbedge_thing_timestamp_seconds "),
            "{before}"
        );
        value.store(1_700_000_000, std::sync::atomic::Ordering::Relaxed);
        let after = m.encode();
        assert!(
            after.contains("\nbbedge_thing_timestamp_seconds 1700000000\n"),
            "{after}"
        );
    }
}
