//! Shared helpers: the repository root, running commands with good errors, the cached tool binaries.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// The workspace root (the parent of `xtask/`).
///
/// `cargo xtask` (`cargo run`) names the checkout it runs from in `CARGO_MANIFEST_DIR`; the path compiled
/// in is only the fallback, for the binary run directly. (Two checkouts sharing one `CARGO_TARGET_DIR`
/// may run an xtask built in the other, which then built and benchmarked the other checkout.)
pub fn root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest_dir
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Runs `cmd`, inheriting stdio; fails with the command line and exit status.
pub fn run(cmd: &mut Command) -> Result<()> {
    let line = format!("{cmd:?}");
    let status = cmd.status().with_context(|| format!("starting {line}"))?;
    if !status.success() {
        bail!("{line} failed: {status}");
    }
    Ok(())
}

/// Runs `cmd` and returns its stdout; on failure the error carries stderr.
pub fn output(cmd: &mut Command) -> Result<String> {
    let line = format!("{cmd:?}");
    let out = cmd
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("starting {line}"))?;
    if !out.status.success() {
        bail!(
            "{line} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// The cached control-plane binaries.
pub struct Tools {
    /// Directory holding `<name>-<version>` binaries.
    pub dir: PathBuf,
}

impl Tools {
    fn find(&self, prefix: &str) -> Result<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(prefix) && !n.ends_with(".tmp"))
            })
            .collect();
        found.sort();
        found
            .pop()
            .with_context(|| format!("no {prefix}* in {}", self.dir.display()))
    }
    /// Path of a Kubernetes binary, etcd or helm by name (`kube-apiserver`, `etcd`, `helm`, ...).
    pub fn bin(&self, name: &str) -> Result<PathBuf> {
        self.find(&format!("{name}-v"))
    }
}

/// Builds missing tools (first run only) and returns where they are.
pub fn tools() -> Result<Tools> {
    let script = root().join("hack/build-tools.sh");
    let dir = output(Command::new("bash").arg(&script).stderr(Stdio::inherit()))
        .context("building the control-plane tools (hack/build-tools.sh); needs Go >= 1.26 and the Go module proxy")?;
    let dir = dir.lines().last().unwrap_or_default().trim().to_string();
    Ok(Tools {
        dir: PathBuf::from(dir),
    })
}

/// Builds the workspace binaries the cluster runs (sim-kubelet, fake-inference) and returns the target dir.
pub fn build_cluster_binaries() -> Result<PathBuf> {
    run(Command::new(env!("CARGO")).current_dir(root()).args([
        "build",
        "--quiet",
        "-p",
        "sim-kubelet",
        "-p",
        "fake-inference",
        // sim-kubelet runs pods of image pd-orchestrator/dlx:dev as this binary.
        "-p",
        "dlx",
    ]))?;
    Ok(target_dir().join("debug"))
}

/// The cargo target directory (honours CARGO_TARGET_DIR).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}
