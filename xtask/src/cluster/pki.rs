//! A fresh PKI per cluster, made with the `openssl` CLI: a cluster CA, the apiserver's serving certificate
//! (127.0.0.1, localhost and the in-cluster names), an admin client certificate in `system:masters`, the
//! service-account signing key, and a front-proxy CA + client for aggregated APIs. All keys are P-256.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;

use crate::util::run;

pub struct Pki {
    pub dir: PathBuf,
}

/// `openssl req` arguments for a new unencrypted P-256 key.
const NEW_P256_KEY: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
];

fn openssl(dir: &Path, args: &[&str]) -> Result<()> {
    run(Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null()))
}

/// `openssl req` with a new P-256 key written to `<name>.key`, plus `args`.
fn req_with_new_key(dir: &Path, name: &str, args: &[&str]) -> Result<()> {
    let keyout = format!("{name}.key");
    let mut all = vec!["req"];
    all.extend(NEW_P256_KEY);
    all.extend(["-keyout", keyout.as_str()]);
    all.extend(args);
    openssl(dir, &all)
}

fn ca(dir: &Path, name: &str, cn: &str) -> Result<()> {
    let (out, subj) = (format!("{name}.crt"), format!("/CN={cn}"));
    req_with_new_key(
        dir,
        name,
        &[
            "-x509",
            "-out",
            &out,
            "-days",
            "3650",
            "-subj",
            &subj,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        ],
    )
}

fn leaf(dir: &Path, name: &str, ca: &str, subj: &str, ext: &str) -> Result<()> {
    req_with_new_key(dir, name, &["-out", &format!("{name}.csr"), "-subj", subj])?;
    let extfile = format!("{name}.ext");
    fs::write(dir.join(&extfile), ext)?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{name}.crt"),
            "-days",
            "365",
            "-extfile",
            &extfile,
        ],
    )
}

/// Generates every key and certificate into `dir`.
pub fn generate(dir: &Path) -> Result<Pki> {
    fs::create_dir_all(dir)?;
    ca(dir, "ca", "pd-orchestrator-local-ca")?;
    let sans = [
        "IP:127.0.0.1",
        &format!("IP:{}", super::net::HOST_IP),
        "IP:10.96.0.1",
        "DNS:localhost",
        "DNS:kubernetes",
        "DNS:kubernetes.default",
        "DNS:kubernetes.default.svc",
        "DNS:kubernetes.default.svc.cluster.local",
    ]
    .join(",");
    leaf(
        dir,
        "apiserver",
        "ca",
        "/CN=kube-apiserver",
        &format!(
            "subjectAltName={sans}\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\nbasicConstraints=CA:FALSE\n"
        ),
    )?;
    let client = "extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\nbasicConstraints=CA:FALSE\n";
    leaf(dir, "admin", "ca", "/O=system:masters/CN=admin", client)?;
    ca(dir, "front-proxy-ca", "pd-orchestrator-front-proxy-ca")?;
    leaf(
        dir,
        "front-proxy-client",
        "front-proxy-ca",
        "/CN=front-proxy-client",
        client,
    )?;
    openssl(
        dir,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "sa.key",
        ],
    )?;
    openssl(dir, &["ec", "-in", "sa.key", "-pubout", "-out", "sa.pub"])?;
    Ok(Pki {
        dir: dir.to_path_buf(),
    })
}

impl Pki {
    fn b64(&self, file: &str) -> Result<String> {
        let out = crate::util::output(
            Command::new("base64")
                .args(["-w0"])
                .arg(self.dir.join(file)),
        )?;
        Ok(out.trim().to_string())
    }

    /// Writes a self-contained admin kubeconfig for `https://127.0.0.1:<port>`.
    pub fn write_kubeconfig(&self, path: &Path, port: u16) -> Result<()> {
        let config = format!(
            "apiVersion: v1
kind: Config
clusters:
- name: pdo-local
  cluster:
    server: https://127.0.0.1:{port}
    certificate-authority-data: {ca}
users:
- name: pdo-admin
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
contexts:
- name: pdo-local
  context: {{cluster: pdo-local, user: pdo-admin, namespace: default}}
current-context: pdo-local
",
            ca = self.b64("ca.crt")?,
            cert = self.b64("admin.crt")?,
            key = self.b64("admin.key")?,
        );
        fs::write(path, config)?;
        Ok(())
    }
}
