//! Configuration: every fixture in tests/config/{valid,invalid}, layering, and the
//! messages people read when they get it wrong.

mod support;

use bbedge::config::{Config, Error, Loader, Source, DEFAULT_TOML};
use bbedge::error::ErrorCode;
use std::path::{Path, PathBuf};

fn fixtures(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/config")
        .join(kind);
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    v.sort();
    v
}

#[test]
fn the_built_in_defaults_load_and_pass_the_checks() {
    let loaded = Loader::builtin().load().expect("defaults are valid");
    assert_eq!(loaded.layers, vec![Source::BuiltIn]);
    let c = loaded.config;
    assert_eq!(c.realtime.path, "/realtime");
    assert_eq!(c.realtime.snapshots.interval, 300);
    assert_eq!(c.realtime.snapshots.max_updates, 100);
    assert_eq!(c.realtime.rate_limiting.messages_per_second, 10);
    assert_eq!(c.realtime.rate_limiting.connections_per_ip, 100);
    assert_eq!(c.realtime.rate_limiting.connections_per_user, 10);
    assert_eq!(c.health.host.to_string(), "127.0.0.1");
}

#[test]
fn every_valid_fixture_loads() {
    let valid = fixtures("valid");
    assert!(valid.len() >= 3);
    for path in valid {
        Loader::builtin()
            .file(&path)
            .load()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

#[test]
fn every_invalid_fixture_fails_with_its_code_naming_file_and_key() {
    let invalid = fixtures("invalid");
    assert!(invalid.len() >= 10);
    for path in invalid {
        let text = std::fs::read_to_string(&path).unwrap();
        let expect = text
            .lines()
            .next()
            .unwrap()
            .trim_start_matches("# expect: ");
        let (code, key) = expect.split_once(' ').unwrap();
        let err = Loader::builtin()
            .file(&path)
            .load()
            .expect_err(&path.display().to_string());
        let msg = err.to_string();
        assert_eq!(err.code(), code, "{}: {msg}", path.display());
        assert!(
            msg.contains(&path.display().to_string()),
            "names the file: {msg}"
        );
        if key != "-" {
            assert!(msg.contains(key), "names the key {key}: {msg}");
        }
    }
}

#[test]
fn an_unknown_key_lists_the_keys_that_are_allowed() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/config/invalid/typo-key.toml");
    let err = Loader::builtin().file(&path).load().unwrap_err();
    assert!(err.to_string().contains("max_rooms"), "{err}");
}

#[test]
fn out_of_range_values_say_what_is_allowed() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/config/invalid/rate-zero.toml");
    let err = Loader::builtin().file(&path).load().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: `realtime.rate_limiting.messages_per_second` = 0: allowed 1 to 10000",
            path.display()
        )
    );
}

#[test]
fn drop_ins_apply_in_name_order_over_the_file_and_env_wins_last() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("bbedge.toml");
    std::fs::write(
        &main,
        "[realtime]\nport = 4000\n[device]\nname = \"Main\"\n",
    )
    .unwrap();
    let d = dir.path().join("bbedge.toml.d");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("20-late.toml"), "[realtime]\nport = 4020\n").unwrap();
    std::fs::write(
        d.join("10-early.toml"),
        "[realtime]\nport = 4010\n[device]\nname = \"Drop\"\n",
    )
    .unwrap();
    std::fs::write(d.join("ignored.txt"), "[realtime]\nport = 1\n").unwrap();
    let loaded = Loader::builtin()
        .file(&main)
        .env([("BBEDGE_DEVICE__NAME", "From env"), ("HOME", "/root")])
        .load()
        .unwrap();
    assert_eq!(loaded.config.realtime.port, 4020);
    assert_eq!(loaded.config.device.name, "From env");
    assert_eq!(
        loaded.origin("realtime.port"),
        Source::File(d.join("20-late.toml"))
    );
    assert_eq!(
        loaded.origin("device.name"),
        Source::Env("BBEDGE_DEVICE__NAME".into())
    );
    assert_eq!(loaded.layers.len(), 5, "{:?}", loaded.layers);
}

#[test]
fn env_overrides_keep_types_and_are_checked_like_files() {
    let loaded = Loader::builtin()
        .env([("BBEDGE_REALTIME__RATE_LIMITING__MESSAGES_PER_SECOND", "5")])
        .load()
        .unwrap();
    assert_eq!(loaded.config.realtime.rate_limiting.messages_per_second, 5);
    let err = Loader::builtin()
        .env([("BBEDGE_REALTIME__PORTT", "5")])
        .load()
        .unwrap_err();
    assert_eq!(err.code(), "CONFIG_UNKNOWN_KEY");
    assert!(
        err.to_string()
            .contains("environment variable BBEDGE_REALTIME__PORTT"),
        "{err}"
    );
    let err = Loader::builtin()
        .env([("BBEDGE_UPSTREAM__FRAMES_PER_SECOND", "11")])
        .load()
        .unwrap_err();
    assert!(matches!(err, Error::OutOfRange { .. }), "{err}");
    assert!(err.to_string().contains("allowed 1 to 10"), "{err}");
}

