//! Boot-file pairing: the installer drops `bbedge-pair.toml` on the SD card's boot
//! partition (server, device_uuid, code, optional name, realtime_url, room_location);
//! on start the daemon pairs with it in the background.
//!
//! Afterwards the code is removed from the file, which is rewritten atomically with the
//! other keys kept as a record and a comment saying what happened. A hash of every code
//! that was spent is also kept in the state directory, so a boot partition that cannot
//! be written never makes the box try a dead code again at every boot.
//!
//! Retries only when they can succeed: never after 422 (or any final answer); after
//! Retry-After on 429; on 5xx, network and TLS failures (at boot the network or the
//! clock may not be ready yet) with the link's backoff ([`Backoff`]: full jitter
//! between `retry_initial` and a ceiling doubling to `retry_max`), so a fleet powered
//! on together spreads its retries instead of hitting central in lockstep.

use super::boot_file::{fingerprint, mark_used, read, strip_code, was_used, BootFile, Found};
use super::failure::{PairError, Retry};
use super::register::{self, Inputs, Settings};
use super::status::{BootState, LastError, Report};
use super::CredentialStore;
use crate::error::ErrorCode;
use crate::signal::StatusHub;
use crate::upstream::backoff::Backoff;
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The background task.
#[derive(Debug, Clone)]
pub struct BootPairing {
    /// The boot file.
    pub path: PathBuf,
    /// Where the spent-code fingerprints live.
    pub state_dir: PathBuf,
    /// Files and transport.
    pub settings: Settings,
    /// Defaults for name and room location.
    pub device: crate::config::Device,
    /// First retry delay; doubles up to `retry_max`.
    pub retry_initial: Duration,
    /// Largest retry delay.
    pub retry_max: Duration,
    /// Reloaded after success.
    pub creds: CredentialStore,
    /// `pairing` while running; `needs_pairing` after a final failure when unpaired.
    pub hub: StatusHub,
    /// `/status`.
    pub report: Report,
}

impl BootPairing {
    fn boot(&self, state: &'static str, detail: Option<String>, attempts: u32) {
        let mut b = BootState::new(&self.path.display().to_string(), state);
        b.detail = detail;
        b.attempts = attempts;
        self.report.set_boot(b);
    }

    /// Reads and checks the file (at bind time, so `/status` shows its state at once).
    /// Returns the work left for [`BootJob::run`], if any.
    pub fn prepare(self) -> Option<BootJob> {
        let file = match read(&self.path) {
            Found::Absent => {
                self.boot("absent", None, 0);
                return None;
            }
            Found::Invalid(why) => {
                tracing::warn!(operation = "pairing.boot", path = %self.path.display(), reason = %why, "boot pairing file unusable");
                self.boot("invalid", Some(why), 0);
                return None;
            }
            Found::Ready(f) => f,
        };
        let Some(code) = file.code.clone() else {
            self.boot("no_code", None, 0);
            return None;
        };
        let inputs = Inputs {
            server: file.server.clone(),
            device_uuid: file.device_uuid.clone(),
            code,
            name: file.name.clone(),
            realtime_url: file.realtime_url.clone(),
            room_location: file.room_location.clone(),
        };
        let req = match inputs.check(&self.device, self.settings.allow_insecure) {
            Ok(r) => r,
            Err(e) => {
                self.give_up(&file, &e, 0, None);
                return None;
            }
        };
        let fp = fingerprint(req.device_uuid.as_str(), req.code.expose());
        if was_used(&self.state_dir, &fp) {
            let _ = strip_code(&self.path, &file, "it had been used already");
            let why = "the code in this file was used before; drop a file with a fresh code";
            self.boot("already_used", Some(why.into()), 0);
            return None;
        }
        self.boot("pending", None, 0);
        Some(BootJob {
            pairing: self,
            file,
            req,
            fp,
        })
    }
}

/// Boot-file pairing with a usable code: the part that talks to central.
#[derive(Debug)]
pub struct BootJob {
    pairing: BootPairing,
    file: BootFile,
    req: register::Request,
    fp: String,
}

impl BootJob {
    /// Pairs, retrying only what can succeed; returns when paired, failed for good,
    /// superseded by a `bbedge pair`, or cancelled.
    pub async fn run(self, token: CancellationToken) {
        let BootJob {
            pairing,
            file,
            req,
            fp,
        } = self;
        pairing.hub.update(|f| f.pairing = true);
        pairing.attempts(&token, &file, &req, &fp).await;
        pairing.hub.update(|f| f.pairing = false);
    }
}

/// The retry schedule: the link's [`Backoff`], one step in, so that even the first
/// retry is spread over `[initial, 2·initial]` (a fleet powered on together fails its
/// first attempt together; the link's first step is exactly `initial`).
pub fn retry_schedule(initial: Duration, max: Duration) -> Backoff {
    let mut b = Backoff::new(initial, max);
    let mut none = rand::rngs::mock::StepRng::new(0, 0);
    let _ = b.next_delay(&mut none);
    b
}

