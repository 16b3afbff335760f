//! Loading order: built-in defaults, the file, its drop-ins (`<file>.d/*.toml`, sorted),
//! then `BBEDGE_<SECTION>__<KEY>` environment variables. Each layer is merged key by
//! key; after each one the result is deserialised, so an error is blamed on the layer
//! that introduced it.

use super::{check, Config, Error, DEFAULT_TOML};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::{Table, Value};

/// The config file used when `--config` is not given, if it exists.
pub const DEFAULT_PATH: &str = "/etc/bbedge/bbedge.toml";
/// Prefix of environment variables that set config keys (`BBEDGE_REALTIME__PORT`).
pub const ENV_PREFIX: &str = "BBEDGE_";

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The built-in default file.
    BuiltIn,
    /// A config file or drop-in.
    File(PathBuf),
    /// An environment variable.
    Env(String),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::BuiltIn => f.write_str("built-in defaults"),
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Env(name) => write!(f, "environment variable {name}"),
        }
    }
}

/// A loaded, checked configuration and where each key came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// The layers applied, in order (built-in first).
    pub layers: Vec<Source>,
    /// For each dotted key set by a layer, the last layer that set it.
    pub provenance: BTreeMap<String, Source>,
}

impl Loaded {
    /// Where `key` was last set (built-in defaults when no layer set it).
    pub fn origin(&self, key: &str) -> Source {
        self.provenance.get(key).cloned().unwrap_or(Source::BuiltIn)
    }
}

/// Builds a [`Loaded`] configuration from files and an environment.
#[derive(Debug, Clone, Default)]
pub struct Loader {
    file: Option<PathBuf>,
    default_path: Option<PathBuf>,
    env: Vec<(String, String)>,
    /// `BBEDGE_*` variables whose name or value is not UTF-8: an error at load.
    env_not_utf8: Vec<String>,
}

impl Loader {
    /// A loader reading `--config` (if any), else [`DEFAULT_PATH`] when it exists, and
    /// the process's `BBEDGE_*` variables. Other variables are not read at all, so one
    /// that is not UTF-8 (`std::env::vars` would panic on it) does not matter; a
    /// `BBEDGE_*` one that is not UTF-8 fails [`Loader::load`], naming it.
    pub fn from_process(file: Option<PathBuf>) -> Self {
        Self {
            file,
            default_path: Some(PathBuf::from(DEFAULT_PATH)),
            ..Self::default()
        }
        .env_os(std::env::vars_os())
    }

    /// A loader with only the built-in defaults (tests add layers with the builders).
    pub fn builtin() -> Self {
        Self::default()
    }

    /// Reads this file (it must exist) and its drop-ins.
    pub fn file(mut self, path: impl Into<PathBuf>) -> Self {
        self.file = Some(path.into());
        self
    }

    /// Uses these environment variables instead of the process's.
    pub fn env<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.env = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        self
    }

    /// Uses these environment variables, as the OS gives them: only `BBEDGE_*` ones are
    /// kept; one whose name or value is not UTF-8 fails [`Loader::load`], naming it.
    pub fn env_os<I>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
    {
        use std::os::unix::ffi::OsStrExt;
        self.env.clear();
        self.env_not_utf8.clear();
        for (k, v) in vars {
            if !k.as_bytes().starts_with(ENV_PREFIX.as_bytes()) {
                continue;
            }
            match (k.to_str(), v.to_str()) {
                (Some(k), Some(v)) => self.env.push((k.to_owned(), v.to_owned())),
                _ => self.env_not_utf8.push(k.to_string_lossy().into_owned()),
            }
        }
        self
    }

    /// Loads, merges, deserialises and checks.
    pub fn load(&self) -> Result<Loaded, Error> {
        let mut merged = parse(DEFAULT_TOML, &Source::BuiltIn)?;
        let mut loaded = Loaded {
            config: to_config(&merged, &Source::BuiltIn)?,
            layers: vec![Source::BuiltIn],
            provenance: BTreeMap::new(),
        };
        for (source, table) in self.layers()? {
            merge(&mut merged, table, "", &source, &mut loaded.provenance);
            loaded.config = to_config(&merged, &source)?;
            loaded.layers.push(source);
        }
        check::check(&loaded)?;
        Ok(loaded)
    }

    /// For a configuration that does not load: the built-in defaults with the
    /// `[daemon]` and `[status_led]` sections the layers give, each taken only when it
    /// is valid on its own (a layer that cannot be read or parsed is skipped). Only
    /// used to show on the LED why the daemon stopped; `None` if nothing loads.
    pub fn salvage(&self) -> Option<Config> {
        let defaults = parse(DEFAULT_TOML, &Source::BuiltIn).ok()?;
        let mut config = to_config(&defaults, &Source::BuiltIn).ok()?;
        let mut merged = defaults.clone();
        let mut ignored = BTreeMap::new();
        for table in self.lenient_layers() {
            merge(&mut merged, table, "", &Source::BuiltIn, &mut ignored);
        }
        for section in ["daemon", "status_led"] {
            let (Some(value), mut alone) = (merged.get(section), defaults.clone()) else {
                continue;
            };
            alone.insert(section.to_owned(), value.clone());
            if let Ok(c) = to_config(&alone, &Source::BuiltIn) {
                match section {
                    "daemon" => config.daemon = c.daemon,
                    _ => config.status_led = c.status_led,
                }
            }
        }
        let led = &config.status_led;
        if led.sysfs_name.is_empty() || led.sysfs_name.contains('/') {
            let c = to_config(&defaults, &Source::BuiltIn).ok()?;
            config.status_led = c.status_led;
        }
        Some(config)
    }

    /// [`Loader::layers`], skipping what cannot be read, parsed or mapped.
    fn lenient_layers(&self) -> Vec<Table> {
        let mut out = Vec::new();
        if let Some(path) = self.file_to_read() {
            let mut files = vec![path.clone()];
            files.extend(dropins(&path).unwrap_or_default());
            out.extend(
                files
                    .iter()
                    .filter_map(|f| read_layer(f).ok())
                    .map(|(_, t)| t),
            );
        }
        out.extend(
            self.config_env()
                .into_iter()
                .filter_map(|(name, value)| env_layer(name, value).ok()),
        );
        out
    }

    fn file_to_read(&self) -> Option<PathBuf> {
        match (&self.file, &self.default_path) {
            (Some(p), _) => Some(p.clone()),
            (None, Some(d)) if d.exists() => Some(d.clone()),
            _ => None,
        }
    }

    /// The `BBEDGE_<SECTION>__<KEY>` variables, sorted.
    fn config_env(&self) -> Vec<&(String, String)> {
        let mut env: Vec<_> = self
            .env
            .iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX) && k.contains("__"))
            .collect();
        env.sort();
        env
    }

    fn layers(&self) -> Result<Vec<(Source, Table)>, Error> {
        if let Some(name) = self.env_not_utf8.first() {
            return Err(Error::Env {
                name: name.clone(),
                message: "not valid UTF-8; fix or unset it".into(),
            });
        }
        let mut out = Vec::new();
        if let Some(path) = self.file_to_read() {
            out.push(read_layer(&path)?);
            for dropin in dropins(&path)? {
                out.push(read_layer(&dropin)?);
            }
        }
        for (name, value) in self.config_env() {
            out.push((Source::Env(name.clone()), env_layer(name, value)?));
        }
        Ok(out)
    }
}

