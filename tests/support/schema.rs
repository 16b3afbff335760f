//! The shared canonical schema and example frames, read from `../shared/protocol` (test
//! data under a stricter licence: never copied into the product).

use serde_json::Value;
use std::path::PathBuf;

/// The schema with `date-time` format checking on.
pub struct Schema {
    validator: jsonschema::Validator,
}

impl Schema {
    /// Loads `broadcast-protocol.schema.json`.
    pub fn load() -> Schema {
        let path = protocol_dir().join("broadcast-protocol.schema.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(&schema)
            .expect("schema compiles");
        Schema { validator }
    }

    /// The schema's complaints about `frame` (empty when valid).
    pub fn errors(&self, frame: &Value) -> Vec<String> {
        self.validator
            .iter_errors(frame)
            .map(|e| e.to_string())
            .collect()
    }

    /// Panics with the complaints unless `frame` is valid.
    pub fn assert_valid(&self, frame: &Value) {
        let errors = self.errors(frame);
        assert!(
            errors.is_empty(),
            "frame fails the schema: {errors:?}\n{frame:#}"
        );
    }

    /// Whether `frame` is valid.
    pub fn is_valid(&self, frame: &Value) -> bool {
        self.validator.is_valid(frame)
    }
}

/// `../shared/protocol`.
pub fn protocol_dir() -> PathBuf {
    super::shared_dir().join("protocol")
}

/// Every `*.json` in `vectors/<sub>` (sub = "", "invalid", "off-schema"), by file name.
pub fn vectors(sub: &str) -> Vec<(String, Value)> {
    let dir = protocol_dir().join("vectors").join(sub);
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let name = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(&p).expect("vector readable");
            (name, serde_json::from_str(&text).expect("vector is JSON"))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// One vector by path under `vectors/`.
pub fn vector(rel: &str) -> Value {
    let p = protocol_dir().join("vectors").join(rel);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
    serde_json::from_str(&text).expect("vector is JSON")
}
