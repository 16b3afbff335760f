//! `bbedge discover`: browse the LAN for CivicPress boxes and list them (what an
//! operator runs on a laptop). Needs no configuration and no running daemon.

use crate::discovery::{self, Found};
use crate::error::{exit, ErrorCode};
use std::io::Write;
use std::time::Duration;

/// `bbedge discover`
#[derive(Debug, clap::Args)]
pub struct DiscoverArgs {
    /// One JSON array of the boxes heard, instead of a table.
    #[arg(long)]
    pub json: bool,
    /// How long to listen, in seconds (1 to 60).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=60))]
    pub seconds: u64,
}

/// Browses for `--seconds` and prints what answered; exit 0 even when none did.
pub fn run(args: &DiscoverArgs) -> i32 {
    let found = match discovery::browse(Duration::from_secs(args.seconds)) {
        Ok(f) => f,
        Err(e) => return super::fail("cannot browse the LAN", e.code(), &e, exit::OS),
    };
    let mut out = std::io::stdout().lock();
    let written = if args.json {
        write_json(&mut out, &found)
    } else {
        write_table(&mut out, &found)
    };
    match written.and_then(|()| out.flush()) {
        Ok(()) => exit::OK,
        Err(e) => super::output::write_failed("discover", &e),
    }
}

/// `--json`: `[{"name", "uuid", "state", "path", "tls", "version", "txt", "addresses",
/// "port", "host"}, …]`.
pub fn write_json(out: &mut impl Write, found: &[Found]) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, found)?;
    writeln!(out)
}

/// The table: one line per box: UUID, name, address:port, state.
pub fn write_table(out: &mut impl Write, found: &[Found]) -> std::io::Result<()> {
    if found.is_empty() {
        return writeln!(
            out,
            "no CivicPress boxes answered on the LAN ({})",
            discovery::SERVICE_TYPE
        );
    }
    writeln!(
        out,
        "{:<36}  {:<24}  {:<22}  STATE",
        "UUID", "NAME", "ADDRESS"
    )?;
    for f in found {
        let address = match f.addresses.first() {
            Some(std::net::IpAddr::V6(a)) => format!("[{a}]:{}", f.port),
            Some(a) => format!("{a}:{}", f.port),
            None => format!("?:{}", f.port),
        };
        writeln!(
            out,
            "{:<36}  {:<24}  {:<22}  {}",
            f.seen.uuid, f.seen.name, address, f.seen.state
        )?;
    }
    Ok(())
}
