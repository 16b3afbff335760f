//! What the .deb installs besides the binary (issue 13, item 3): shell completions and
//! man pages generated from the clap definitions (the conffile: tests/config.rs).
//!
//! The completions and man pages are generated here, from `bbedge::cli::Cli`, and kept
//! as files in cross/debian/generated/ so that `cargo deb --no-build` (CI, and
//! cross/package.sh for any target) finds them without running a binary, which for
//! arm64 would need qemu. This test fails when they differ from what the clap
//! definitions (and, for bbedge(1)'s EXIT STATUS, the README's exit-code table) give
//! today; then regenerate them with
//! `BBEDGE_BLESS=1 cargo test --test packaging` and commit the result.

use bbedge::cli::Cli;
use clap::CommandFactory;
use clap_complete::Shell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn generated_dir() -> PathBuf {
    repo().join("cross/debian/generated")
}

/// The subcommands a person types; the hidden ones are left out of help, so of these.
const SUBCOMMANDS: &[&str] = &["run", "config", "status", "token", "pair", "unpair", "led"];

/// The clap command as shipped, with the plain package version: `--version` adds the
/// git hash and target, which would change the man pages on every commit.
fn command() -> clap::Command {
    Cli::command().version(env!("CARGO_PKG_VERSION"))
}

/// Every generated file, by path under cross/debian/generated/.
fn generate() -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for (shell, name) in [
        (Shell::Bash, "completions/bbedge.bash"),
        (Shell::Zsh, "completions/_bbedge"),
        (Shell::Fish, "completions/bbedge.fish"),
    ] {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut command(), "bbedge", &mut buf);
        files.insert(name.to_owned(), buf);
    }
    // One page for bbedge and one per subcommand (bbedge-token-add.1, ...), which the
    // top page's SUBCOMMANDS section names.
    let dir = tempfile::tempdir().unwrap();
    clap_mangen::generate_to(command(), dir.path()).expect("man pages");
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let entry = entry.unwrap();
        let name = format!("man/{}", entry.file_name().to_string_lossy());
        files.insert(name, std::fs::read(entry.path()).unwrap());
    }
    if let Some(top) = files.get_mut("man/bbedge.1") {
        top.extend_from_slice(admin_sections().as_bytes());
    }
    files
}

/// What an admin looks for in bbedge(1) beyond the flags: the exit codes (from the
/// README's one table, so the two cannot differ), the files, the environment.
fn admin_sections() -> String {
    use clap_mangen::roff::{bold, roman, Roff};
    let mut r = Roff::new();
    r.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in readme_exit_codes() {
        r.control("TP", [])
            .text([bold(code)])
            .text([roman(meaning)]);
    }
    r.control("SH", ["ENVIRONMENT"]);
    for (name, what) in [
        ("BBEDGE_CONFIG", "The config file, as --config."),
        (
            "BBEDGE_<SECTION>__<KEY>",
            "Any setting, e.g. BBEDGE_REALTIME__PORT=3002; read after the files.",
        ),
        ("BBEDGE_LOG_FORMAT", "As --log-format."),
        (
            "RUST_LOG",
            "Log filter; overrides [logging] level (-v overrides it).",
        ),
    ] {
        r.control("TP", []).text([bold(name)]).text([roman(what)]);
    }
    r.control("SH", ["FILES"]);
    for (path, what) in [
        (
            "/etc/bbedge/bbedge.toml",
            "The config file. Sets nothing as installed: bbedge config default prints every setting with its default.",
        ),
        (
            "/etc/bbedge/bbedge.toml.d/*.toml",
            "Drop-ins, read in name order after the file; put a box's settings here (e.g. 10-site.toml). 00-package.toml comes with the package.",
        ),
        (
            "/var/lib/bbedge",
            "State: the store, the pairing credentials and the signing key.",
        ),
        (
            "/boot/firmware/bbedge-pair.toml",
            "Optional: pairs the box when bbedge starts ([pairing] boot_file).",
        ),
    ] {
        r.control("TP", []).text([bold(path)]).text([roman(what)]);
    }
    r.control("SH", ["SEE ALSO"]);
    r.text([roman(
        "systemctl(1), journalctl(1), /usr/share/doc/bbedge/FLASHING.md",
    )]);
    r.to_roff()
}

