//! The serving certificate: an in-memory store the TLS handshake reads on every connection (so a new
//! certificate applies to the next connection without a restart), fed either from files with hot reload or
//! by the self-managed issuer.
//!
//! **Self-managed.** A CA and a serving certificate are kept in a Secret (so every replica serves one
//! chain) and reconciled every `--cert-check-interval`: created when missing, the serving certificate
//! renewed `--cert-renew-before` its expiry (signed by the same CA, so caBundle does not change), the CA
//! renewed likewise, keeping the old CA in `ca.crt` beside the new one while it is valid. caBundle of our
//! ValidatingWebhookConfiguration and MutatingWebhookConfiguration is patched to `ca.crt`; after a new CA
//! the certificate it signed is served only `--ca-propagation-delay` later, once the API server trusts it.
//! Concurrent replicas write the Secret with its resourceVersion; a loser re-reads it on the next round.
//!
//! **Files.** `--tls-cert-file`/`--tls-key-file` (a cert-manager or Secret volume) are re-read every
//! `--tls-reload-interval`; a pair that changed and parses is installed, a broken pair is logged and the
//! previous certificate kept.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow};
use arc_swap::ArcSwapOption;
use base64::Engine;
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificate being served; read by every TLS handshake.
#[derive(Debug)]
pub struct CertStore {
    current: ArcSwapOption<CertifiedKey>,
    not_after: AtomicI64,
    /// The certificate and key PEM served, to skip reinstalling an unchanged pair.
    served_pem: Mutex<Vec<u8>>,
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.load_full()
    }
}

/// `notAfter` (Unix seconds) of the first certificate in `pem`.
pub fn not_after(pem: &[u8]) -> Result<i64> {
    let der = CertificateDer::pem_slice_iter(pem)
        .next()
        .ok_or_else(|| anyhow!("no certificate in PEM"))??;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| anyhow!("parsing certificate: {e}"))?;
    Ok(cert.validity().not_after.timestamp())
}

impl CertStore {
    /// An empty store (handshakes fail until a certificate is installed).
    pub fn new() -> Self {
        Self {
            current: ArcSwapOption::empty(),
            not_after: AtomicI64::new(0),
            served_pem: Mutex::default(),
        }
    }

    /// Parses and installs a PEM chain and key; returns whether it differs from the one served.
    pub fn install(&self, cert_pem: &[u8], key_pem: &[u8], metrics: &Metrics) -> Result<bool> {
        let pair = [cert_pem, key_pem].concat();
        if *self.served_pem.lock().expect("lock") == pair {
            return Ok(false);
        }
        let certs = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .context("reading the certificate PEM")?;
        if certs.is_empty() {
            return Err(anyhow!("no certificate in the certificate PEM"));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).context("reading the key PEM")?;
        let signing = provider()
            .key_provider
            .load_private_key(key)
            .context("loading the private key")?;
        let ck = CertifiedKey::new(certs, signing);
        ck.keys_match()
            .context("the key does not match the certificate")?;
        let expiry = not_after(cert_pem)?;
        self.current.store(Some(Arc::new(ck)));
        self.not_after.store(expiry, Ordering::Release);
        *self.served_pem.lock().expect("lock") = pair;
        metrics.cert_expiry.set(expiry);
        metrics.cert_reloads.inc();
        tracing::info!(not_after = expiry, "serving certificate installed");
        Ok(true)
    }

    /// A certificate is loaded and has not expired.
    pub fn valid_now(&self) -> bool {
        self.current.load().is_some() && now() < self.not_after.load(Ordering::Acquire)
    }
}

impl Default for CertStore {
    fn default() -> Self {
        Self::new()
    }
}

