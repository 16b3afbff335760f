//! `/metrics` of a whole paired box, online (rooms, upstream, pairing, LED) against the
//! in-repo fake central, checked against docs/METRICS.md (issue 13 item 3): every family
//! in the table is exposed and every exposed family is in the table, with its type;
//! counters are `…_total`; no uptime or age-with-a-sentinel is left; the text parses as
//! Prometheus/OpenMetrics text (a strict line check).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use support::fake_central::FakeCentral;
use support::paired::online_box;

/// `(family name, type)` of every row of the table under "Every metric" in
/// docs/METRICS.md. Counters are
/// listed by their sample name (`…_total`): the family is the name without it.
fn documented() -> BTreeMap<String, String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/METRICS.md");
    let text = std::fs::read_to_string(path).expect("docs/METRICS.md");
    let table = text
        .split("\n## Every metric\n")
        .nth(1)
        .expect("a section \"## Every metric\"");
    let table = table.split("\n## ").next().unwrap_or(table);
    let mut out = BTreeMap::new();
    for line in table.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let name = cells[1].trim_matches('`').to_owned();
        let kind = cells[2].to_owned();
        let family = match kind.as_str() {
            "counter" => {
                assert!(
                    name.ends_with("_total"),
                    "a counter is named …_total: {name}"
                );
                name.trim_end_matches("_total").to_owned()
            }
            "gauge" => {
                assert!(
                    !name.ends_with("_total"),
                    "only counters end in _total: {name}"
                );
                name
            }
            other => panic!("{name}: unknown type {other}"),
        };
        assert!(out.insert(family, kind).is_none(), "listed twice: {line}");
    }
    assert!(out.len() > 10, "the table was not found: {out:?}");
    out
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Checks `{k="v",…}` strictly; returns the label names.
fn labels(set: &str) -> Vec<String> {
    let inner = set
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .unwrap_or_else(|| panic!("label set {set}"));
    let mut names = Vec::new();
    let mut rest = inner;
    while !rest.is_empty() {
        let (k, after) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("label in {set}"));
        assert!(is_name(k), "label name {k} in {set}");
        let mut end = None;
        let mut escaped = false;
        for (i, c) in after.char_indices() {
            match (escaped, c) {
                (true, '\\' | '"' | 'n') => escaped = false,
                (true, _) => panic!("bad escape in {set}"),
                (false, '\\') => escaped = true,
                (false, '"') => {
                    end = Some(i);
                    break;
                }
                (false, '\n') => panic!("newline in {set}"),
                _ => {}
            }
        }
        let end = end.unwrap_or_else(|| panic!("unterminated value in {set}"));
        names.push(k.to_owned());
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    names
}

/// Parses the exposition strictly; returns each family's type and its samples' values.
fn parse(text: &str) -> (BTreeMap<String, String>, BTreeMap<String, f64>) {
    let mut families = BTreeMap::new();
    let mut samples = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    let mut help: Option<String> = None;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.last(), Some(&"# EOF"), "ends with # EOF");
    assert!(text.ends_with("# EOF\n"));
    for line in &lines[..lines.len() - 1] {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, text) = rest.split_once(' ').expect("HELP name text");
            assert!(is_name(name) && !text.is_empty(), "{line}");
            help = Some(name.to_owned());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name type");
            assert_eq!(help.as_deref(), Some(name), "HELP before TYPE: {line}");
            assert!(["counter", "gauge", "info"].contains(&kind), "{line}");
            assert!(
                families.insert(name.to_owned(), kind.to_owned()).is_none(),
                "family twice: {name}"
            );
            current = Some((name.to_owned(), kind.to_owned()));
        } else {
            assert!(!line.starts_with('#'), "unknown comment: {line}");
            let (series, value) = line.rsplit_once(' ').expect("sample value");
            let v: f64 = value.parse().unwrap_or_else(|_| panic!("value: {line}"));
            assert!(v.is_finite(), "{line}");
            let (name, set) = match series.find('{') {
                Some(i) => (&series[..i], Some(&series[i..])),
                None => (series, None),
            };
            if let Some(set) = set {
                let names = labels(set);
                let unique: BTreeSet<_> = names.iter().collect();
                assert_eq!(unique.len(), names.len(), "label twice: {line}");
            }
            let (family, kind) = current.as_ref().expect("a sample after its TYPE");
            let want = if kind == "counter" {
                format!("{family}_total")
            } else {
                family.clone()
            };
            assert_eq!(name, want, "sample of family {family} ({kind})");
            assert!(
                samples.insert(series.to_owned(), v).is_none(),
                "twice: {line}"
            );
        }
    }
    (families, samples)
}

