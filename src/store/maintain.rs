//! The store's own task: reports failures once per interval with a count, writes a
//! token file that could not be written, and brings a failing database back without a
//! restart: first a probe write and flush; if that fails (sled keeps the first I/O
//! error and fails every later operation, so after ENOSPC it stays poisoned even once
//! space is back), the database is closed and opened again, verified like at start.

use super::health::Part;
use super::{open, Error, Store, Tree};
use crate::error::ErrorCode;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Runs until cancelled: while there is work (failures to report, a database to
/// recover, a token file to write), every `interval` a report and a recovery attempt;
/// while there is none, no timer at all (an idle box wakes for nothing), until the next
/// failure. `on_fault` is called with the fault state at start and whenever it changes.
pub async fn run(
    store: Store,
    interval: Duration,
    on_fault: impl Fn(bool) + Send + 'static,
    token: CancellationToken,
) {
    let mut fault = store.health().subscribe();
    on_fault(*fault.borrow_and_update());
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut idle = true;
    loop {
        let work = needs_tending(&store);
        if idle && work {
            // The first round an interval after the work came, with a count of it.
            tick.reset();
        }
        idle = !work;
        tokio::select! {
            () = token.cancelled() => return,
            r = fault.changed() => {
                if r.is_err() { return }
                on_fault(*fault.borrow_and_update());
            }
            () = store.health().failure(), if idle => {}
            _ = tick.tick(), if !idle => tend(&store, interval).await,
        }
    }
}

/// Whether a round would do anything.
fn needs_tending(store: &Store) -> bool {
    store.health().needs_tending() || store.keep().dirty()
}

/// One round: report, write the token file, recover the database.
pub async fn tend(store: &Store, interval: Duration) {
    let (failed, last) = store.health().take_unreported();
    if failed > 0 {
        tracing::warn!(
            operation = "store.failures",
            failed,
            interval_s = interval.as_secs(),
            last_error = last.as_deref().unwrap_or(""),
            "storage writes failed in the last interval"
        );
    }
    if store.keep().dirty() {
        let _ = store.commit_keep();
    }
    if store.health().db_failing() {
        recover(store).await;
    }
}

/// Probe, then reopen if the probe fails. Returns whether the database works now.
pub async fn recover(store: &Store) -> bool {
    if probe(store).await.is_ok() {
        return true;
    }
    let s = store.clone();
    let reopened = tokio::task::spawn_blocking(move || reopen(&s))
        .await
        .unwrap_or_else(|e| Err(Error::Check(format!("the reopen task failed: {e}"))));
    match reopened {
        Ok(()) => probe(store).await.is_ok(),
        Err(e) => {
            store.health().failed(Part::Db, "store.reopen", &e);
            tracing::debug!(operation = "store.reopen", code = e.code(), error = %e, "cannot reopen the database yet");
            false
        }
    }
}

/// A small write and a flush: succeeds once storage works again.
async fn probe(store: &Store) -> Result<(), Error> {
    store.put(Tree::Meta, b"probe", &crate::protocol::now_ms())?;
    store.flush().await.map(|_| ())
}

/// Closes the database and opens it again (verified by the checker when there is one).
/// While this runs, store operations fail with [`Error::Reopening`].
fn reopen(store: &Store) -> Result<(), Error> {
    let inner = &store.inner;
    // sled's file lock goes with the last handle: drop ours before opening again. The
    // lock is not held while opening (that may take the checker's whole timeout).
    let old = inner
        .db
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    drop(old);
    let (db, quarantined) = open::open_db(&inner.path, inner.cache_bytes, inner.checker.as_ref())?;
    *inner
        .db
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(db);
    inner.health.reopened();
    if quarantined.is_some() {
        inner.health.quarantined();
    }
    tracing::info!(operation = "store.reopen", path = %inner.path.display(), "database reopened");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::health::Part;

    #[tokio::test(start_paused = true)]
    async fn after_a_quiet_while_a_failure_is_reported_one_interval_later() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::open(&dir.path().join("db"), 1 << 20)
            .unwrap()
            .store;
        let interval = Duration::from_secs(5);
        let token = CancellationToken::new();
        let task = tokio::spawn(run(store.clone(), interval, |_| {}, token.clone()));
        // Not a multiple of the interval: a ticking task would report sooner.
        tokio::time::sleep(Duration::from_secs(3602)).await;
        assert!(!store.health().needs_tending());
        // The outbox refuses three frames: the first is logged at once, two are counted.
        for _ in 0..3 {
            store
                .health()
                .failed(Part::Outbox, "outbox.push", &Error::Full);
        }
        assert!(store.health().needs_tending());
        tokio::time::sleep(Duration::from_millis(4_999)).await;
        assert!(
            store.health().needs_tending(),
            "counted for a whole interval"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert!(
            !store.health().needs_tending(),
            "reported an interval after the first failure"
        );
        assert!(
            store.health().is_faulty(),
            "the outbox clears its own fault"
        );
        token.cancel();
        task.await.unwrap();
    }
}