#[test]
fn a_missing_explicit_file_is_an_error_naming_it() {
    let err = Loader::builtin()
        .file("/nonexistent/bbedge.toml")
        .load()
        .unwrap_err();
    assert_eq!(err.code(), "CONFIG_READ_FAILED");
    assert!(err.to_string().contains("/nonexistent/bbedge.toml"));
}

#[test]
fn the_default_file_names_every_key_the_code_knows() {
    // Deserialising the built-in text alone (no serde defaults exist) proves the file is
    // complete; re-serialising proves no key is lost on the way.
    let from_file: Config = toml::from_str(DEFAULT_TOML).expect("complete");
    let round = toml::to_string(&from_file).unwrap();
    let again: Config = toml::from_str(&round).unwrap();
    assert_eq!(from_file, again);
}

#[test]
fn the_readme_documents_every_key_of_the_default_file() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let table: toml::Table = DEFAULT_TOML.parse().unwrap();
    let mut missing = Vec::new();
    walk(&table, "", &mut |key| {
        if !readme.contains(&format!("`{key}`")) {
            missing.push(key.to_owned());
        }
    });
    assert!(missing.is_empty(), "README lacks these keys: {missing:?}");
}

fn walk(t: &toml::Table, prefix: &str, f: &mut dyn FnMut(&str)) {
    for (k, v) in t {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(sub) => walk(sub, &key, f),
            _ => f(&key),
        }
    }
}