/// The README's exit-code table as (exit, meaning), markdown removed.
fn readme_exit_codes() -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let section = readme
        .split("### Exit codes")
        .nth(1)
        .expect("README has an exit-code section");
    let plain = |cell: &str| {
        cell.replace("**", "")
            .replace('`', "")
            .replace('\u{1}', "|")
            .trim()
            .to_owned()
    };
    section
        .lines()
        .skip_while(|l| !l.starts_with("| Exit"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|row| {
            let cells: Vec<String> = row.replace("\\|", "\u{1}").split('|').map(plain).collect();
            (cells[1].clone(), cells[2].clone())
        })
        .collect()
}

/// The files on disk under cross/debian/generated/, by the same names.
fn on_disk() -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for sub in ["completions", "man"] {
        let Ok(dir) = std::fs::read_dir(generated_dir().join(sub)) else {
            continue;
        };
        for entry in dir {
            let entry = entry.unwrap();
            let name = format!("{sub}/{}", entry.file_name().to_string_lossy());
            files.insert(name, std::fs::read(entry.path()).unwrap());
        }
    }
    files
}

#[test]
fn the_packaged_completions_and_man_pages_are_what_the_clap_definitions_give() {
    let want = generate();
    if std::env::var_os("BBEDGE_BLESS").is_some() {
        for name in on_disk().keys().filter(|k| !want.contains_key(*k)) {
            std::fs::remove_file(generated_dir().join(name)).unwrap();
        }
        for (name, bytes) in &want {
            let path = generated_dir().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
    }
    let have = on_disk();
    let stale: Vec<&String> = want
        .keys()
        .chain(have.keys())
        .filter(|k| want.get(*k) != have.get(*k))
        .collect();
    assert!(
        stale.is_empty(),
        "cross/debian/generated/ differs from the clap definitions in {stale:?}; \
         regenerate with `BBEDGE_BLESS=1 cargo test --test packaging` and commit it"
    );
}

#[test]
fn the_man_page_and_the_bash_completion_name_every_subcommand() {
    let files = generate();
    let text = |name: &str| String::from_utf8(files[name].clone()).unwrap();
    let man = text("man/bbedge.1");
    let bash = text("completions/bbedge.bash");
    assert!(man.starts_with(".ie"), "roff: {}", &man[..40]);
    assert!(man.contains(".TH bbedge 1"), "{man}");
    for sub in SUBCOMMANDS {
        // The top page lists each subcommand with its own page; the bash completion
        // completes each word after `bbedge`.
        assert!(
            man.contains(&format!("bbedge\\-{sub}(1)")),
            "man page lacks {sub}"
        );
        assert!(
            files.contains_key(&format!("man/bbedge-{sub}.1")),
            "no page for {sub}"
        );
        assert!(
            bash.contains(&format!("bbedge,{sub})")),
            "bash completion lacks {sub}"
        );
    }
    // Nested subcommands and their flags: `bbedge token list --json`.
    assert!(files.contains_key("man/bbedge-token-list.1"));
    assert!(
        bash.contains("bbedge__token__list)")
            || bash.contains("bbedge__subcmd__token__subcmd__list)")
    );
    assert!(text("man/bbedge-token-list.1").contains("\\-\\-json"));
    assert!(text("completions/_bbedge").starts_with("#compdef bbedge"));
    assert!(text("completions/bbedge.fish").contains("complete -c bbedge"));
    // The admin's sections, the exit codes being the README's.
    for section in [
        ".SH \"EXIT STATUS\"",
        ".SH ENVIRONMENT",
        ".SH FILES",
        ".SH \"SEE ALSO\"",
    ] {
        assert!(man.contains(section), "no {section}");
    }
    let codes = readme_exit_codes();
    assert!(codes.len() >= 12, "{codes:?}");
    for (code, meaning) in &codes {
        assert!(
            man.contains(&format!("\\fB{code}\\fR")),
            "exit {code} missing"
        );
        assert!(!meaning.contains('`') && !meaning.is_empty(), "{meaning}");
    }
    assert!(codes
        .iter()
        .any(|(c, m)| c == "64" && m.starts_with("EX_USAGE") && m.contains("BBEDGE_*")));
    assert!(
        codes
            .iter()
            .any(|(c, m)| c == "74" && m.contains("| head -0")),
        "{codes:?}"
    );
    assert!(man.contains("/etc/bbedge/bbedge.toml.d/*.toml"));
    // No build-specific text: the page is the same for every target.
    assert!(!man.contains(env!("BBEDGE_GIT_HASH")) || env!("BBEDGE_GIT_HASH") == "unknown");
}

/// `[package.metadata.deb] assets` of Cargo.toml: (source, destination, mode).
fn deb_assets() -> Vec<(String, String, String)> {
    let manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string(repo().join("Cargo.toml")).unwrap()).unwrap();
    manifest["package"]["metadata"]["deb"]["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let a = a.as_array().unwrap();
            let s = |i: usize| a[i].as_str().unwrap().to_owned();
            (s(0), s(1), s(2))
        })
        .collect()
}

