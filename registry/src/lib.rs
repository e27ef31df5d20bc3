//! depot registry: an OCI distribution-spec v1.1 registry for CI builds.
//!
//! Layout:
//! - [`server`]: builds the application from [`config`] and serves it on a bound listener;
//!   [`connections`] accepts and serves connections within their limits (cap, header and idle
//!   timeouts, [`guarded_io`]).
//! - [`api`]: the `/v2/` HTTP surface; [`endpoint`] parses each request into a typed endpoint,
//!   [`access`] decides who may do what, handlers stay thin.
//! - [`auth`]: credentials, signed tokens and the `/token` endpoint; [`control`]: the `/api/v1/`
//!   control plane (projects, tokens, builds); [`builds`]: what a build is and how pushed
//!   images become a saved build; [`clock`]: the time expiry is judged by.
//! - [`ingest`]: the streaming upload pipeline (socket read, hashing and storage write overlap);
//!   [`upload_id`]: self-verifying session ids, so opening a session writes nothing.
//! - [`storage`]: blob bytes behind the [`storage::BlobStore`] trait (files or S3).
//! - [`gc`]: garbage collection's backend (the `depot-gc` crate's traits over [`metadata`] and
//!   [`storage`]) and the collections a server runs on an interval.
//! - [`metadata`]: repositories, blob links, uploads, manifests and tags in SQL (sqlx).
//! - [`manifest`], [`digest`], [`names`]: validation of what clients send.
//! - [`error`]: the one error type, mapped to OCI error codes and the JSON envelope.

pub mod access;
pub mod admin;
pub mod api;
pub mod auth;
pub mod builds;
pub mod cache;
pub mod clock;
pub mod config;
pub mod connections;
pub mod control;
pub mod digest;
pub mod endpoint;
pub mod error;
pub mod gc;
pub mod guarded_io;
pub mod ingest;
pub mod manifest;
pub mod metadata;
pub mod names;
pub mod server;
pub mod storage;
pub mod upload_id;
