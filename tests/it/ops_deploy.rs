//! `deploy/kubernetes/`: every manifest validates against the Kubernetes schemas
//! (`kubernetes-validate --strict`, installed by `scripts/setup` into `.venv-deploy`), and the
//! ConfigMap's `pgcloak.toml` and rules load with pgcloak's own loaders.

use std::path::{Path, PathBuf};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes")
}

/// The block scalar `key: |` of the ConfigMap (its lines, de-indented).
fn block(yaml: &str, key: &str) -> String {
    let mut lines = yaml.lines().skip_while(|l| l.trim() != format!("{key}: |"));
    lines
        .next()
        .unwrap_or_else(|| panic!("no {key} in the ConfigMap"));
    lines
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| l.strip_prefix("    ").unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn manifests_validate_and_the_configmap_config_loads() {
    let validator =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-deploy/bin/kubernetes-validate");
    assert!(
        validator.exists(),
        "run scripts/setup (installs kubernetes-validate)"
    );
    let manifests: Vec<PathBuf> = [
        "configmap.yaml",
        "deployment.yaml",
        "service.yaml",
        "pdb.yaml",
    ]
    .iter()
    .map(|f| dir().join(f))
    .collect();
    let out = std::process::Command::new(&validator)
        .arg("--strict")
        .args(&manifests)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(!text.contains("ERROR") && !text.contains("WARN"), "{text}");

    let deployment = std::fs::read_to_string(dir().join("deployment.yaml")).unwrap();
    assert!(deployment.contains("replicas: 2") && deployment.contains("path: /readyz"));
    let cm = std::fs::read_to_string(dir().join("configmap.yaml")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("pgcloak.toml");
    let toml = block(&cm, "pgcloak.toml");
    let cfg = pgcloak::config::Config::from_str_at(&toml, &config).unwrap();
    assert_eq!(cfg.metrics.unwrap().address, "0.0.0.0:9187");
    assert!(cfg.audit.unwrap().stdout);
    let rules = tmp.path().join("clinic.toml");
    std::fs::write(&rules, block(&cm, "clinic.toml")).unwrap();
    let loaded = pgcloak::config::load_rules(&[rules]).unwrap();
    assert_eq!(loaded[0].database, "clinic");
    assert_eq!(loaded[0].rules.columns().count(), 4);
}
