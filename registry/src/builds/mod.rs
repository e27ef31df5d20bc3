//! Builds saved under their build ID: the model ([`model`]) and how pushed images become a
//! build's output ([`assemble`]): native builders push one platform each, and the registry writes
//! the index over them once every expected platform has arrived.

pub mod assemble;
pub mod model;

pub use model::{
    build_id_prefix, expiry_after, random_id, Build, BuildSpec, BuildState, Platform, Project,
    TagRole, Target, BUILD_ID_LEN, MAX_RETENTION_SECS,
};
