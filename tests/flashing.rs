//! docs/FLASHING.md's first-boot install on both Raspberry Pi OS paths (issue 13,
//! item 3): bookworm's `firstrun.sh` line and trixie's cloud-init `runcmd:`, with the
//! example cross/cloud-init/user-data. What can be checked without a Pi: the example
//! is valid YAML in cloud-config form, its `runcmd` is exactly the documented
//! `firstrun.sh` command, the documentation shows the same, and that command never
//! fails the first boot and calls a script shellcheck accepts.

use std::path::{Path, PathBuf};
use yaml_rust2::{Yaml, YamlLoader};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The fenced blocks of `lang` in FLASHING.md, in order.
fn doc_blocks(lang: &str) -> Vec<String> {
    let doc = read("docs/FLASHING.md");
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        match &mut current {
            None if line.trim() == format!("```{lang}") => current = Some(String::new()),
            Some(b) if line.trim() == "```" => {
                blocks.push(std::mem::take(b));
                current = None;
            }
            Some(b) => {
                b.push_str(line);
                b.push('\n');
            }
            None => {}
        }
    }
    blocks
}

/// The one command FLASHING.md has people add to bookworm's firstrun.sh.
fn firstrun_command() -> String {
    let doc = read("docs/FLASHING.md");
    let at = doc
        .find("`rm -f /boot/firmware/firstrun.sh`")
        .expect("the firstrun.sh step");
    let block = doc[at..]
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a sh block after the firstrun.sh step");
    let lines: Vec<&str> = block.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one command: {block}");
    lines[0].to_owned()
}

fn runcmd(doc: &Yaml) -> Vec<String> {
    doc["runcmd"]
        .as_vec()
        .expect("runcmd is a list")
        .iter()
        .map(|c| {
            c.as_str()
                .expect("each runcmd entry is one shell line")
                .to_owned()
        })
        .collect()
}

#[test]
fn the_example_user_data_is_cloud_config_yaml_whose_runcmd_is_the_firstrun_command() {
    let text = read("cross/cloud-init/user-data");
    // cloud-init takes the file as cloud-config only with this exact first line.
    assert_eq!(text.lines().next(), Some("#cloud-config"));
    assert!(!text.contains('\t'), "YAML: no tabs");
    let docs = YamlLoader::load_from_str(&text).expect("valid YAML");
    assert_eq!(docs.len(), 1);
    let doc = &docs[0];
    assert!(doc.as_hash().is_some(), "a mapping at the top");
    // A second `runcmd:` key would silently replace the first.
    let keys = text.lines().filter(|l| l.starts_with("runcmd:")).count();
    assert_eq!(keys, 1);
    assert_eq!(runcmd(doc), [firstrun_command()]);
    assert_eq!(
        firstrun_command(),
        "sh /boot/firmware/bbedge-firstboot.sh || true"
    );
    // The rest is what the comments say: a user with a key, no password logins.
    assert_eq!(doc["hostname"].as_str(), Some("bbox-chamber-1"));
    assert_eq!(doc["ssh_pwauth"].as_bool(), Some(false));
    let user = &doc["users"][0];
    assert!(user["ssh_authorized_keys"][0]
        .as_str()
        .is_some_and(|k| k.starts_with("ssh-ed25519 ")));
    let groups: Vec<&str> = user["groups"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert!(groups.contains(&"sudo"), "{groups:?}");
}

#[test]
fn the_documented_runcmd_block_is_the_examples() {
    let blocks = doc_blocks("yaml");
    let with_runcmd: Vec<&String> = blocks.iter().filter(|b| b.contains("runcmd:")).collect();
    assert_eq!(with_runcmd.len(), 1, "{blocks:?}");
    let documented = YamlLoader::load_from_str(with_runcmd[0]).expect("valid YAML");
    let example = YamlLoader::load_from_str(&read("cross/cloud-init/user-data")).unwrap();
    assert_eq!(runcmd(&documented[0]), runcmd(&example[0]));
    // And it points at the example.
    assert!(read("docs/FLASHING.md").contains("cross/cloud-init/user-data"));
}

/// cross/firstboot.sh copied to where the card has it, in a temp "boot partition".
fn boot_dir_with_script() -> (tempfile::TempDir, PathBuf) {
    let boot = tempfile::tempdir().unwrap();
    let script = boot.path().join("bbedge-firstboot.sh");
    std::fs::copy(repo().join("cross/firstboot.sh"), &script).unwrap();
    (boot, script)
}

#[test]
fn the_runcmd_line_never_fails_the_first_boot() {
    // Run the documented line through sh as cloud-init does (a string entry is run
    // with `sh -c`), with the boot partition in a temp dir and nothing to install:
    // as root it finds no package, as anyone else the script refuses; either way the
    // line exits 0, and the script said why.
    let (boot, script) = boot_dir_with_script();
    let line = firstrun_command().replace(
        "/boot/firmware/bbedge-firstboot.sh",
        script.to_str().unwrap(),
    );
    let out = std::process::Command::new("sh")
        .args(["-c", &line])
        .env("BBEDGE_BOOT_DIR", boot.path())
        .output()
        .expect("sh runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains("bbedge-firstboot: must run as root") || said.contains("nothing to do"),
        "{said}"
    );
}

#[test]
fn shellcheck_accepts_the_runcmd_line_and_the_script_it_calls() {
    let Ok(version) = std::process::Command::new("shellcheck")
        .arg("--version")
        .output()
    else {
        // .ci/run installs shellcheck, so CI always runs this.
        assert!(
            std::env::var_os("CI").is_none(),
            "shellcheck is missing in CI"
        );
        eprintln!("SKIP: shellcheck is not installed; `apt install shellcheck` to run this test");
        return;
    };
    assert!(version.status.success());
    let (_boot, script) = boot_dir_with_script();
    let line_script = script.with_file_name("runcmd.sh");
    std::fs::write(&line_script, format!("#!/bin/sh\n{}\n", firstrun_command())).unwrap();
    for file in [&script, &line_script] {
        let out = std::process::Command::new("shellcheck")
            .args(["-s", "sh"])
            .arg(file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "shellcheck {}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
