//! The plugin binary's `simulate` subcommand sees the plugin's own algorithm: the same registration runs
//! before the simulator as before the controller.

use std::process::Command;

const SCALER: &str = r#"
apiVersion: elasticscaler.io/v1alpha1
kind: ElasticScaler
metadata: {name: pairs, namespace: demo}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: llm}
  minReplicas: 1
  maxReplicas: 20
  trigger:
    type: MetricsTrigger
    metricsTrigger:
      scalingAlgorithm: Step
      algorithmConfig: {step: "4"}
      metrics:
      - type: Prometheus
        prometheus: {query: "sum(inflight)", target: {type: AverageValue, averageValue: "5"}}
"#;

fn simulate(test: &str, scaler: &str, samples: &str) -> std::process::Output {
    let dir = std::env::temp_dir().join(format!("es-example-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (s, m) = (dir.join("scaler.yaml"), dir.join("samples.jsonl"));
    std::fs::write(&s, scaler).unwrap();
    std::fs::write(&m, samples).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_elastic-scaler-example"))
        .arg("simulate")
        .arg("--scaler")
        .arg(&s)
        .arg("--samples")
        .arg(&m)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    out
}

#[test]
fn simulate_runs_the_plugin_algorithm() {
    // 11 in flight at 5 per replica needs 3 replicas: steps of 4 give 4; 23 needs 5 → 8.
    let samples = "{\"t\": 0, \"ready\": 2, \"current\": 2, \"metrics\": {\"Prometheus/sum(inflight)\": 11}}\n\
                   {\"t\": 15, \"ready\": 4, \"metrics\": {\"Prometheus/sum(inflight)\": 23}}\n";
    let out = simulate("runs", SCALER, samples);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert_eq!(lines[0]["recommended"], 4, "{stdout}");
    assert_eq!(lines[1]["recommended"], 8, "{stdout}");
    assert!(
        lines[0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("step"),
        "{stdout}"
    );
    assert_eq!(lines[2]["summary"]["algorithm"], "step", "{stdout}");
}

#[test]
fn simulate_checks_the_plugin_algorithm_config() {
    let out = simulate("config", &SCALER.replace("step: \"4\"", "stepp: \"4\""), "");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("stepp"), "{stderr}");
}
