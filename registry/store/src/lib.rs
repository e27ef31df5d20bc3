//! depot store: what the registry holds and how it is kept, below HTTP.
//!
//! Layers, lowest first (a module uses only modules above it in this list):
//! - [`error`]: the store's error type; [`clock`]: the one notion of "now"; [`metrics`]: the
//!   names of what the store records and the calls that record it;
//!   [`digest`], [`names`]: validated content addresses and repository names, tags, references.
//! - [`model`]: projects and builds (what a build is, its tags, its expiry arithmetic);
//!   [`manifest`]: validation of manifests clients send.
//! - [`storage`]: blob bytes behind [`storage::BlobStore`] (files, or S3 with the `s3` feature).
//! - [`metadata`]: repositories, blobs, uploads, manifests, tags, projects and builds in SQL
//!   (SQLite, or PostgreSQL with the `postgres` feature).
//! - [`cache`]: in-process caches in front of metadata; [`content`]: the one service every
//!   request path reads and writes through (visibility, lookups, invalidation and announcing).
//! - [`assemble`]: how pushed images become a saved build; [`gc`]: garbage collection's backend
//!   (the `depot-gc` traits over metadata and storage); [`backend`]: opening both from options.

pub mod assemble;
pub mod backend;
pub mod cache;
pub mod clock;
pub mod content;
pub mod digest;
pub mod error;
pub mod gc;
pub mod manifest;
pub mod metadata;
pub mod metrics;
pub mod model;
pub mod names;
pub mod storage;

pub use error::{Error, Result};
