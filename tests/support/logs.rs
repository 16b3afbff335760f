//! Log capture for tests that name the log line a behaviour must produce: every line
//! of a current-thread test runtime (set the subscriber with
//! `tracing::subscriber::set_default`), at trace level, as JSON.

use std::sync::{Arc, Mutex};

/// The captured lines. Cheap to clone; every clone writes to the same buffer.
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    /// A JSON subscriber writing here.
    pub fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync {
        let me = self.clone();
        tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || me.clone())
            .finish()
    }

    /// Captures every line of this thread (the current-thread test runtime) until the
    /// guard drops. The interest cache is rebuilt once the subscriber is in place:
    /// otherwise a callsite (or tracing's global max level) decided by another test's
    /// thread, which has no subscriber, while this one was being registered can stay
    /// "off" and the capture stays empty (seen once under qemu).
    pub fn install() -> (Self, tracing::subscriber::DefaultGuard) {
        let me = Self::default();
        let guard = tracing::subscriber::set_default(me.subscriber());
        tracing::callsite::rebuild_interest_cache();
        (me, guard)
    }

    /// Everything captured so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log buffer")).into_owned()
    }

    /// How many captured lines contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.text().lines().filter(|l| l.contains(needle)).count()
    }
}
