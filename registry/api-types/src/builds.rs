//! Builds saved under their build ID: creating one, what it looks like, listing, failing,
//! extending.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where a build stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BuildState {
    /// Builders may push; saved once every expected image has arrived (or on finalize).
    Building,
    /// Its outputs are tagged and pullable by build ID.
    Saved,
    /// A builder reported a failure; nothing more is accepted.
    Failed,
}

impl BuildState {
    pub fn as_str(self) -> &'static str {
        match self {
            BuildState::Building => "building",
            BuildState::Saved => "saved",
            BuildState::Failed => "failed",
        }
    }
}

impl std::fmt::Display for BuildState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A bake target with the platforms it pushes (none: the build's platforms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Target {
    pub name: String,
    #[serde(default)]
    pub platforms: Vec<String>,
    /// The `-t` names the target was built with (`ghcr.io/acme/web:v1`): `depot pull` names
    /// the image after them too. At most 16, each at most 255 characters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_names: Vec<String>,
}

/// A target as a new build names it: just a name, or a name with its own platforms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum TargetRequest {
    Name(String),
    Full(Target),
}

/// `POST /projects/{project}/builds`: what the build will push.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBuild {
    /// Platforms every target is built for (`linux/arm64`); two or more make an index.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<TargetRequest>,
    /// Tags pointed at the saved outputs too (`latest`, `main`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub save_tags: Vec<String>,
    /// For a build without targets: the `-t` names it was built with (see `Target`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_names: Vec<String>,
    /// How long the build is kept (default: the project's retention).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_secs: Option<i64>,
    /// How long builders may push while building (default 10800).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_secs: Option<i64>,
}

/// A build as it stands now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Build {
    pub id: String,
    pub project: String,
    pub repository: String,
    /// `<registry host>/<project>:<build-id>`.
    pub image: String,
    pub state: BuildState,
    pub failure: Option<String>,
    #[serde(default)]
    pub platforms: Vec<String>,
    #[serde(default)]
    pub targets: Vec<Target>,
    #[serde(default)]
    pub save_tags: Vec<String>,
    /// For a build without targets: the `-t` names it was created with.
    #[serde(default)]
    pub image_names: Vec<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    #[schema(format = DateTime)]
    pub lease_expires_at: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
    #[serde(default)]
    pub expired: bool,
    /// Its saved outputs (one per target).
    #[serde(default)]
    pub images: Vec<BuildImage>,
    /// Every image builders have pushed into it so far.
    #[serde(default)]
    pub pushed: Vec<PushedImage>,
    /// The token builders push with: only in the answer to creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_token: Option<String>,
    /// The user name to present the push token with (`x-token`): only with `push_token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

/// One saved output of a build (a target of a bake build, or the build's one image).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BuildImage {
    /// Empty for a build without targets.
    pub target: String,
    pub tag: String,
    /// `<registry host>/<project>:<tag>`.
    pub name: String,
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    /// The `-t` names the build was created with for this output.
    #[serde(default)]
    pub image_names: Vec<String>,
}

/// An image a builder pushed into a building build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PushedImage {
    pub target: String,
    /// Empty for an image that covers its whole target.
    pub platform: String,
    pub digest: String,
    pub media_type: String,
    pub size: u64,
}

/// A row of `GET /projects/{project}/builds`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BuildSummary {
    pub id: String,
    pub state: BuildState,
    pub image: String,
    #[serde(default)]
    pub platforms: Vec<String>,
    /// Target names.
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default)]
    pub save_tags: Vec<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
    #[serde(default)]
    pub expired: bool,
    /// Why it failed (a failed build's reason, as `GET /builds/{build}` shows it).
    #[serde(default)]
    pub failure: Option<String>,
    /// Bytes of its saved images, layers included (shared layers counted in each image);
    /// `null` for a build that has none (building, failed, expired).
    #[serde(default)]
    pub size: Option<u64>,
}

/// One page of a project's builds, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BuildPage {
    pub builds: Vec<BuildSummary>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// `POST /builds/{build}/fail`: why, and which target and platform failed.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FailBuild {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// `POST /builds/{build}/extend`: one of the two.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendBuild {
    /// Seconds to add to the current expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_secs: Option<i64>,
    /// Or: expire this many seconds from now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_secs: Option<i64>,
}
