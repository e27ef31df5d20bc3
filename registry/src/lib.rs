//! depot registry: an OCI distribution-spec v1.1 registry for CI builds. The HTTP layer on top
//! of the `depot-store` crate (names, digests, builds, metadata, storage, caches, content).
//!
//! Layout (a module uses only modules below it in this list; see `docs/architecture.md`):
//! - [`server`]: builds the application from [`config`] and serves it on a bound listener;
//!   [`connections`] accepts and serves connections within their limits (cap, header and idle
//!   timeouts, [`guarded_io`]) over plain TCP or [`tls`]; [`request_body`] settles what a handler left of a request body;
//!   [`admin`]: the `admin` subcommand.
//! - [`api`]: the `/v2/` HTTP surface; [`control`]: the `/api/v1/` control plane and `/token`;
//!   [`health`]: `/livez` and `/readyz`; [`scrape`]: `/metrics`.
//! - [`state`]: what every handler shares (the store's content plus [`access`], upload ids).
//! - [`metrics`]: the Prometheus recorder and what the HTTP layer records.
//! - [`access`]: who may do what, decided once per request from [`endpoint`] and [`auth`]
//!   (credentials and signed tokens; [`oidc`]: CI jobs' ID tokens and trust policies); [`ingest`]: the streaming upload pipeline;
//!   [`upload_id`]: self-verifying session ids, so opening a session writes nothing.
//! - [`error`]: the HTTP error, mapped to OCI error codes and the JSON envelope; the store's
//!   errors are mapped into it in one place.

pub mod access;
pub mod admin;
pub mod api;
pub mod auth;
pub mod config;
pub mod connections;
pub mod control;
pub mod endpoint;
pub mod error;
pub mod guarded_io;
pub mod health;
pub mod ingest;
pub mod metrics;
pub mod oidc;
pub mod request_body;
pub mod scrape;
pub mod server;
pub mod state;
pub mod tls;
pub mod ui;
pub mod upload_id;
pub mod usage;
