//! The admission webhook of pd-orchestrator: validating and mutating webhooks for ElasticScaler,
//! ResourceScalingGroup and Tidal, served over HTTPS.
//!
//! Flow of one request: [`server`] receives `POST /validate/<resource>` or `/mutate/<resource>`, bounded in
//! size and time; [`review`] decodes the AdmissionReview; [`admit`] decodes the object into its type and runs
//! the pure rules of `api_types::validation` (the same the controllers run) and, for `/mutate`, computes the
//! defaulting patch; for `/validate`, [`checks`] adds the rules that need the cluster (conflicting RSGs, a
//! second autoscaler on a target, the requester's RBAC on every referenced target). The answer is encoded
//! back into an AdmissionReview and counted in [`metrics`].
//!
//! [`tls`] provides the serving certificate: generated and rotated in-process (self-managed, persisted in a
//! Secret, caBundle patched into our webhook configurations) or read from files with hot reload.

pub mod admit;
pub mod args;
pub mod checks;
pub mod metrics;
pub mod review;
pub mod server;
pub mod tls;
