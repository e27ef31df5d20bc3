//! depot testkit: the one kit every test suite of the workspace uses to start real parts and
//! talk to them. Nothing here is a mock: each launcher starts the real program.
//!
//! - [`registry`]: the real `depot-registry` binary on a port it bound itself ([`process`]:
//!   how any server's reported address is read).
//! - [`api`]: the control plane and `/token`, typed on the wire contract; [`oci`]: digests,
//!   content and plain pushes.
//! - [`backends`]: PostgreSQL and S3, fresh per test or owned by it (stopped, frozen, restarted).
//! - [`distribution`]: the CNCF distribution registry; [`fault_proxy`]: injected 429s and 5xx.
//! - [`files`]: a static file server (release downloads); [`in_process`]: how these in-process
//!   servers are served.
//! - [`garage`]: a Garage cluster, a real distributed S3 store; [`nginx`]: a load balancer in
//!   front of several replicas.
//! - [`oidc`]: a local OIDC issuer for every CI provider, signing the tokens their jobs get.
//! - [`readme`]: the README's generated tables checked against the code.
//! - [`shapes`]: blobs of every storage shape, and a client that pushes each its way.
//! - [`tools`]: real clients (skopeo, umoci, podman) and running commands;
//!   [`cli`]: the world the `depot` CLI is tested in.

pub mod api;
pub mod backends;
pub mod cli;
pub mod distribution;
pub mod fault_proxy;
pub mod files;
pub mod garage;
pub mod in_process;
pub mod nginx;
pub mod oci;
pub mod oidc;
pub mod process;
pub mod readme;
pub mod registry;
pub mod shapes;
pub mod tools;

pub use api::ApiClient;
pub use oci::{random_bytes, sha256, sha512};
pub use registry::Server;