impl BootPairing {
    async fn attempts(
        &self,
        token: &CancellationToken,
        file: &BootFile,
        req: &register::Request,
        fp: &str,
    ) {
        let mut backoff = retry_schedule(self.retry_initial, self.retry_max);
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::from_entropy();
        let mut creds_rx = self.creds.subscribe();
        creds_rx.mark_unchanged();
        for attempt in 1u32.. {
            self.boot("pairing", None, attempt);
            let result = tokio::select! {
                () = token.cancelled() => return,
                r = register::pair(req, &self.settings) => r,
            };
            let err = match result {
                Ok(creds) if creds.not_accepted().is_some() => {
                    // The code is spent; central refuses the device until an operator
                    // sets it active. Keep the credentials, say so, never retry.
                    self.spend(file, fp, "central accepted it but refuses the device");
                    if let Err(e) = self.creds.reload() {
                        tracing::error!(operation = "pairing.boot", code = e.code(), error = %e, "cannot reload new credentials");
                    }
                    let status = creds.not_accepted().unwrap_or("inactive").to_owned();
                    let message = format!("Central accepted the code but has this device as '{status}' and refuses its connections; an operator must set it active, or enroll a new device.");
                    tracing::warn!(operation = "pairing.boot", device_status = %status, "boot-file pairing: central refuses the device");
                    self.report.set_error(LastError {
                        code: crate::commands::pair::NOT_ACCEPTED.to_owned(),
                        message: message.clone(),
                        at: crate::protocol::now_rfc3339(),
                        source: "boot_file",
                    });
                    self.hub.update(|f| f.paired = true);
                    return self.boot("failed", Some(message), attempt);
                }
                Ok(creds) => {
                    self.spend(file, fp, &format!("paired as device {}", creds.device_id));
                    if let Err(e) = self.creds.reload() {
                        tracing::error!(operation = "pairing.boot", code = e.code(), error = %e, "cannot reload new credentials");
                    }
                    self.hub.update(|f| {
                        f.paired = true;
                        f.needs_pairing = false;
                    });
                    self.report.clear_error();
                    let detail = self.report.boot().and_then(|b| b.detail);
                    return self.boot("paired", detail, attempt);
                }
                Err(e) => e,
            };
            self.record(&err);
            let wait = match err.retry() {
                Retry::Never => return self.give_up(file, &err, attempt, Some(fp)),
                Retry::After(d) => d,
                Retry::Backoff => backoff.next_delay(&mut rng),
            };
            let mut b = BootState::new(&self.path.display().to_string(), "waiting_retry");
            b.detail = Some(err.to_string());
            b.attempts = attempt;
            b.next_attempt_at = Some(crate::protocol::frame::format_rfc3339(
                time::OffsetDateTime::now_utc() + wait,
            ));
            self.report.set_boot(b);
            tokio::select! {
                () = token.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
                r = creds_rx.changed() => {
                    if r.is_err() {
                        // The store is gone (shutting down): just wait out the delay.
                        tokio::time::sleep(wait).await;
                    } else if creds_rx.borrow_and_update().is_some() {
                        self.spend(file, fp, "not needed: the box was paired another way");
                        return self.boot("superseded", Some("paired with `bbedge pair` meanwhile".into()), attempt);
                    }
                }
            }
        }
    }

    fn record(&self, err: &PairError) {
        tracing::warn!(operation = "pairing.boot", code = err.code(), error = %err, "boot-file pairing failed");
        self.report.set_error(LastError {
            code: err.code().to_owned(),
            message: err.to_string(),
            at: crate::protocol::now_rfc3339(),
            source: "boot_file",
        });
    }

    /// A failure no retry can fix: say so, and mark the box as needing a person.
    fn give_up(&self, file: &BootFile, err: &PairError, attempts: u32, fp: Option<&str>) {
        if attempts == 0 {
            self.record(err);
        }
        if let Some(fp) = fp.filter(|_| err.code_is_spent()) {
            self.spend(file, fp, &format!("central refused it ({})", err.code()));
        }
        let paired_ok = self.creds.current().is_some_and(|c| {
            c.seconds_left(time::OffsetDateTime::now_utc())
                .is_some_and(|s| s > 0)
        });
        if !paired_ok {
            self.hub.update(|f| f.needs_pairing = true);
        }
        let detail = self
            .report
            .boot()
            .and_then(|b| b.detail)
            .filter(|d| d.starts_with("could not"));
        let why = match detail {
            Some(d) => format!("{err} ({d})"),
            None => err.to_string(),
        };
        self.boot("failed", Some(why), attempts);
    }

    /// Remembers the code as spent and removes it from the boot file.
    fn spend(&self, file: &BootFile, fp: &str, note: &str) {
        if let Err(e) = mark_used(&self.state_dir, fp) {
            tracing::warn!(operation = "pairing.boot", error = %e, "cannot record the spent boot code");
        }
        if let Err(e) = strip_code(&self.path, file, note) {
            tracing::warn!(operation = "pairing.boot", path = %self.path.display(), error = %e, "cannot remove the code from the boot file; it will not be used again");
            let mut b = self
                .report
                .boot()
                .unwrap_or_else(|| BootState::new(&self.path.display().to_string(), "pairing"));
            b.detail = Some(format!("could not remove the code from the file: {e}"));
            self.report.set_boot(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn a_fleet_powered_on_together_spreads_its_retries() {
        let (initial, max) = (Duration::from_secs(30), Duration::from_secs(900));
        let mut firsts = std::collections::BTreeSet::new();
        for seed in 0..50u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut b = retry_schedule(initial, max);
            let first = b.next_delay(&mut rng);
            assert!(first >= initial && first <= initial * 2, "{first:?}");
            firsts.insert(first.as_millis());
            let mut prev_ceiling = initial * 2;
            for _ in 0..8 {
                let d = b.next_delay(&mut rng);
                assert!(d >= initial && d <= max, "never below the floor: {d:?}");
                assert!(b.ceiling() >= prev_ceiling);
                prev_ceiling = b.ceiling();
            }
            assert_eq!(b.ceiling(), max);
        }
        assert!(firsts.len() > 45, "first retries in lockstep: {firsts:?}");
    }
}