fn read_layer(path: &Path) -> Result<(Source, Table), Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    let source = Source::File(path.to_owned());
    let table = parse(&text, &source)?;
    Ok((source, table))
}

/// `<file>.d/*.toml`, sorted by name; a missing directory has none.
fn dropins(path: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut dir = path.as_os_str().to_owned();
    dir.push(".d");
    let dir = PathBuf::from(dir);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(Error::Read { path: dir, source }),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

fn parse(text: &str, source: &Source) -> Result<Table, Error> {
    text.parse::<Table>().map_err(|e| Error::Syntax {
        origin: source.to_string(),
        message: e.to_string().trim().replace('\n', " "),
    })
}

/// `BBEDGE_REALTIME__RATE_LIMITING__MESSAGES_PER_SECOND=5` → `{realtime.rate_limiting.messages_per_second = 5}`.
fn env_layer(name: &str, value: &str) -> Result<Table, Error> {
    let path: Vec<String> = name
        .strip_prefix(ENV_PREFIX)
        .unwrap_or(name)
        .split("__")
        .map(str::to_ascii_lowercase)
        .collect();
    if path.iter().any(String::is_empty) {
        return Err(Error::Env {
            name: name.to_owned(),
            message: "expected BBEDGE_<SECTION>__<KEY>, with `__` between the parts".into(),
        });
    }
    // A TOML literal (5, true, ["a"]) keeps its type; anything else is a string.
    let parsed = format!("v = {value}")
        .parse::<Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(value.to_owned()));
    let mut leaf = parsed;
    for part in path.iter().rev() {
        let mut t = Table::new();
        t.insert(part.clone(), leaf);
        leaf = Value::Table(t);
    }
    match leaf {
        Value::Table(t) => Ok(t),
        // `split` yields at least one part, so the loop made a table; no panic either way.
        _ => Err(Error::Env {
            name: name.to_owned(),
            message: "expected BBEDGE_<SECTION>__<KEY>".into(),
        }),
    }
}

fn merge(
    into: &mut Table,
    from: Table,
    prefix: &str,
    source: &Source,
    provenance: &mut BTreeMap<String, Source>,
) {
    for (key, value) in from {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match (into.get_mut(&key), value) {
            (Some(Value::Table(dst)), Value::Table(src)) => {
                merge(dst, src, &path, source, provenance);
            }
            (_, value) => {
                provenance.insert(path, source.clone());
                into.insert(key, value);
            }
        }
    }
}

fn to_config(table: &Table, source: &Source) -> Result<Config, Error> {
    let de = Value::Table(table.clone());
    serde_path_to_error::deserialize::<_, Config>(de).map_err(|e| {
        let key = e.path().to_string();
        // The deserializer appends "\nin `section`"; one line is enough, the key says where.
        let inner = e.inner().to_string();
        let message = inner.lines().next().unwrap_or_default().to_owned();
        if message.starts_with("unknown field") {
            Error::UnknownKey {
                origin: source.to_string(),
                key,
                message,
            }
        } else {
            Error::InvalidType {
                origin: source.to_string(),
                key,
                message,
            }
        }
    })
}
