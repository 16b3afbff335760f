//! Prometheus metrics: one registry filled by every service at build time, encoded as
//! text exposition on `/metrics` (prometheus-client, so the format is not hand-written).

use prometheus_client::registry::Registry;

/// A hook run before each scrape, to refresh gauges read from elsewhere (RSS, store size).
pub type ScrapeHook = Box<dyn Fn() + Send + Sync>;

/// The registry and its scrape hooks. Built mutable, then shared read-only.
pub struct Metrics {
    registry: Registry,
    hooks: Vec<ScrapeHook>,
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
    /// An empty registry with the `bbedge` prefix.
    pub fn new() -> Self {
        Self {
            registry: Registry::with_prefix("bbedge"),
            hooks: Vec::new(),
        }
    }

    /// The registry, for services to register their metrics.
    pub fn registry(&mut self) -> &mut Registry {
        &mut self.registry
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
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(operation = "metrics.encode", error = %e, "cannot encode metrics");
        }
        out
    }
}
