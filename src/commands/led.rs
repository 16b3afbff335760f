//! `bbedge led identify [--seconds N]` and `bbedge led test`. The running daemon owns the
//! LED, so both ask it over the control socket; with no daemon they drive the LED
//! themselves and give it back (sysfs trigger restored) when done or on Ctrl-C.

use super::output::{err, out, out_or_ioerr, write_failed};
use crate::app::Paths;
use crate::cli::{Cli, LedCommand};
use crate::config::{Loader, StatusLed};
use crate::control::{self, ControlError};
use crate::error::{exit, ErrorCode};
use crate::signal::pattern::Pattern;
use crate::signal::MAX_REQUEST;
use crate::signal::{self, DeviceState, LedHandle, StatusHub};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Runs a `bbedge led` subcommand; returns the exit code.
pub fn run(cli: &Cli, cmd: &LedCommand) -> i32 {
    let loaded = match Loader::from_process(cli.config.clone()).load() {
        Ok(l) => l,
        Err(e) => return super::fail("invalid configuration", e.code(), &e, exit::USAGE),
    };
    let paths = Paths::resolve(&loaded.config);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return super::fail("cannot start the async runtime", "RUNTIME", &e, exit::OS),
    };
    let cfg = &loaded.config.status_led;
    rt.block_on(async {
        // Installed before anything lights, so Ctrl-C always reaches the restore path.
        let mut stop = match Interrupt::install() {
            Ok(s) => s,
            Err(e) => {
                return super::fail("cannot install signal handlers", "SIGNALS", &e, exit::OS)
            }
        };
        match cmd {
            LedCommand::Identify { seconds } => {
                identify(cfg, &paths.state_dir, *seconds, &mut stop).await
            }
            LedCommand::Test => test(cfg, &paths.state_dir, &mut stop).await,
        }
    })
}

/// SIGINT (Ctrl-C) or SIGTERM: stop early and give the LED back.
struct Interrupt {
    int: Signal,
    term: Signal,
}

impl Interrupt {
    fn install() -> std::io::Result<Interrupt> {
        Ok(Interrupt {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
        })
    }

    async fn wait(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
    }
}

async fn identify(cfg: &StatusLed, state_dir: &Path, seconds: u64, stop: &mut Interrupt) -> i32 {
    if seconds == 0 || seconds > MAX_REQUEST.as_secs() {
        err(format_args!(
            "bbedge led identify: --seconds {seconds} is out of range; allowed 1 to {}",
            MAX_REQUEST.as_secs()
        ));
        return exit::USAGE;
    }
    let duration = Duration::from_secs(seconds);
    match control::request(state_dir, "led.identify", json!({ "seconds": seconds })).await {
        Ok(v) => out_or_ioerr(
            "led identify",
            format_args!(
                "The daemon blinks identify on its {} LED for {seconds} s.\n",
                v["backend"].as_str().unwrap_or("status")
            ),
            exit::OK,
        ),
        Err(ControlError::NotRunning) => {
            let direct = Direct::open(cfg, state_dir);
            if let Err(e) = direct.led.identify(duration) {
                return super::fail("cannot identify", e.code(), &e, exit::FAILURE);
            }
            if let Err(e) = out(format_args!(
                "Blinking identify for {seconds} s (Ctrl-C stops).\n"
            )) {
                direct.close().await;
                return write_failed("led identify", &e);
            }
            let mut rx = direct.led.watch();
            let done = async {
                let _ = rx.wait_for(|v| v.state == DeviceState::Identify).await;
                let _ = rx.wait_for(|v| v.state != DeviceState::Identify).await;
            };
            tokio::select! {
                () = done => {}
                () = stop.wait() => {}
            }
            direct.close().await;
            exit::OK
        }
        Err(e) => refused(&e),
    }
}

async fn test(cfg: &StatusLed, state_dir: &Path, stop: &mut Interrupt) -> i32 {
    let mut target = Target::Daemon(state_dir.to_path_buf());
    let total = DeviceState::ALL.len();
    for (i, state) in DeviceState::ALL.into_iter().enumerate() {
        let p = Pattern::of(state);
        let step = test_step(p);
        let shown = match target.show(state, step).await {
            Err(ControlError::NotRunning) => {
                target = Target::Direct(Direct::open(cfg, state_dir));
                target.show(state, step).await
            }
            other => other,
        };
        if let Err(e) = shown {
            target.close().await;
            return refused(&e);
        }
        let named = out(format_args!(
            "{:>2}/{total}  {:<17} {:<13} {} ({})\n",
            i + 1,
            state.as_str(),
            p.name,
            p.timings(),
            p.colour.as_str()
        ));
        if let Err(e) = named {
            // Nobody can read which pattern is which: stop rather than blink unnamed.
            target.close().await;
            return write_failed("led test", &e);
        }
        // Pacing for a person watching the box: the LED shows this step meanwhile.
        tokio::select! {
            () = tokio::time::sleep(step) => {}
            () = stop.wait() => break,
        }
    }
    target.close().await;
    exit::OK
}

/// How long `led test` shows a pattern: two cycles, at least 3 s, at most 8 s.
pub fn test_step(p: Pattern) -> Duration {
    (p.cycle() * 2).clamp(Duration::from_secs(3), Duration::from_secs(8))
}

enum Target {
    Daemon(PathBuf),
    Direct(Direct),
}

impl Target {
    async fn show(&self, state: DeviceState, step: Duration) -> Result<(), ControlError> {
        match self {
            Target::Daemon(dir) => {
                let ms = u64::try_from(step.as_millis()).unwrap_or(u64::MAX);
                let args = json!({ "state": state.as_str(), "ms": ms });
                control::request(dir, "led.show", args).await.map(|_| ())
            }
            Target::Direct(d) => d
                .led
                .show(state, step)
                .map_err(|e| ControlError::failed(&e, e.code())),
        }
    }

    async fn close(self) {
        if let Target::Direct(d) = self {
            d.close().await;
        }
    }
}

/// The LED driven by this process, because no daemon is running.
struct Direct {
    led: LedHandle,
    token: CancellationToken,
    task: JoinHandle<()>,
}

impl Direct {
    fn open(cfg: &StatusLed, state_dir: &Path) -> Direct {
        let hub = StatusHub::new();
        hub.update(|f| f.booting = false);
        let (led, task) = signal::build(cfg, hub, Some(state_dir));
        let view = led.view();
        err(format_args!(
            "bbedge led: no daemon is running; driving the {} LED directly ({})",
            view.backend, view.reason
        ));
        if view.backend == "sim" {
            err("bbedge led: no LED hardware could be opened, so nothing will light; see docs/LED.md");
        }
        let token = CancellationToken::new();
        let task = tokio::spawn(task.with_shutdown_show(Duration::ZERO).run(token.clone()));
        Direct { led, token, task }
    }

    /// Stops the LED task, which gives the LED back.
    async fn close(self) {
        self.token.cancel();
        let _ = self.task.await;
    }
}

fn refused(e: &ControlError) -> i32 {
    let code = match e {
        ControlError::Failed { code, .. } if code == "LED_BUSY" => exit::TEMPFAIL,
        ControlError::Failed { code, .. } if code == "LED_BAD_REQUEST" => exit::USAGE,
        ControlError::BadRequest(_) => exit::USAGE,
        ControlError::Io(_) | ControlError::NotRunning => exit::UNAVAILABLE,
        _ => exit::FAILURE,
    };
    super::fail("the daemon refused the LED request", e.code(), e, code)
}
