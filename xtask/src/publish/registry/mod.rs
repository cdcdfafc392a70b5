//! Pushing images to a registry over the OCI distribution API (distribution-spec spec.md),
//! split by concern so each can grow alone:
//!
//! - `reference`: where to (`<registry>/<repository>`, per-arch repositories, tag syntax);
//! - `auth`: credentials (flags, CI variables, docker's config.json) and answering a
//!   registry's challenge (Basic, bearer tokens);
//! - `client`: the HTTP calls on one repository (HEAD/upload blobs, PUT manifests, digest
//!   checks, one re-authentication on 401);
//! - `push`: the order of a push (blobs, manifests, index, tags last) and the publisher.
//!
//! Why reqwest (blocking) and not the `oci-client` crate: we push *our* bytes — the canonical
//! JSON whose digests `image` printed and the layouts carry — streamed from the blob store,
//! and we must count what a HEAD let us skip. oci-client is async-only (tokio for a strictly
//! sequential job), holds whole layers in memory and its high-level push re-serialises
//! manifests; the raw distribution calls it would leave us are the few requests in `client`.
pub mod auth;
pub mod client;
pub mod push;
pub mod reference;

pub use auth::{credentials, docker_config_auth, parse_challenge, Challenge, Credentials};
pub use client::Repo;
pub use push::{push, Registry, Report};
pub use reference::{check_tag, Reference};
