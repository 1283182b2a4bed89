//! Command-line flags (each with an environment-variable fallback).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser, ValueEnum};
use pdo_runtime::{AdminArgs, LogArgs};

/// Where the serving certificate comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TlsMode {
    /// Generate a CA and serving certificate, keep them in a Secret, rotate before expiry, patch caBundle.
    SelfManaged,
    /// Read `--tls-cert-file`/`--tls-key-file` (cert-manager or a Secret mount) and reload on change.
    Files,
}

/// Parses a Go-style duration (`30s`, `5m`, `720h`).
pub fn duration(s: &str) -> Result<Duration, String> {
    api_types::validation::parse_duration(s)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{s:?} is not a duration: use e.g. 500ms, 30s, 5m, 720h"))
}

/// The admission webhook's flags.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "admission-webhook",
    version,
    about = "The HTTPS admission server (validating + mutating) for the pd-orchestrator CRDs."
)]
pub struct Args {
    #[command(flatten)]
    pub log: LogArgs,
    #[command(flatten)]
    pub admin: AdminArgs,

    /// Address of the HTTPS admission server (`/validate/<resource>`, `/mutate/<resource>`).
    #[arg(long, env = "WEBHOOK_ADDR", default_value = "0.0.0.0:9443")]
    pub webhook_addr: SocketAddr,
    /// Largest AdmissionReview body accepted, in bytes (an object is at most ~3 MiB; a review may carry two).
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 8 << 20)]
    pub max_body_bytes: usize,
    /// Deadline for answering one review; past it the request fails and the API server applies the
    /// webhook's failurePolicy. Keep it below the configurations' timeoutSeconds.
    #[arg(long, env = "REQUEST_TIMEOUT", default_value = "8s", value_parser = duration)]
    pub request_timeout: Duration,

    /// Check other objects: another RSG of the same strategy on a workload, a second autoscaler on a target.
    #[arg(long, env = "CLUSTER_CHECKS", default_value_t = true, action = ArgAction::Set)]
    pub cluster_checks: bool,
    /// Admit an ElasticScaler whose target already has another autoscaler (ElasticScaler or native HPA).
    #[arg(long, env = "ALLOW_MULTIPLE_SCALERS", default_value_t = false, action = ArgAction::Set)]
    pub allow_multiple_scalers: bool,
    /// Check with SubjectAccessReviews that the requester may read and scale every referenced target.
    #[arg(long, env = "RBAC_CHECK", default_value_t = true, action = ArgAction::Set)]
    pub rbac_check: bool,
    /// How long a SubjectAccessReview answer is reused for the same user and target.
    #[arg(long, env = "SAR_CACHE_TTL", default_value = "10s", value_parser = duration)]
    pub sar_cache_ttl: Duration,

    /// Where the serving certificate comes from.
    #[arg(long, env = "TLS_MODE", value_enum, default_value_t = TlsMode::SelfManaged)]
    pub tls_mode: TlsMode,
    /// PEM certificate chain (mode files).
    #[arg(long, env = "TLS_CERT_FILE", default_value = "/tls/tls.crt")]
    pub tls_cert_file: PathBuf,
    /// PEM private key (mode files).
    #[arg(long, env = "TLS_KEY_FILE", default_value = "/tls/tls.key")]
    pub tls_key_file: PathBuf,
    /// How often the files are checked for a new certificate (mode files).
    #[arg(long, env = "TLS_RELOAD_INTERVAL", default_value = "10s", value_parser = duration)]
    pub tls_reload_interval: Duration,

    /// Namespace of the Secret holding the generated CA and certificate (mode self-managed).
    #[arg(long, env = "POD_NAMESPACE", default_value = "pd-orchestrator")]
    pub namespace: String,
    /// Name of that Secret (mode self-managed).
    #[arg(
        long,
        env = "TLS_SECRET",
        default_value = "pd-orchestrator-admission-webhook-tls"
    )]
    pub tls_secret: String,
    /// Subject alternative names of the serving certificate (DNS names or IPs, comma-separated); empty means
    /// `<service>.<namespace>.svc` and its variants.
    #[arg(long, env = "CERT_SANS", value_delimiter = ',')]
    pub cert_sans: Vec<String>,
    /// The webhook's Service name, for the default SANs.
    #[arg(
        long,
        env = "SERVICE_NAME",
        default_value = "pd-orchestrator-admission-webhook"
    )]
    pub service_name: String,
    /// Validity of a generated serving certificate.
    #[arg(long, env = "CERT_VALIDITY", default_value = "8760h", value_parser = duration)]
    pub cert_validity: Duration,
    /// Validity of a generated CA.
    #[arg(long, env = "CA_VALIDITY", default_value = "87600h", value_parser = duration)]
    pub ca_validity: Duration,
    /// Renew the certificate (and the CA) this long before it expires.
    #[arg(long, env = "CERT_RENEW_BEFORE", default_value = "720h", value_parser = duration)]
    pub cert_renew_before: Duration,
    /// How often the Secret and the caBundles are reconciled.
    #[arg(long, env = "CERT_CHECK_INTERVAL", default_value = "1m", value_parser = duration)]
    pub cert_check_interval: Duration,
    /// After a new CA is published in caBundle, wait this long before serving a certificate it signed
    /// (the API server picks up webhook configuration changes asynchronously).
    #[arg(long, env = "CA_PROPAGATION_DELAY", default_value = "3s", value_parser = duration)]
    pub ca_propagation_delay: Duration,
    /// ValidatingWebhookConfiguration whose caBundle is kept current (mode self-managed; empty: none).
    #[arg(long, env = "VALIDATING_WEBHOOK_CONFIGURATION", default_value = "")]
    pub validating_webhook_configuration: String,
    /// MutatingWebhookConfiguration whose caBundle is kept current (mode self-managed; empty: none).
    #[arg(long, env = "MUTATING_WEBHOOK_CONFIGURATION", default_value = "")]
    pub mutating_webhook_configuration: String,
}

impl Args {
    /// The SANs to put in a generated certificate.
    pub fn sans(&self) -> Vec<String> {
        if !self.cert_sans.is_empty() {
            return self.cert_sans.clone();
        }
        let (s, ns) = (&self.service_name, &self.namespace);
        vec![
            format!("{s}.{ns}.svc"),
            format!("{s}.{ns}.svc.cluster.local"),
            format!("{s}.{ns}"),
            s.clone(),
        ]
    }
}
