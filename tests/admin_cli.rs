//! `--json` on `token list` and `config check` (issue 13, item 3): the shape a script
//! can rely on, and that no secret (a token, its hash, an enrollment code, the contents
//! of a credentials file) ever appears in it. Runs the real binary on a real store.

mod support;

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::path::Path;
use support::binary;

struct Run {
    code: i32,
    out: String,
    err: String,
}

/// `bbedge <args>` with its state in `state`, the simulated LED and no daemon running
/// (so token commands open the store directly).
async fn bbedge(state: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let o = binary::command()
        .args(args)
        .current_dir(state.parent().unwrap())
        .env_remove("RUST_LOG")
        .env_remove("STATE_DIRECTORY")
        .env(
            "BBEDGE_DAEMON__STATE_DIR",
            format!("{:?}", state.display().to_string()),
        )
        .env("BBEDGE_STATUS_LED__BACKEND", "sim")
        .envs(env.iter().copied())
        .output()
        .await
        .expect("bbedge runs");
    Run {
        code: o.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&o.stdout).into_owned(),
        err: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn json(r: &Run) -> Value {
    serde_json::from_str(&r.out).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.out))
}

/// Issues a token; returns (id, token).
async fn add(state: &Path, args: &[&str]) -> (String, String) {
    let r = bbedge(state, &[&["token", "add"][..], args].concat(), &[]).await;
    assert_eq!(r.code, 0, "{}", r.err);
    let field = |name: &str| {
        r.out
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {}", r.out))
            .trim()
            .to_owned()
    };
    (field("id:"), field("token:"))
}

#[tokio::test]
async fn token_list_json_is_an_array_of_records_and_never_a_token_or_its_hash() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");

    let empty = bbedge(&state, &["token", "list", "--json"], &[]).await;
    assert_eq!(empty.code, 0, "{}", empty.err);
    assert_eq!(
        json(&empty),
        Value::Array(vec![]),
        "no tokens: an empty array"
    );

    let (obs_id, obs_token) = add(&state, &["--role", "observer", "--label", "lobby screen"]).await;
    let (agent_id, agent_token) = add(&state, &["--role", "agent", "--room", "room-2"]).await;
    let revoked = bbedge(&state, &["token", "revoke", &agent_id], &[]).await;
    assert_eq!(revoked.code, 0, "{}", revoked.err);

    let r = bbedge(&state, &["token", "list", "--json"], &[]).await;
    assert_eq!(r.code, 0, "{}", r.err);
    let list = json(&r);
    let rows = list.as_array().expect("an array");
    assert_eq!(rows.len(), 2, "{list}");
    let keys: BTreeSet<&str> = ["id", "role", "room", "label", "created_at", "revoked"].into();
    for row in rows {
        let got: BTreeSet<&str> = row
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(got, keys, "exactly the record's fields: {row}");
    }
    let by_id = |id: &str| rows.iter().find(|r| r["id"] == id).unwrap().clone();
    let obs = by_id(&obs_id);
    assert_eq!(obs["role"], "observer");
    assert_eq!(obs["label"], "lobby screen");
    assert_eq!(obs["room"], Value::Null, "null: this box's own room");
    assert_eq!(obs["revoked"], false);
    assert!(obs["created_at"].as_str().unwrap().contains('T'), "{obs}");
    let agent = by_id(&agent_id);
    assert_eq!(agent["role"], "agent");
    assert_eq!(agent["room"], "room-2");
    assert_eq!(agent["revoked"], true);

    for token in [&obs_token, &agent_token] {
        assert!(token.starts_with("bbt_"), "{token}");
        let hash = hex::encode(Sha256::digest(token.as_bytes()));
        for secret in [token.as_str(), hash.as_str(), "bbt_"] {
            assert!(
                !r.out.contains(secret) && !r.err.contains(secret),
                "token list --json shows {secret}: {}",
                r.out
            );
        }
    }
}

