//! The wire contract of the control plane (`/api/v1`): every request body and answer, as types.
//!
//! The registry serializes these, the `depot` CLI and the tests deserialize them, and the
//! OpenAPI document the registry serves is generated from their schemas: a field renamed here
//! is renamed everywhere at once, and a client that disagrees with the server does not compile.
//! Times are RFC 3339 UTC strings; ids are opaque strings.
//!
//! Requests refuse unknown fields (a misspelled option is an error, not silently ignored);
//! answers may grow fields, so clients ignore what they do not know.

mod builds;
mod errors;
mod images;
mod projects;
mod trust;

pub use builds::{
    Build, BuildImage, BuildPage, BuildState, BuildSummary, CreateBuild, ExtendBuild, FailBuild,
    PushedImage, Target, TargetRequest,
};
pub use errors::{ErrorBody, ErrorEntry};
pub use images::{Image, ImageKind, ImagePage, ImageRemoved};
pub use projects::{
    ClockAnswer, ClockRequest, CreateProject, CreateToken, Project, ProjectDeleted, ProjectList,
    PullToken, PullTokenRequest, Token, TokenList, UpdateProject,
};
pub use trust::{
    OidcConfig, OidcCredential, OidcExchange, OidcIssuer, OidcProvider, TrustAccess, TrustPolicy,
    TrustPolicyList, TrustPolicySpec,
};