#[test]
fn the_package_installs_the_completions_and_man_pages_where_shells_and_man_look() {
    let assets = deb_assets();
    let dest = |src: &str| {
        assets.iter().find(|(s, _, _)| s == src).map_or_else(
            || panic!("Cargo.toml packages no {src}"),
            |(_, d, m)| (d.as_str(), m.as_str()),
        )
    };
    let g = "cross/debian/generated";
    assert_eq!(
        dest(&format!("{g}/completions/bbedge.bash")),
        ("usr/share/bash-completion/completions/bbedge", "644")
    );
    assert_eq!(
        dest(&format!("{g}/completions/_bbedge")),
        ("usr/share/zsh/vendor-completions/_bbedge", "644")
    );
    assert_eq!(
        dest(&format!("{g}/completions/bbedge.fish")),
        ("usr/share/fish/vendor_completions.d/bbedge.fish", "644")
    );
    assert_eq!(
        dest(&format!("{g}/man/*.1")),
        ("usr/share/man/man1/", "644")
    );
    // Every asset other than the binary exists as a file now: `cargo deb --no-build`
    // builds nothing, so a missing one would only show up at package time.
    for (src, _, _) in &assets {
        if src.starts_with("target/") {
            continue;
        }
        if let Some(dir) = src.strip_suffix("/*.1") {
            let pages = std::fs::read_dir(repo().join(dir)).unwrap().count();
            assert!(pages > SUBCOMMANDS.len(), "{src}: {pages} pages");
        } else {
            assert!(repo().join(src).is_file(), "asset {src} is not a file");
        }
    }
}

/// What bash offers for `words` (the last one being completed) with the packaged file.
#[allow(
    clippy::unnecessary_debug_formatting,
    reason = "{:?} quotes the path for the shell on purpose"
)]
fn bash_complete(words: &[&str]) -> Vec<String> {
    let script = format!(
        "source {:?}; COMP_WORDS=({}); COMP_CWORD={}; COMP_LINE=\"${{COMP_WORDS[*]}}\"; \
         _bbedge bbedge \"${{COMP_WORDS[-1]}}\" \"${{COMP_WORDS[-2]}}\"; \
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        generated_dir().join("completions/bbedge.bash"),
        words
            .iter()
            .map(|w| format!("'{w}'"))
            .collect::<Vec<_>>()
            .join(" "),
        words.len() - 1
    );
    let out = std::process::Command::new("bash")
        .args(["--noprofile", "--norc", "-c", &script])
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn bash_completes_subcommands_and_flags_with_the_packaged_file() {
    assert_eq!(bash_complete(&["bbedge", "tok"]), ["token"]);
    assert_eq!(bash_complete(&["bbedge", "token", "li"]), ["list"]);
    assert_eq!(
        bash_complete(&["bbedge", "token", "list", "--j"]),
        ["--json"]
    );
    assert_eq!(
        bash_complete(&["bbedge", "config", "check", "--j"]),
        ["--json"]
    );
    let roles = bash_complete(&["bbedge", "token", "add", "--role", ""]);
    for role in ["agent", "operator", "observer"] {
        assert!(roles.iter().any(|r| r == role), "{roles:?}");
    }
}
