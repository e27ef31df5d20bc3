//! The checks, one file per area of the spec (in the order they run), with the helpers they
//! share in [`helpers`].

mod basics;
mod delete;
mod helpers;
mod pull_blobs;
mod pull_manifests;
mod push_blobs;
mod push_manifests;
mod referrers;
mod tags;

use crate::{Check, Level};

macro_rules! checks {
    ($($id:literal, $level:ident, $section:literal => $f:path;)*) => {
        /// Every check, in the order they run.
        pub fn all() -> Vec<Check> {
            vec![$(Check { id: $id, section: $section, level: Level::$level, run: $f }),*]
        }
    };
}

checks! {
    "api-version-check", Must, "Determining Support: GET /v2/ returns 200" => basics::api_version;
    "push-post-put", Must, "Push/POST then PUT: 202 with Location, then 201 with Location" => push_blobs::push_post_put;
    "push-single-post", Should, "Push/Single POST: 201 (MAY)" => push_blobs::push_single_post;
    "push-chunked", Must, "Push/chunks: PATCH 202 with Location and Range, PUT 201" => push_blobs::push_chunked;
    "push-chunked-final-in-put", Must, "Push/chunks: final chunk MAY be in the closing PUT" => push_blobs::push_chunked_final_in_put;
    "push-chunk-streamed", Should, "Push/chunks: PATCH without Content-Range (streamed)" => push_blobs::push_chunk_streamed;
    "push-chunk-out-of-order", Must, "Push/chunks: out-of-order chunk MUST get 416" => push_blobs::push_chunk_out_of_order;
    "push-chunk-overlap", Must, "Push/chunks: chunk not starting at the offset MUST get 416" => push_blobs::push_chunk_overlap;
    "push-upload-status", Must, "Push/chunks: GET upload MUST be 204 with Location and Range" => push_blobs::push_upload_status;
    "push-chunk-min-length", Should, "Push/chunks: OCI-Chunk-Min-Length SHOULD be advertised" => push_blobs::push_chunk_min_length;
    "push-digest-mismatch", Must, "Push: digest MUST match content (DIGEST_INVALID)" => push_blobs::push_digest_mismatch;
    "push-empty-blob", Must, "Push/POST then PUT: a zero-length blob" => push_blobs::push_empty_blob;
    "push-sha512-blob", Should, "Content Digests: sha512 is a registered algorithm" => push_blobs::push_sha512_blob;
    "push-same-blob-concurrently", Must, "Layer Upload De-duplication: both uploads succeed" => push_blobs::push_same_blob_concurrently;
    "upload-cancel", Should, "Push: DELETE of an upload session (204, then unknown)" => push_blobs::upload_cancel;
    "upload-unknown", Must, "Error Codes: BLOB_UPLOAD_UNKNOWN for an unknown session" => push_blobs::upload_unknown;
    "mount-from", Should, "Mounting a blob: 201 with Location" => push_blobs::mount_from;
    "mount-unknown-falls-back", Must, "Mounting a blob: unable to mount SHOULD return 202 (session)" => push_blobs::mount_unknown_falls_back;
    "mount-automatic", Should, "Mounting a blob: from MAY be optional" => push_blobs::mount_automatic;
    "pull-blob", Must, "Pulling blobs: 200 with the bytes (and Docker-Content-Digest unless redirected to storage)" => pull_blobs::pull_blob;
    "pull-blob-head", Must, "Checking if content exists: HEAD 200 with Content-Length" => pull_blobs::pull_blob_head;
    "pull-blob-range", Should, "Pulling blobs: Range requests (RFC 9110) SHOULD be supported" => pull_blobs::pull_blob_range;
    "pull-blob-range-unsatisfiable", Should, "Pulling blobs: unsatisfiable Range gets 416 (RFC 9110)" => pull_blobs::pull_blob_range_unsatisfiable;
    "pull-blob-unknown", Must, "Pulling blobs: 404 (BLOB_UNKNOWN)" => pull_blobs::pull_blob_unknown;
    "blob-repository-isolation", Must, "Pulling blobs: a blob is only in repositories that received it" => pull_blobs::blob_repository_isolation;
    "push-manifest-by-tag", Must, "Pushing Manifests: 201, Location, Docker-Content-Digest" => push_manifests::push_manifest_by_tag;
    "push-manifest-by-digest", Must, "Pushing Manifests: reference MAY be a digest" => push_manifests::push_manifest_by_digest;
    "push-manifest-exact-bytes", Must, "Pushing Manifests: stored in the exact byte representation" => push_manifests::push_manifest_exact_bytes;
    "push-manifest-docker-schema2", Should, "Pushing Manifests: Docker schema2 manifest and manifest list" => push_manifests::push_manifest_docker;
    "push-image-index", Must, "Pushing Manifests: an image index of pushed manifests" => push_manifests::push_image_index;
    "push-manifest-digest-mismatch", Must, "Pushing Manifests: digest reference MUST match content" => push_manifests::push_manifest_digest_mismatch;
    "push-manifest-invalid-json", Should, "Error Codes: MANIFEST_INVALID for malformed JSON" => push_manifests::push_manifest_invalid_json;
    "push-manifest-blob-unknown", Should, "Push: MAY reject unknown blobs, then MANIFEST_BLOB_UNKNOWN" => push_manifests::push_manifest_blob_unknown;
    "push-index-child-unknown", Should, "Push: MAY reject unknown child manifests, then MANIFEST_BLOB_UNKNOWN" => push_manifests::push_index_child_unknown;
    "push-manifest-media-type-mismatch", Should, "Pushing Manifests: Content-Type must match mediaType" => push_manifests::push_manifest_media_type_mismatch;
    "push-manifest-4mib", Should, "Pushing Manifests: SHOULD support manifests of at least 4 MB" => push_manifests::push_manifest_4mib;
    "push-manifest-too-large", Should, "Pushing Manifests: over the limit SHOULD get 413" => push_manifests::push_manifest_too_large;
    "push-manifest-subject", Must, "Pushing Manifests with Subject: OCI-Subject header" => push_manifests::push_manifest_subject;
    "push-manifest-subject-missing", Must, "Push: a subject that does not exist MUST be accepted" => push_manifests::push_manifest_subject_missing;
    "pull-manifest-by-tag", Must, "Pulling manifests: 200 with Content-Type and Docker-Content-Digest" => pull_manifests::pull_manifest_by_tag;
    "pull-manifest-by-digest", Must, "Pulling manifests: by digest" => pull_manifests::pull_manifest_by_digest;
    "pull-manifest-head", Must, "Checking if content exists: HEAD 200 with Content-Length" => pull_manifests::pull_manifest_head;
    "pull-manifest-unknown", Must, "Pulling manifests: 404 (MANIFEST_UNKNOWN)" => pull_manifests::pull_manifest_unknown;
    "pull-manifest-accept", Should, "Content negotiation: served when Accept lists the type" => pull_manifests::pull_manifest_accept;
    "pull-repository-unknown", Must, "Pushing Manifests: pulling a nonexistent repository MUST be 404" => pull_manifests::pull_repository_unknown;
    "tags-list", Must, "Listing Tags: 200 with name and tags" => tags::tags_list;
    "tags-list-case-insensitive-order", Must, "Listing Tags: lexical (case-insensitive alphanumeric) order" => tags::tags_list_order;
    "tags-list-pagination", Must, "Listing Tags: n and last, Link with rel=\"next\"" => tags::tags_list_pagination;
    "tags-list-n-zero", Must, "Listing Tags: n=0 MUST be empty without Link" => tags::tags_list_n_zero;
    "tags-list-unknown-repository", Must, "Listing Tags: unknown repository is 404" => tags::tags_list_unknown;
    "referrers-list", Must, "Listing Referrers: image index with artifactType and annotations" => referrers::referrers_list;
    "referrers-config-artifact-type", Must, "Listing Referrers: artifactType falls back to config.mediaType" => referrers::referrers_config_type;
    "referrers-filter", Should, "Listing Referrers: artifactType filter and OCI-Filters-Applied" => referrers::referrers_filter;
    "referrers-empty", Must, "Listing Referrers: no referrers is an empty index, not 404" => referrers::referrers_empty;
    "referrers-invalid-digest", Must, "Listing Referrers: invalid digest MUST be 400" => referrers::referrers_invalid_digest;
    "delete-tag", Should, "Deleting tags: MAY be supported; 202, then the tag is 404" => delete::delete_tag;
    "delete-manifest", Must, "Deleting Manifests: 202, then digest and tags are 404" => delete::delete_manifest;
    "delete-manifest-unknown", Must, "Deleting Manifests: unknown is 404" => delete::delete_manifest_unknown;
    "delete-blob", Must, "Deleting Blobs: 202, then 404" => delete::delete_blob;
    "name-with-api-components", Must, "Pulling manifests: <name> grammar allows blobs/manifests/tags/uploads components" => basics::name_with_components;
    "name-invalid", Should, "Error Codes: NAME_INVALID for a name outside the grammar" => basics::name_invalid;
    "errors-are-json", Should, "Error Codes: JSON error bodies use the errors envelope" => basics::errors_are_json;
}
