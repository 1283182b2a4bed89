//! The real `kubectl`, for what users do with it (apply, scale, explain) and to see its exact messages.

use std::path::{Path, PathBuf};
use std::process::Stdio;

/// Runs `kubectl --kubeconfig <cluster>`.
#[derive(Clone, Debug)]
pub struct Kubectl {
    bin: PathBuf,
    kubeconfig: PathBuf,
}

/// What a kubectl run printed and how it ended.
#[derive(Debug)]
pub struct KubectlOutput {
    /// Exit success.
    pub success: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl KubectlOutput {
    /// Panics with both streams unless the command succeeded; returns stdout.
    pub fn ok(self) -> String {
        assert!(
            self.success,
            "kubectl failed:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self.stdout
    }
}

impl Kubectl {
    /// A kubectl for the given kubeconfig.
    pub fn new(bin: PathBuf, kubeconfig: PathBuf) -> Self {
        Self { bin, kubeconfig }
    }

    /// Runs kubectl with `args`, optionally feeding `stdin`.
    pub async fn run(&self, args: &[&str], stdin: Option<&str>) -> KubectlOutput {
        use tokio::io::AsyncWriteExt;
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.bin.display()));
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input.as_bytes())
                .await
                .expect("writing kubectl stdin");
        }
        let out = child.wait_with_output().await.expect("waiting for kubectl");
        KubectlOutput {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Waits until the CRD `name` reports `Established=True`. Polls instead of `kubectl wait`, which
    /// fails outright ("accessor error: <nil>") when it looks before the CRD has any status.
    pub async fn wait_crd_established(&self, name: &str) {
        crate::wait_until(
            &format!("CRD {name} to be Established"),
            std::time::Duration::from_secs(60),
            || async {
                let out = self
                    .run(
                        &[
                            "get",
                            "crd",
                            name,
                            "-o",
                            "jsonpath={.status.conditions[?(@.type=='Established')].status}",
                        ],
                        None,
                    )
                    .await;
                match (out.success, out.stdout.trim()) {
                    (true, "True") => Ok(Some(())),
                    (true, _) => Ok(None),
                    (false, _) => Err(out.stderr),
                }
            },
        )
        .await
    }

    /// Runs kubectl synchronously (for `Drop`); an error carries stderr.
    pub fn run_blocking(&self, args: &[&str]) -> Result<String, String> {
        let out = std::process::Command::new(&self.bin)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("starting {}: {e}", self.bin.display()))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// The kubeconfig path.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }
}

/// Deletes a ClusterRole and ClusterRoleBinding named `name` when dropped: the cluster-scoped part of a
/// chart's RBAC that a test installed (namespaced objects go with the test's namespace).
pub struct ClusterRbacGuard {
    /// The kubectl to delete with.
    pub kubectl: Kubectl,
    /// The name both objects share.
    pub name: String,
}

impl Drop for ClusterRbacGuard {
    fn drop(&mut self) {
        for kind in ["clusterrolebinding", "clusterrole"] {
            let _ = self
                .kubectl
                .run_blocking(&["delete", kind, &self.name, "--ignore-not-found"]);
        }
    }
}