/// The rustls server configuration reading certificates from `store` (TLS 1.2/1.3, ALPN h2 and http/1.1).
pub fn server_config(store: Arc<CertStore>) -> Result<Arc<ServerConfig>> {
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(store);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Re-reads the certificate files every `interval` until `shutdown`; installs a changed, valid pair.
pub async fn watch_files(
    store: Arc<CertStore>,
    cert: PathBuf,
    key: PathBuf,
    interval: Duration,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    let mut last_error = String::new();
    loop {
        let loaded = async {
            let c = tokio::fs::read(&cert)
                .await
                .with_context(|| format!("reading {}", cert.display()))?;
            let k = tokio::fs::read(&key)
                .await
                .with_context(|| format!("reading {}", key.display()))?;
            store.install(&c, &k, &metrics)
        }
        .await;
        match loaded {
            Ok(_) => last_error.clear(),
            Err(e) => {
                let e = format!("{e:#}");
                if e != last_error {
                    tracing::warn!(error = %e, "certificate files not loaded; keeping the previous certificate");
                    last_error = e;
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// A generated certificate and key, PEM.
#[derive(Clone, Debug)]
pub struct Pem {
    /// The certificate.
    pub cert: String,
    /// Its private key.
    pub key: String,
}

fn offset(unix: i64) -> Result<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp(unix).map_err(|e| anyhow!("{e}"))
}

/// A new self-signed CA valid for `validity`.
pub fn new_ca(validity: Duration) -> Result<Pem> {
    let key = KeyPair::generate()?;
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name.push(
        DnType::CommonName,
        format!("pd-orchestrator admission-webhook CA {}", now()),
    );
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = offset(now() - 60)?;
    p.not_after = offset(now() + validity.as_secs() as i64)?;
    let cert = p.self_signed(&key)?;
    Ok(Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// A serving certificate for `sans` signed by `ca`, valid for `validity` but never past the CA.
pub fn new_leaf(ca: &Pem, sans: &[String], validity: Duration) -> Result<Pem> {
    let ca_key = KeyPair::from_pem(&ca.key)?;
    let ca_end = not_after(ca.cert.as_bytes())?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert, ca_key)?;
    let key = KeyPair::generate()?;
    let mut p = CertificateParams::new(sans.to_vec())?;
    p.distinguished_name.push(
        DnType::CommonName,
        sans.first()
            .cloned()
            .unwrap_or_else(|| "admission-webhook".into()),
    );
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.not_before = offset(now() - 60)?;
    p.not_after = offset((now() + validity.as_secs() as i64).min(ca_end))?;
    let cert = p.signed_by(&key, &issuer)?;
    Ok(Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// Settings of the self-managed mode.
#[derive(Clone, Debug)]
pub struct SelfManaged {
    /// Namespace and name of the Secret.
    pub namespace: String,
    /// Secret name.
    pub secret: String,
    /// SANs of the serving certificate.
    pub sans: Vec<String>,
    /// Serving certificate validity.
    pub validity: Duration,
    /// CA validity.
    pub ca_validity: Duration,
    /// Renew this long before expiry.
    pub renew_before: Duration,
    /// Reconcile period.
    pub interval: Duration,
    /// Wait after publishing a new CA.
    pub propagation_delay: Duration,
    /// ValidatingWebhookConfiguration to patch.
    pub validating: Option<String>,
    /// MutatingWebhookConfiguration to patch.
    pub mutating: Option<String>,
}

const SANS_ANNOTATION: &str = "admission-webhook.pd-orchestrator.io/sans";

/// What the Secret holds.
struct Material {
    ca: Pem,
    bundle: String,
    leaf: Pem,
    sans: String,
}

fn material(s: &Secret) -> Option<Material> {
    let d = s.data.as_ref()?;
    let get = |k: &str| String::from_utf8(d.get(k)?.0.clone()).ok();
    Some(Material {
        ca: Pem {
            cert: get("ca-current.crt")?,
            key: get("ca.key")?,
        },
        bundle: get("ca.crt")?,
        leaf: Pem {
            cert: get("tls.crt")?,
            key: get("tls.key")?,
        },
        sans: s
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(SANS_ANNOTATION).cloned())
            .unwrap_or_default(),
    })
}

fn secret_of(name: &str, m: &Material) -> Secret {
    let data: BTreeMap<String, ByteString> = [
        ("ca-current.crt", &m.ca.cert),
        ("ca.key", &m.ca.key),
        ("ca.crt", &m.bundle),
        ("tls.crt", &m.leaf.cert),
        ("tls.key", &m.leaf.key),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), ByteString(v.clone().into_bytes())))
    .collect();
    let mut s = Secret {
        type_: Some("kubernetes.io/tls".into()),
        data: Some(data),
        ..Default::default()
    };
    s.metadata.name = Some(name.into());
    s.metadata.annotations = Some([(SANS_ANNOTATION.to_string(), m.sans.clone())].into());
    s.metadata.labels = Some(
        [(
            api_types::keys::labels::MANAGED_BY.to_string(),
            api_types::keys::labels::MANAGED_BY_VALUE.to_string(),
        )]
        .into(),
    );
    s
}

/// The CAs of `bundle` that are still valid, as PEM blocks.
fn valid_cas(bundle: &str) -> Vec<String> {
    CertificateDer::pem_slice_iter(bundle.as_bytes())
        .filter_map(Result::ok)
        .filter(|der| {
            x509_parser::parse_x509_certificate(der)
                .is_ok_and(|(_, c)| c.validity().not_after.timestamp() > now())
        })
        .map(|der| {
            let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
            let lines: Vec<&str> = b64
                .as_bytes()
                .chunks(64)
                .map(|c| std::str::from_utf8(c).unwrap_or_default())
                .collect();
            format!(
                "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
                lines.join("\n")
            )
        })
        .collect()
}

impl SelfManaged {
    /// What the Secret should hold next, given what it holds (`None`: nothing to change).
    fn next(&self, current: Option<Material>) -> Result<Option<(Material, bool)>> {
        let renew = self.renew_before.as_secs() as i64;
        let sans = self.sans.join(",");
        let Some(m) = current else {
            let ca = new_ca(self.ca_validity)?;
            let leaf = new_leaf(&ca, &self.sans, self.validity)?;
            let bundle = ca.cert.clone();
            return Ok(Some((
                Material {
                    ca,
                    bundle,
                    leaf,
                    sans,
                },
                true,
            )));
        };
        if not_after(m.ca.cert.as_bytes())? - now() < renew {
            let ca = new_ca(self.ca_validity)?;
            let leaf = new_leaf(&ca, &self.sans, self.validity)?;
            let mut bundle = ca.cert.clone();
            for old in valid_cas(&m.bundle).into_iter().take(2) {
                bundle.push_str(&old);
            }
            tracing::info!(
                "renewing the webhook CA; the previous CA stays in caBundle until it expires"
            );
            return Ok(Some((
                Material {
                    ca,
                    bundle,
                    leaf,
                    sans,
                },
                true,
            )));
        }
        if not_after(m.leaf.cert.as_bytes())? - now() < renew || m.sans != sans {
            let leaf = new_leaf(&m.ca, &self.sans, self.validity)?;
            tracing::info!("renewing the serving certificate");
            return Ok(Some((Material { leaf, sans, ..m }, false)));
        }
        Ok(None)
    }

    /// One reconcile round: Secret, caBundles, served certificate.
    pub async fn reconcile(
        &self,
        client: &Client,
        store: &CertStore,
        metrics: &Metrics,
    ) -> Result<()> {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &self.namespace);
        let existing = secrets
            .get_opt(&self.secret)
            .await
            .context("reading the TLS Secret")?;
        let current = existing.as_ref().and_then(material);
        let (m, new_ca) = match self.next(current)? {
            None => (
                existing
                    .as_ref()
                    .and_then(material)
                    .ok_or_else(|| anyhow!("unreadable Secret"))?,
                false,
            ),
            Some((m, new_ca)) => {
                let mut s = secret_of(&self.secret, &m);
                let written = match &existing {
                    None => secrets.create(&PostParams::default(), &s).await,
                    Some(old) => {
                        s.metadata.resource_version = old.metadata.resource_version.clone();
                        secrets
                            .replace(&self.secret, &PostParams::default(), &s)
                            .await
                    }
                };
                match written {
                    Ok(_) => (m, new_ca),
                    // Another replica wrote it first: use theirs next round.
                    Err(kube::Error::Api(e)) if e.code == 409 => {
                        tracing::info!("TLS Secret changed concurrently; re-reading next round");
                        return Ok(());
                    }
                    Err(e) => return Err(e).context("writing the TLS Secret"),
                }
            }
        };
        let mut bundle_changed = false;
        if let Some(name) = &self.validating {
            bundle_changed |=
                patch_bundle::<ValidatingWebhookConfiguration>(client, name, &m.bundle, |c| {
                    c.webhooks
                        .iter()
                        .flatten()
                        .map(|w| w.client_config.ca_bundle.as_ref().map(|b| b.0.clone()))
                        .collect()
                })
                .await?;
        }
        if let Some(name) = &self.mutating {
            bundle_changed |=
                patch_bundle::<MutatingWebhookConfiguration>(client, name, &m.bundle, |c| {
                    c.webhooks
                        .iter()
                        .flatten()
                        .map(|w| w.client_config.ca_bundle.as_ref().map(|b| b.0.clone()))
                        .collect()
                })
                .await?;
        }
        if (new_ca || bundle_changed) && store.valid_now() {
            tokio::time::sleep(self.propagation_delay).await;
        }
        store.install(m.leaf.cert.as_bytes(), m.leaf.key.as_bytes(), metrics)?;
        Ok(())
    }

    /// Reconciles until `shutdown`, retrying failures every few seconds.
    pub async fn run(
        self,
        client: Client,
        store: Arc<CertStore>,
        metrics: Metrics,
        shutdown: CancellationToken,
    ) {
        loop {
            let wait = match self.reconcile(&client, &store, &metrics).await {
                Ok(()) => self.interval,
                Err(e) => {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "self-managed certificate round failed"
                    );
                    self.interval.min(Duration::from_secs(5))
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// Sets every webhook's caBundle in configuration `name` to `bundle`; returns whether it changed anything.
/// A configuration that does not exist yet is skipped (the chart or the operator creates it).
async fn patch_bundle<K>(
    client: &Client,
    name: &str,
    bundle: &str,
    bundles: impl Fn(&K) -> Vec<Option<Vec<u8>>>,
) -> Result<bool>
where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
{
    let api: Api<K> = Api::all(client.clone());
    let Some(cfg) = api
        .get_opt(name)
        .await
        .with_context(|| format!("reading {} {name}", K::kind(&())))?
    else {
        tracing::warn!(kind = %K::kind(&()), name, "webhook configuration not found; caBundle not set");
        return Ok(false);
    };
    let current = bundles(&cfg);
    if current
        .iter()
        .all(|b| b.as_deref() == Some(bundle.as_bytes()))
    {
        return Ok(false);
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(bundle);
    let ops: Vec<serde_json::Value> = (0..current.len())
        .map(|i| serde_json::json!({"op": "add", "path": format!("/webhooks/{i}/clientConfig/caBundle"), "value": b64}))
        .collect();
    let patch: json_patch::Patch = serde_json::from_value(serde_json::Value::Array(ops))?;
    api.patch(name, &PatchParams::default(), &Patch::<()>::Json(patch))
        .await
        .with_context(|| format!("patching caBundle of {} {name}", K::kind(&())))?;
    tracing::info!(kind = %K::kind(&()), name, "caBundle updated");
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_chain_installs_and_leaf_never_outlives_ca() {
        let ca = new_ca(Duration::from_secs(100)).unwrap();
        let leaf = new_leaf(
            &ca,
            &["127.0.0.1".into(), "svc.ns.svc".into()],
            Duration::from_secs(1000),
        )
        .unwrap();
        assert!(not_after(leaf.cert.as_bytes()).unwrap() <= not_after(ca.cert.as_bytes()).unwrap());
        let store = CertStore::new();
        let mut reg = prometheus_client::registry::Registry::default();
        let m = Metrics::register(&mut reg);
        assert!(!store.valid_now());
        assert!(
            store
                .install(leaf.cert.as_bytes(), leaf.key.as_bytes(), &m)
                .unwrap()
        );
        assert!(
            !store
                .install(leaf.cert.as_bytes(), leaf.key.as_bytes(), &m)
                .unwrap()
        );
        assert!(store.valid_now());
        let other = new_leaf(&ca, &["x".into()], Duration::from_secs(10)).unwrap();
        assert!(
            store
                .install(leaf.cert.as_bytes(), other.key.as_bytes(), &m)
                .is_err()
        );
    }

    #[test]
    fn renewal_keeps_the_ca_for_a_leaf_and_bundles_the_old_ca() {
        let sm = SelfManaged {
            namespace: "ns".into(),
            secret: "s".into(),
            sans: vec!["127.0.0.1".into()],
            validity: Duration::from_secs(100),
            ca_validity: Duration::from_secs(1000),
            renew_before: Duration::from_secs(200),
            interval: Duration::from_secs(1),
            propagation_delay: Duration::ZERO,
            validating: None,
            mutating: None,
        };
        let (first, new_ca) = sm.next(None).unwrap().unwrap();
        assert!(new_ca);
        // The leaf (100 s) is inside its renewal window (200 s): a new leaf from the same CA.
        let (second, new_ca) = sm.next(Some(Material { ..first })).unwrap().unwrap();
        assert!(!new_ca);
        let ca_cert = second.ca.cert.clone();
        let sm2 = SelfManaged {
            renew_before: Duration::from_secs(2000),
            ..sm
        };
        let (third, new_ca) = sm2.next(Some(second)).unwrap().unwrap();
        assert!(new_ca);
        assert_ne!(third.ca.cert, ca_cert);
        assert_eq!(
            valid_cas(&third.bundle).len(),
            2,
            "new CA and the previous one"
        );
    }
}
