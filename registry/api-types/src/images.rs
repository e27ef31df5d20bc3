//! A project's images: the live tags of its repository that name an image (a build's output,
//! a save tag, or a tag pushed there directly), as `depot image list` and `depot image rm`
//! see them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a tag of a project's repository is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ImageKind {
    /// `<build-id>[-<target>]`: a build's image (or index) for a target.
    Build,
    /// `<save-tag>[-<target>]`: a save tag pointing into a build.
    SaveTag,
    /// A tag no build owns (pushed into the repository directly).
    Tag,
}

/// One image of a project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Image {
    pub tag: String,
    pub digest: String,
    /// Bytes of the manifest, its config and layers (of every platform for an index).
    pub size: u64,
    /// When the tag was last pointed.
    #[schema(format = DateTime)]
    pub pushed_at: String,
    pub kind: ImageKind,
    /// The build it belongs to (`null` for a tag no build owns).
    pub build: Option<String>,
    /// The bake target, for a build of several (`null` otherwise).
    pub target: Option<String>,
}

/// `GET /projects/{project}/images`: one page, most recently pushed first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ImagePage {
    pub images: Vec<Image>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// `DELETE /projects/{project}/images/{tag}`: what went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ImageRemoved {
    pub tag: String,
    /// `build`: the tag was a build's own, so the whole build was deleted (its save tags with
    /// it); `save-tag` or `tag`: only the tag went.
    pub kind: ImageKind,
    pub build: Option<String>,
}