#[tokio::test]
async fn the_binary_exits_64_with_one_clear_line_on_a_config_typo() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/config/invalid/typo-key.toml");
    let dir = tempfile::tempdir().unwrap();
    let out = support::binary::command()
        .args(["--config", path.to_str().unwrap(), "run"])
        .current_dir(dir.path())
        // The stopped pattern goes to the simulated LED, never this machine's.
        .env("BBEDGE_STATUS_LED__BACKEND", "sim")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("[CONFIG_UNKNOWN_KEY]") && stderr.contains("max_room"),
        "{stderr}"
    );
    // The same line says that it will not be restarted, and what the LED shows.
    assert!(
        stderr.contains("stopped with exit 64, which systemd does not restart")
            && stderr.contains("the simulated LED records config_fault"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let check = support::binary::command()
        .args(["config", "check", path.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    assert_eq!(check.status.code(), Some(64));
}

#[tokio::test]
async fn config_default_prints_the_built_in_file() {
    let out = support::binary::command()
        .args(["config", "default"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), DEFAULT_TOML);
}

#[tokio::test]
async fn a_log_level_that_is_not_a_level_is_exit_64_naming_the_key_and_the_words() {
    // EnvFilter takes `warning` as a target name: the daemon would log nothing at all.
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/config/invalid/log-level-warning.toml");
    let out = support::binary::command()
        .args(["config", "check", path.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("[CONFIG_OUT_OF_RANGE]")
            && stderr.contains("`logging.level` = \"warning\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("use off, error, warn, info, debug or trace"),
        "{stderr}"
    );
    let err = Loader::builtin()
        .env([("BBEDGE_LOGGING__LEVEL", "info,bbedge::room=verbose")])
        .load()
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("`bbedge::room=verbose` is not a level"),
        "{err}"
    );
    assert!(err.to_string().contains("BBEDGE_LOGGING__LEVEL"), "{err}");
}

#[test]
fn the_environment_is_read_as_the_os_gives_it_and_only_bbedge_variables_count() {
    use std::ffi::{OsStr, OsString};
    use std::os::unix::ffi::OsStrExt;
    let bad = || OsStr::from_bytes(b"\xffSECRET").to_owned();
    let vars = |extra: Vec<(OsString, OsString)>| {
        let mut v: Vec<(OsString, OsString)> = vec![
            ("FOO".into(), bad()),
            (OsStr::from_bytes(b"\xff").to_owned(), "x".into()),
            ("BBEDGE_REALTIME__PORT".into(), "9999".into()),
        ];
        v.extend(extra);
        v
    };
    let loaded = Loader::builtin().env_os(vars(vec![])).load().unwrap();
    assert_eq!(loaded.config.realtime.port, 9999);
    let err = Loader::builtin()
        .env_os(vars(vec![("BBEDGE_DEVICE__NAME".into(), bad())]))
        .load()
        .unwrap_err();
    assert_eq!(err.code(), "CONFIG_BAD_ENV");
    assert_eq!(
        err.to_string(),
        "environment variable BBEDGE_DEVICE__NAME: not valid UTF-8; fix or unset it"
    );
}

#[test]
fn a_broken_configuration_still_yields_its_led_and_state_dir_for_the_fault_blink() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bbedge.toml");
    std::fs::write(
        &file,
        "[daemon]\nstate_dir = \"/srv/box\"\n[status_led]\nbackend = \"sysfs\"\nsysfs_name = \"led0\"\n[realtime.rooms]\nmax_room = 3\n",
    )
    .unwrap();
    let loader = Loader::builtin().file(&file);
    assert_eq!(loader.load().unwrap_err().code(), "CONFIG_UNKNOWN_KEY");
    let c = loader.salvage().expect("salvaged");
    assert_eq!(c.status_led.sysfs_name, "led0");
    assert_eq!(c.daemon.state_dir, "/srv/box");
    // A typo inside [status_led] itself: that section falls back to the defaults.
    std::fs::write(
        &file,
        "[status_led]\nbackend = \"sysfs\"\nsysfs_nam = \"led0\"\n",
    )
    .unwrap();
    let c = Loader::builtin().file(&file).salvage().expect("salvaged");
    let defaults = Loader::builtin().load().unwrap().config;
    assert_eq!(c.status_led, defaults.status_led);
    // Not even TOML: the defaults.
    std::fs::write(&file, "[status_led\n").unwrap();
    let c = Loader::builtin().file(&file).salvage().expect("salvaged");
    assert_eq!(c, defaults);
}

/// The conffile the package installs as /etc/bbedge/bbedge.toml (issue 13, item 3).
fn conffile() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/bbedge.conffile.toml")
}

#[test]
fn the_shipped_conffile_parses_and_changes_no_default() {
    let text = std::fs::read_to_string(conffile()).unwrap();
    let table: toml::Table = toml::from_str(&text).expect("the conffile is TOML");
    assert!(table.is_empty(), "the conffile sets nothing: {table:?}");
    let loaded = Loader::builtin().file(conffile()).load().unwrap();
    assert_eq!(
        loaded.layers,
        vec![Source::BuiltIn, Source::File(conffile())]
    );
    assert!(loaded.provenance.is_empty(), "{:?}", loaded.provenance);
    assert_eq!(loaded.config, Loader::builtin().load().unwrap().config);
    // Short, and it says where settings go and where the defaults are.
    assert!(text.lines().count() <= 30, "{} lines", text.lines().count());
    for must in [
        "bbedge config default",
        "/etc/bbedge/bbedge.toml.d/",
        "bbedge config check",
    ] {
        assert!(text.contains(must), "the conffile names {must}");
    }
}

#[test]
fn the_conffiles_example_is_a_valid_drop_in() {
    // The indented comment lines that look like TOML, uncommented.
    let text = std::fs::read_to_string(conffile()).unwrap();
    let example: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("#     "))
        .filter(|l| l.starts_with('[') || l.contains(" = "))
        .flat_map(|l| [l, "\n"])
        .collect();
    assert!(example.contains("[device]"), "{example}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("10-site.toml");
    std::fs::write(&file, &example).unwrap();
    let loaded = Loader::builtin()
        .file(&file)
        .load()
        .expect("a valid drop-in");
    assert_eq!(loaded.config.device.name, "Council chamber");
}

#[test]
fn the_packaged_etc_bbedge_is_the_defaults_with_the_state_dir_pinned_and_the_page_on() {
    // /etc/bbedge as the package leaves it: the conffile and the package's drop-in.
    let etc = tempfile::tempdir().unwrap();
    let main = etc.path().join("bbedge.toml");
    std::fs::copy(conffile(), &main).unwrap();
    std::fs::create_dir(etc.path().join("bbedge.toml.d")).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("cross/debian/00-package.toml"),
        etc.path().join("bbedge.toml.d/00-package.toml"),
    )
    .unwrap();
    let loaded = Loader::builtin().file(&main).load().unwrap();
    let keys: Vec<&String> = loaded.provenance.keys().collect();
    assert_eq!(keys, ["daemon.state_dir", "web.enabled"]);
    let mut want = Loader::builtin().load().unwrap().config;
    want.daemon.state_dir = "/var/lib/bbedge".into();
    want.web.enabled = true;
    assert_eq!(loaded.config, want);

    // And Cargo.toml installs exactly these there; the defaults file stays in the binary.
    let manifest: toml::Table = toml::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap(),
    )
    .unwrap();
    let assets = manifest["package"]["metadata"]["deb"]["assets"]
        .as_array()
        .unwrap();
    let under_etc: Vec<(&str, &str)> = assets
        .iter()
        .map(|a| (a[0].as_str().unwrap(), a[1].as_str().unwrap()))
        .filter(|(_, dest)| dest.starts_with("etc/"))
        .collect();
    assert_eq!(
        under_etc,
        [
            ("config/bbedge.conffile.toml", "etc/bbedge/bbedge.toml"),
            (
                "cross/debian/00-package.toml",
                "etc/bbedge/bbedge.toml.d/00-package.toml"
            ),
        ]
    );
}
