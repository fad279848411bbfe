//! Helpers shared by the workspace tests (`tests/tests/`) and the CLI tests
//! (`field-client/tests/`): JSON Schema validation of exports and driving
//! the real `field` binary.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use field_client::export::CampaignExport;
use serde_json::Value;

/// The repository's `schemas/` directory.
pub fn schemas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas")
}

fn schema(name: &str) -> jsonschema::Validator {
    let path = schemas_dir().join(format!("{name}.schema.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let schema: Value = serde_json::from_str(&text).unwrap();
    jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{name} schema does not compile: {e}"))
}

/// Validates `value` against `schemas/<name>.schema.json`, listing every error.
pub fn assert_valid(name: &str, value: &Value) {
    let validator = schema(name);
    let errors: Vec<String> = validator.iter_errors(value).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "{name} export is not schema-valid:\n{}", errors.join("\n"));
}

/// Validates every document of a campaign export against its schema.
pub fn assert_schema_valid(export: &CampaignExport) {
    assert_valid("campaign", &serde_json::to_value(&export.campaign).unwrap());
    for dossier in &export.dossiers {
        assert_valid("enterprise_dossier", &serde_json::to_value(dossier).unwrap());
    }
    if let Some(briefing) = &export.briefing {
        assert_valid("briefing", &serde_json::to_value(briefing).unwrap());
    }
}

/// The `field` binary built by `cargo test --workspace` beside this test.
pub fn field_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = dir.join(format!("field{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} not built: run `cargo test --workspace` (or `cargo build -p field-client`)",
        bin.display()
    );
    bin
}

/// One device driven through the CLI.
pub struct Device {
    pub home: PathBuf,
}

impl Device {
    pub fn new(root: &Path, name: &str) -> Self {
        let device = Self { home: root.join(name) };
        device.ok(&["init", "--name", name]);
        device
    }

    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(field_bin()).env("FIELD_HOME", &self.home).env_remove("RUST_LOG").args(args).output().unwrap()
    }

    /// Runs and expects success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "field {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs with --json and parses stdout.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    /// Runs and expects failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "field {args:?} should have failed");
        String::from_utf8(out.stderr).unwrap()
    }

    /// Creates the construction campaign of the CLI tests, kept in time
    /// zone `zone` (`None`: the default); returns its id.
    pub fn create_campaign(&self, zone: Option<&str>) -> String {
        let mut args = vec![
            "campaign",
            "create",
            "--name",
            "2026年建筑施工工伤风险联合检查",
            "--kind",
            "construction",
            "--start",
            "2026-11-24",
            "--end",
            "2026-11-25",
        ];
        args.extend(zone.into_iter().flat_map(|zone| ["--time-zone", zone]));
        self.json(&args)["id"].as_str().unwrap().to_owned()
    }

    pub fn key(&self) -> String {
        self.json(&["whoami"])["public_key"].as_str().unwrap().to_owned()
    }
}