#[tokio::test]
async fn every_metric_is_in_the_docs_table_and_named_as_prometheus_wants() {
    let rt = FakeCentral::start().await;
    let (tb, mut agent) = online_box(&rt, &[]).await;
    agent.pongs().await;
    let (code, text) = tb.get("/metrics").await;
    assert_eq!(code, 200);
    let (families, samples) = parse(&text);

    let docs = documented();
    let exposed: BTreeSet<_> = families.keys().collect();
    let listed: BTreeSet<_> = docs.keys().collect();
    assert_eq!(
        exposed.difference(&listed).collect::<Vec<_>>(),
        Vec::<&&String>::new(),
        "exposed but not in docs/METRICS.md"
    );
    assert_eq!(
        listed.difference(&exposed).collect::<Vec<_>>(),
        Vec::<&&String>::new(),
        "in docs/METRICS.md but not exposed"
    );
    assert_eq!(families, docs, "types as documented");

    assert!(!text.contains("uptime"), "{text}");
    for (name, kind) in &families {
        assert!(!name.contains("_age"), "an age, not a timestamp: {name}");
        assert!(
            name == "process_start_time_seconds"
                || name == "process_resident_memory_bytes"
                || name.starts_with("bbedge_"),
            "prefix: {name}"
        );
        if name.ends_with("_timestamp_seconds") || name.ends_with("_time_seconds") {
            assert_eq!(kind, "gauge", "{name}");
        }
    }

    let now = time::OffsetDateTime::now_utc().unix_timestamp() as f64;
    let started = samples["process_start_time_seconds"];
    assert!((now - 600.0..=now).contains(&started), "{started} vs {now}");
    let expiry = samples["bbedge_token_expiry_timestamp_seconds"];
    assert!(
        expiry > now,
        "the paired box's token expires in 2099: {expiry}"
    );
    // One frames scheme for both links: the agent's frames came in on the room and
    // went out upstream (its status reached central before online_box returned).
    let frames = |link: &str, dir: &str| {
        samples[&format!("bbedge_frames_total{{link=\"{link}\",direction=\"{dir}\"}}")]
    };
    assert!(frames("room", "in") >= 2.0, "status + ping: {text}");
    assert!(frames("room", "out") >= 2.0, "ack + room_state: {text}");
    assert!(frames("upstream", "out") >= 1.0, "{text}");
    for reason in bbedge::room::stats::reason::FRAMES {
        let s = format!("bbedge_frames_dropped_total{{link=\"room\",reason=\"{reason}\"}}");
        assert_eq!(samples.get(&s), Some(&0.0), "{s}");
    }
    for reason in bbedge::room::stats::reason::CONNECTIONS {
        let s = format!("bbedge_room_connections_dropped_total{{reason=\"{reason}\"}}");
        assert_eq!(samples.get(&s), Some(&0.0), "{s}");
    }
    assert_eq!(samples["bbedge_upstream_online"], 1.0);
    assert_eq!(samples["bbedge_paired"], 1.0);
    tb.stop().await;
}

#[tokio::test]
async fn a_snapshot_timestamp_appears_with_the_first_snapshot_and_never_as_a_sentinel() {
    let tb = support::TestBox::start(&[("realtime.snapshots.max_updates", "1")]).await;
    let name = "bbedge_room_last_snapshot_timestamp_seconds";
    let (_, before) = tb.get("/metrics").await;
    assert!(before.contains(&format!("# TYPE {name} gauge")), "{before}");
    assert!(
        !before.contains(&format!("\n{name} ")),
        "no sample before the first snapshot: {before}"
    );
    let mut events = tb.bus_events();
    let (mut agent, _) = tb.join(bbedge::room::tokens::Role::Agent).await;
    let started = time::OffsetDateTime::now_utc().unix_timestamp() as f64;
    agent
        .send(&support::ws::frame(
            "status",
            serde_json::json!({"payload": {"state": "idle"}}),
        ))
        .await;
    support::next_event(&mut events, |e| match e {
        bbedge::bus::HookEvent::SnapshotSaved { .. } => Some(()),
        _ => None,
    })
    .await;
    let at = tb.metric(name).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp() as f64;
    assert!(
        (started..=now).contains(&at),
        "{at} not in {started}..={now}"
    );
    tb.stop().await;
}
