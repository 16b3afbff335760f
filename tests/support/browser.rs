//! Headless Chromium driven through chromedriver (WebDriver) with fantoccini, for
//! tests/web.rs. chromedriver runs on 127.0.0.1 and is spoken to over plain HTTP.
//! Not in `support/mod.rs`: only tests/web.rs uses it (`#[path]`).

use fantoccini::{Client, ClientBuilder, Locator};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long a condition on the page may take before the test fails.
pub const PAGE_TIMEOUT: Duration = Duration::from_secs(15);

/// chromedriver, ended on drop.
pub struct Driver {
    _child: Child,
    url: String,
    profile: tempfile::TempDir,
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| PathBuf::from(d).join(name))
        .find(|p| p.is_file())
}

impl Driver {
    /// Starts chromedriver on a free loopback port; `Err(why)` when chromium or
    /// chromedriver is not installed.
    pub async fn start() -> Result<Driver, String> {
        let driver = which("chromedriver").ok_or("chromedriver is not installed")?;
        which("chromium").ok_or("chromium is not installed")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let mut child = Command::new(driver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start chromedriver: {e}"))?;
        let out = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(out).lines();
        let started = tokio::time::timeout(Duration::from_secs(20), async {
            while let Ok(Some(l)) = lines.next_line().await {
                if l.contains("started successfully") {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(started, Ok(true), "chromedriver did not say it started");
        // Keep reading its stdout so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Driver {
            _child: child,
            url: format!("http://127.0.0.1:{port}"),
            profile: tempfile::tempdir().map_err(|e| e.to_string())?,
        })
    }

    /// A new headless browser session.
    pub async fn browser(&self) -> Client {
        let caps = serde_json::json!({
            "goog:chromeOptions": {
                "binary": which("chromium").expect("chromium"),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-dev-shm-usage", "--window-size=1100,1500",
                    format!("--user-data-dir={}", self.profile.path().display()),
                ],
            }
        });
        let serde_json::Value::Object(caps) = caps else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a WebDriver session")
    }
}

/// `target/web-screenshots/<name>.png`.
pub async fn screenshot(c: &Client, name: &str) {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"),
        PathBuf::from,
    );
    let dir = target.join("web-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    let png = c.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
}

/// The text of element `#id` (empty when it is not there yet).
pub async fn text(c: &Client, id: &str) -> String {
    match c.find(Locator::Id(id)).await {
        Ok(e) => e.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Attribute `attr` of `#id`.
pub async fn attr(c: &Client, id: &str, attr: &str) -> Option<String> {
    c.find(Locator::Id(id)).await.ok()?.attr(attr).await.ok()?
}

/// Waits until `#id`'s text satisfies `pred` (the page changes on its own: polled every
/// 50 ms, there is no event to await in the browser); returns it and how long it took.
pub async fn wait_text(
    c: &Client,
    id: &str,
    what: &str,
    pred: impl Fn(&str) -> bool,
) -> (String, Duration) {
    let t0 = Instant::now();
    let limit = crate::support::scaled(PAGE_TIMEOUT);
    loop {
        let t = text(c, id).await;
        if pred(&t) {
            return (t, t0.elapsed());
        }
        assert!(
            t0.elapsed() < limit,
            "#{id} never showed {what}; it shows {t:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Types `value` into `#id` (cleared first).
pub async fn fill(c: &Client, id: &str, value: &str) {
    let e = c.find(Locator::Id(id)).await.expect(id);
    e.clear().await.expect("clear");
    e.send_keys(value).await.expect("type");
}

/// Clicks `#id`.
pub async fn click(c: &Client, id: &str) {
    c.find(Locator::Id(id))
        .await
        .expect(id)
        .click()
        .await
        .expect("click");
}
