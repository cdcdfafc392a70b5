//! Pushing images to a registry over the OCI distribution API (distribution-spec spec.md),
//! split by concern so each can grow alone:
//!
//! - `reference`: where to (`<registry>/<repository>`, per-arch repositories, tag syntax);
//! - `auth`: where credentials come from (flags, CI variables, then docker's) and answering a
//!   registry's challenge (Basic, bearer tokens, identity tokens);
//! - `docker_config`: docker's config.json as `docker login` leaves it, and its credential
//!   helpers (`credHelpers`, `credsStore`, `auths`);
//! - `client`: the HTTP calls on one repository (HEAD/mount/upload blobs, PUT manifests and
//!   tags, digest checks, one re-authentication on 401, retries);
//! - `retry`: which failures are worth another try, and how long to wait;
//! - `push`: the order of a push (blobs, manifests, index, SBOM referrers, tags last) and the
//!   publisher;
//! - `referrer`: each image's SBOM attached as an OCI 1.1 referrer (the referrers API, or the
//!   referrers tag schema where the registry has none).
//!
//! The HTTP client is ureq, the xtask's one (see xtask/Cargo.toml for why ureq).
//! Why not the `oci-client` crate: we push *our* bytes — the canonical
//! JSON whose digests `image` printed and the layouts carry — streamed from the blob store,
//! and we must count what a HEAD let us skip. oci-client is async-only (tokio for a strictly
//! sequential job), holds whole layers in memory and its high-level push re-serialises
//! manifests; the raw distribution calls it would leave us are the few requests in `client`.
pub mod auth;
pub mod client;
pub mod docker_config;
pub mod push;
pub mod reference;
pub mod referrer;
pub mod retry;

pub use auth::{credentials, credentials_in, parse_challenge, Challenge, Credentials, Env, Secret};
pub use client::{Access, Repo, Sent};
pub use docker_config::{docker_config_auth, DockerConfig};
pub use push::{push, push_with, Registry, Report};
pub use reference::{check_tag, Reference};
pub use retry::Retry;