#[tokio::test]
async fn config_check_json_names_layers_provenance_and_values_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let file = dir.path().join("bbedge.toml");
    std::fs::create_dir_all(dir.path().join("bbedge.toml.d")).unwrap();
    let drop_in = dir.path().join("bbedge.toml.d/10-site.toml");
    let creds = dir.path().join("credentials.json");
    std::fs::write(&creds, r#"{"device_token":"SECRET-CREDENTIAL-MARKER"}"#).unwrap();
    std::fs::write(&file, "[realtime]\nport = 3005\n").unwrap();
    std::fs::write(
        &drop_in,
        format!(
            "[pairing]\ncredentials_file = {:?}\n",
            creds.display().to_string()
        ),
    )
    .unwrap();

    let r = bbedge(
        &state,
        &["config", "check", "--json", file.to_str().unwrap()],
        &[
            ("BBEDGE_HEALTH__PORT", "9200"),
            ("BBEDGE_PAIR_CODE", "SECRET-CODE-MARKER"),
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.err);
    let v = json(&r);
    assert_eq!(v["ok"], true);
    let layers = v["layers"].as_array().unwrap();
    assert_eq!(layers[0], serde_json::json!({"kind": "built-in"}));
    assert_eq!(layers[1]["kind"], "file");
    assert_eq!(layers[1]["path"], file.to_str().unwrap());
    assert_eq!(layers[2]["path"], drop_in.to_str().unwrap());
    assert!(
        layers
            .iter()
            .any(|l| l == &serde_json::json!({"kind": "env", "name": "BBEDGE_HEALTH__PORT"})),
        "{v}"
    );
    assert_eq!(
        v["provenance"]["realtime.port"]["path"],
        file.to_str().unwrap()
    );
    assert_eq!(
        v["provenance"]["pairing.credentials_file"]["path"],
        drop_in.to_str().unwrap()
    );
    assert_eq!(
        v["provenance"]["health.port"]["name"],
        "BBEDGE_HEALTH__PORT"
    );
    assert!(
        v["provenance"].get("realtime.path").is_none(),
        "defaults are not listed"
    );
    assert_eq!(v["config"]["realtime"]["port"], 3005);
    assert_eq!(v["config"]["health"]["port"], 9200);
    assert_eq!(v["config"]["realtime"]["path"], "/realtime");
    assert_eq!(
        v["config"]["pairing"]["credentials_file"],
        creds.to_str().unwrap(),
        "the path, not the contents"
    );
    for secret in ["SECRET-CREDENTIAL-MARKER", "SECRET-CODE-MARKER"] {
        assert!(
            !r.out.contains(secret) && !r.err.contains(secret),
            "config check --json shows {secret}"
        );
    }

    // The text form is unchanged.
    let text = bbedge(&state, &["config", "check", file.to_str().unwrap()], &[]).await;
    assert_eq!(text.code, 0, "{}", text.err);
    assert!(
        text.out.starts_with("config ok: built-in defaults + "),
        "{}",
        text.out
    );
}

#[tokio::test]
async fn config_check_json_on_a_typo_is_ok_false_with_the_code_and_exit_64() {
    let dir = tempfile::tempdir().unwrap();
    let typo = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/config/invalid/typo-key.toml");
    let r = bbedge(
        &dir.path().join("state"),
        &["config", "check", "--json", typo.to_str().unwrap()],
        &[],
    )
    .await;
    assert_eq!(r.code, 64, "{}{}", r.out, r.err);
    let v = json(&r);
    assert_eq!(v["ok"], false);
    assert_eq!(v["code"], "CONFIG_UNKNOWN_KEY");
    assert!(v["error"].as_str().unwrap().contains("max_room"), "{v}");
    assert!(v.get("config").is_none(), "{v}");
    // People still get the one line on stderr.
    assert!(r.err.contains("[CONFIG_UNKNOWN_KEY]"), "{}", r.err);
}
