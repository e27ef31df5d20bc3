//! The checks, one file per area of the spec (in the order they run), with the helpers they
//! share in [`helpers`]. Each line: id, level (MUST/SHOULD/MAY), the spec version that asks
//! for it (`V1_1`: v1.1.1; `Main`: new or tightened on the spec's main branch), the section.

mod basics;
mod delete;
mod early_answers;
mod helpers;
mod pull_blobs;
mod pull_manifests;
mod push_blobs;
mod push_manifests;
mod referrers;
mod tags;
mod variety;

use crate::{Check, Level, Spec};

macro_rules! checks {
    ($($id:literal, $level:ident, $spec:ident, $section:literal => $f:path;)*) => {
        /// Every check, in the order they run.
        pub fn all() -> Vec<Check> {
            vec![$(Check { id: $id, section: $section, spec: Spec::$spec, level: Level::$level, run: $f }),*]
        }
    };
}

checks! {
    "api-version-check", Must, V1_1, "Determining Support: GET /v2/ returns 200" => basics::api_version;
    "push-post-put", Must, V1_1, "Push/POST then PUT: 202 with Location, then 201 with Location" => push_blobs::push_post_put;
    "push-single-post", May, V1_1, "Push/Single POST: 201 (MAY)" => push_blobs::push_single_post;
    "push-chunked", Must, V1_1, "Push/chunks: PATCH 202 with Location and Range, PUT 201" => push_blobs::push_chunked;
    "push-chunked-final-in-put", Must, V1_1, "Push/chunks: final chunk MAY be in the closing PUT" => push_blobs::push_chunked_final_in_put;
    "push-chunk-streamed", Should, V1_1, "Push/chunks: PATCH without Content-Range (streamed)" => push_blobs::push_chunk_streamed;
    "push-chunk-out-of-order", Must, V1_1, "Push/chunks: out-of-order chunk MUST get 416" => push_blobs::push_chunk_out_of_order;
    "push-chunk-overlap", Must, V1_1, "Push/chunks: chunk not starting at the offset MUST get 416" => push_blobs::push_chunk_overlap;
    "push-final-chunk-out-of-order", Must, Main, "Pushing a blob in chunks: a final chunk out of order MUST get 416 (end-6)" => push_blobs::push_final_chunk_out_of_order;
    "push-upload-status", Must, V1_1, "Push/chunks: GET upload MUST be 204 with Location and Range" => push_blobs::push_upload_status;
    "push-chunk-min-length", Should, V1_1, "Push/chunks: OCI-Chunk-Min-Length SHOULD be advertised" => push_blobs::push_chunk_min_length;
    "push-digest-mismatch", Must, V1_1, "Push: digest MUST match content (DIGEST_INVALID)" => push_blobs::push_digest_mismatch;
    "push-empty-blob", Must, V1_1, "Push/POST then PUT: a zero-length blob" => push_blobs::push_empty_blob;
    "push-sha512-blob", Should, V1_1, "Content Digests: sha512 is a registered algorithm" => push_blobs::push_sha512_blob;
    "push-digest-algorithm", Should, Main, "Pushing a blob in chunks: ?digest-algorithm=sha512 (end-4c)" => push_blobs::push_digest_algorithm_hint;
    "push-sha512-without-hint", Should, Main, "Pushing a blob in chunks: the hint is a SHOULD, so a sha512 upload without it is verified (beyond the spec)" => push_blobs::push_sha512_without_hint;
    "push-digest-algorithm-unsupported", Should, Main, "Pushing blobs: an unsupported algorithm SHOULD get 400" => push_blobs::push_digest_algorithm_unsupported;
    "push-same-blob-concurrently", Must, V1_1, "Layer Upload De-duplication: both uploads succeed" => push_blobs::push_same_blob_concurrently;
    "upload-cancel", Should, Main, "Cancel a blob upload (end-14): DELETE SHOULD be 204, then the session is unknown" => push_blobs::upload_cancel;
    "upload-unknown", Must, V1_1, "Error Codes: BLOB_UPLOAD_UNKNOWN for an unknown session" => push_blobs::upload_unknown;
    "mount-from", Should, V1_1, "Mounting a blob: 201 with Location" => push_blobs::mount_from;
    "mount-unknown-falls-back", Must, V1_1, "Mounting a blob: unable to mount SHOULD return 202 (session)" => push_blobs::mount_unknown_falls_back;
    "mount-automatic", May, V1_1, "Mounting a blob: from MAY be optional" => push_blobs::mount_automatic;
    "pull-blob", Must, Main, "Pulling blobs: 200 with the bytes and Docker-Content-Digest (MUST, after any redirect)" => pull_blobs::pull_blob;
    "pull-blob-head", Must, Main, "Checking if content exists: HEAD 200 with Content-Length and Docker-Content-Digest (MUST)" => pull_blobs::pull_blob_head;
    "pull-blob-range", Should, V1_1, "Pulling blobs: Range requests (RFC 9110) SHOULD be supported" => pull_blobs::pull_blob_range;
    "pull-blob-range-unsatisfiable", Should, V1_1, "Pulling blobs: unsatisfiable Range gets 416 (RFC 9110)" => pull_blobs::pull_blob_range_unsatisfiable;
    "pull-blob-unknown", Must, V1_1, "Pulling blobs: 404 (BLOB_UNKNOWN)" => pull_blobs::pull_blob_unknown;
    "pull-blob-malformed-digest", Must, Main, "Pulling blobs: a malformed digest names no blob: 404 (end-2 lists only 404)" => pull_blobs::pull_blob_malformed_digest;
    "blob-repository-isolation", Must, V1_1, "Pulling blobs: a blob is only in repositories that received it" => pull_blobs::blob_repository_isolation;
    "push-manifest-by-tag", Must, V1_1, "Pushing Manifests: 201, Location, Docker-Content-Digest" => push_manifests::push_manifest_by_tag;
    "push-manifest-by-digest", Must, V1_1, "Pushing Manifests: reference MAY be a digest" => push_manifests::push_manifest_by_digest;
    "push-manifest-exact-bytes", Must, V1_1, "Pushing Manifests: stored in the exact byte representation" => push_manifests::push_manifest_exact_bytes;
    "push-manifest-docker-schema2", Should, V1_1, "Pushing Manifests: Docker schema2 manifest and manifest list" => push_manifests::push_manifest_docker;
    "push-image-index", Must, V1_1, "Pushing Manifests: an image index of pushed manifests" => push_manifests::push_image_index;
    "push-manifest-digest-mismatch", Must, V1_1, "Pushing Manifests: digest reference MUST match content" => push_manifests::push_manifest_digest_mismatch;
    "push-manifest-invalid-json", Should, V1_1, "Error Codes: MANIFEST_INVALID for malformed JSON" => push_manifests::push_manifest_invalid_json;
    "push-manifest-blob-unknown", May, V1_1, "Push: MAY reject unknown blobs, then MANIFEST_BLOB_UNKNOWN" => push_manifests::push_manifest_blob_unknown;
    "push-index-child-unknown", May, V1_1, "Push: MAY reject unknown child manifests, then MANIFEST_BLOB_UNKNOWN" => push_manifests::push_index_child_unknown;
    "push-manifest-media-type-mismatch", Should, V1_1, "Pushing Manifests: Content-Type must match mediaType" => push_manifests::push_manifest_media_type_mismatch;
    "push-manifest-4mib", Should, V1_1, "Pushing Manifests: SHOULD support manifests of at least 4 MB" => push_manifests::push_manifest_4mib;
    "push-manifest-too-large", Should, V1_1, "Pushing Manifests: over the limit SHOULD get 413" => push_manifests::push_manifest_too_large;
    "push-manifest-subject", Must, V1_1, "Pushing Manifests with Subject: OCI-Subject header" => push_manifests::push_manifest_subject;
    "push-manifest-subject-missing", Must, V1_1, "Push: a subject that does not exist MUST be accepted" => push_manifests::push_manifest_subject_missing;
    "push-manifest-multiple-tags", May, Main, "Pushing Manifests with multiple tags (end-7b): OCI-Tag MUST name each accepted tag; at least 10 SHOULD work" => push_manifests::push_manifest_multiple_tags;
    "push-manifest-multiple-tags-invalid", Should, Main, "Pushing Manifests with multiple tags: one invalid tag refuses the push, none is taken (beyond the spec)" => push_manifests::push_manifest_multiple_tags_invalid;
    "pull-manifest-by-tag", Must, Main, "Pulling manifests: 200 with Content-Type and Docker-Content-Digest (MUST)" => pull_manifests::pull_manifest_by_tag;
    "pull-manifest-by-digest", Must, V1_1, "Pulling manifests: by digest" => pull_manifests::pull_manifest_by_digest;
    "pull-manifest-head", Must, Main, "Checking if content exists: HEAD 200 with Content-Length and Docker-Content-Digest (MUST)" => pull_manifests::pull_manifest_head;
    "pull-manifest-unknown", Must, V1_1, "Pulling manifests: 404 (MANIFEST_UNKNOWN)" => pull_manifests::pull_manifest_unknown;
    "pull-manifest-malformed-reference", Must, Main, "Pulling manifests: a malformed reference names nothing: 404 MANIFEST_UNKNOWN (end-3 lists only 404)" => pull_manifests::pull_manifest_malformed_reference;
    "pull-manifest-accept", Should, V1_1, "Content negotiation: served when Accept lists the type" => pull_manifests::pull_manifest_accept;
    "pull-repository-unknown", Must, V1_1, "Pushing Manifests: pulling a nonexistent repository MUST be 404" => pull_manifests::pull_repository_unknown;
    "pull-ns-parameter", May, Main, "Registry Proxying: a registry MAY ignore ?ns=; OCI-Namespace only when it uses it" => pull_manifests::pull_ns_ignored;
    "tags-list", Must, V1_1, "Listing Tags: 200 with name and tags" => tags::tags_list;
    "tags-list-case-insensitive-order", Must, Main, "Listing Tags: lexical (case-insensitive) or ASCIIbetical order" => tags::tags_list_order;
    "tags-list-pagination", Must, V1_1, "Listing Tags: n and last, Link with rel=\"next\"" => tags::tags_list_pagination;
    "tags-list-n-zero", Must, V1_1, "Listing Tags: n=0 MUST be empty without Link" => tags::tags_list_n_zero;
    "tags-list-unknown-repository", Must, V1_1, "Listing Tags: unknown repository is 404" => tags::tags_list_unknown;
    "referrers-list", Must, V1_1, "Listing Referrers: image index with artifactType and annotations" => referrers::referrers_list;
    "referrers-config-artifact-type", Must, V1_1, "Listing Referrers: artifactType falls back to config.mediaType" => referrers::referrers_config_type;
    "referrers-filter", Should, V1_1, "Listing Referrers: artifactType filter and OCI-Filters-Applied" => referrers::referrers_filter;
    "referrers-empty", Must, V1_1, "Listing Referrers: no referrers is an empty index, not 404" => referrers::referrers_empty;
    "referrers-invalid-digest", Must, V1_1, "Listing Referrers: invalid digest MUST be 400" => referrers::referrers_invalid_digest;
    "delete-tag", May, V1_1, "Deleting tags: MAY be supported; 202, then the tag is 404" => delete::delete_tag;
    "delete-manifest", Must, V1_1, "Deleting Manifests: 202, then digest and tags are 404" => delete::delete_manifest;
    "delete-manifest-unknown", Must, V1_1, "Deleting Manifests: unknown is 404" => delete::delete_manifest_unknown;
    "delete-manifest-malformed-reference", Should, Main, "Deleting Manifests: a malformed reference is 404 MANIFEST_UNKNOWN (end-9 allows 400; beyond the spec)" => delete::delete_manifest_malformed_reference;
    "delete-blob", Must, V1_1, "Deleting Blobs: 202, then 404" => delete::delete_blob;
    "name-with-api-components", Must, V1_1, "Pulling manifests: <name> grammar allows blobs/manifests/tags/uploads components" => basics::name_with_components;
    "name-invalid", Should, V1_1, "Error Codes: NAME_INVALID for a name outside the grammar" => basics::name_invalid;
    "errors-are-json", Should, V1_1, "Error Codes: JSON error bodies use the errors envelope" => basics::errors_are_json;
    "variety-sha512-throughout", Should, V1_1, "Content Digests: sha512 blobs, an image and an index named by sha512" => variety::sha512_throughout;
    "variety-index-of-indexes", Should, V1_1, "Image index: an index whose entry is an index" => variety::index_of_indexes;
    "variety-descriptor-data", Should, V1_1, "Descriptor: the data field (embedded content)" => variety::descriptor_data_field;
    "variety-non-distributable-layer", Should, V1_1, "Image manifest: a non-distributable layer with urls, never pushed" => variety::non_distributable_layer;
    "variety-custom-fields", Must, V1_1, "Pushing Manifests: custom fields in manifests and configs, stored in their exact bytes" => variety::custom_fields;
    "variety-image-without-layers", Should, V1_1, "Image manifest: an image with no layers" => variety::image_without_layers;
    "variety-artifact-manifest", Must, V1_1, "Listing Referrers: an artifact manifest (artifactType, empty config) is listed with its artifactType" => variety::artifact_manifest;
    "variety-artifact-index", Must, V1_1, "Listing Referrers: an index with artifactType and subject is listed (OCI-Subject MUST)" => variety::artifact_index_with_subject;
    "variety-referrer-before-subject", Must, V1_1, "Pushing Manifests: a referrer pushed before its subject is listed once the subject is there" => variety::referrer_before_subject;
    "early-answer-out-of-order-patch", Must, Main, "Pushing a blob in chunks: the 416 for a chunk out of order reaches a client still sending (RFC 9112 9.6)" => early_answers::early_out_of_order_patch;
    "early-answer-out-of-order-put", Must, Main, "Pushing a blob in chunks: the 416 for a final chunk out of order reaches a client still sending" => early_answers::early_out_of_order_final_put;
    "early-answer-unknown-session", Must, Main, "Error Codes: BLOB_UPLOAD_UNKNOWN for a PATCH with a body reaches a client still sending" => early_answers::early_unknown_session;
    "early-answer-manifest-too-large", Should, Main, "Pushing Manifests: the 413 over the limit reaches a client still sending" => early_answers::early_manifest_too_large;
    "early-answer-without-credentials", Must, Main, "Token auth: the 401 for an upload without credentials reaches a client still sending" => early_answers::early_without_credentials;
}
