//! `bbedge status`: asks the running daemon's `/status` and prints a readable summary.

use super::output::{err, out_or_ioerr};
use crate::cli::{Cli, StatusArgs};
use crate::config::Loader;
use crate::error::{exit, ErrorCode};
use serde_json::Value;

/// Prints the daemon's status; exit 69 when it does not answer.
pub fn show(cli: &Cli, args: &StatusArgs) -> i32 {
    let url = match &args.url {
        Some(u) => u.trim_end_matches('/').to_owned(),
        None => match Loader::from_process(cli.config.clone()).load() {
            Ok(l) => format!(
                "http://{}:{}",
                host(&l.config.health.host),
                l.config.health.port
            ),
            Err(e) => return super::fail("invalid configuration", e.code(), &e, exit::USAGE),
        },
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return super::fail("cannot start the async runtime", "RUNTIME", &e, exit::OS),
    };
    let body: Result<Value, reqwest::Error> = rt.block_on(async {
        reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(5))
            .build()?
            .get(format!("{url}/status"))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await
    });
    match body {
        Ok(v) if args.json => {
            let text = serde_json::to_string_pretty(&v).unwrap_or_default();
            out_or_ioerr("status", format_args!("{text}\n"), exit::OK)
        }
        Ok(v) => out_or_ioerr("status", summary(&v), exit::OK),
        Err(e) => {
            err(format_args!("bbedge status: the daemon did not answer at {url}/status ({e}); is it running? try `systemctl status bbedge`"));
            exit::UNAVAILABLE
        }
    }
}

fn host(ip: &std::net::IpAddr) -> String {
    match ip {
        ip if ip.is_unspecified() => "127.0.0.1".to_owned(),
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        std::net::IpAddr::V4(v4) => v4.to_string(),
    }
}

/// A few lines a person can read at the box.
pub fn summary(v: &Value) -> String {
    let s = |p: &str| v.pointer(p).map_or_else(|| "-".to_owned(), plain);
    let mut out = String::new();
    out.push_str(&format!("state:    {}\n", s("/state")));
    out.push_str(&format!(
        "version:  {} (git {}, {})\n",
        s("/version"),
        s("/git"),
        s("/target")
    ));
    out.push_str(&format!("uptime:   {} s\n", s("/uptime_seconds")));
    out.push_str(&format!("ready:    {}\n", s("/ready")));
    if let Some(Value::Array(r)) = v.pointer("/not_ready_reasons") {
        for reason in r {
            out.push_str(&format!("  - {}\n", plain(reason)));
        }
    }
    out.push_str(&format!(
        "store:    {} ({} bytes)\n",
        s("/store/path"),
        s("/store/size_bytes")
    ));
    out.push_str(&format!("memory:   {} bytes RSS\n", s("/memory/rss_bytes")));
    if let Some(led) = v.get("led") {
        let l = |k: &str| led.get(k).map_or_else(|| "-".to_owned(), plain);
        out.push_str(&format!(
            "led:      {} ({}, {}) on {}: {}\n",
            l("state"),
            l("pattern"),
            l("colour"),
            l("backend"),
            l("reason")
        ));
        if let Some(d) = led.get("degraded").and_then(Value::as_str) {
            out.push_str(&format!("  - degraded: {d}\n"));
        }
    }
    for section in ["rooms", "upstream", "pairing"] {
        if let Some(sec) = v.get(section) {
            out.push_str(&format!("{section}: {sec}\n"));
        }
    }
    out
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
