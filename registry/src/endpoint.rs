//! Parses a request's method and `/v2/...` path into a typed [`Endpoint`], once.
//!
//! Repository names contain slashes and may contain `blobs`, `manifests`, `tags` or `uploads` as
//! components, so the path is matched from the right: the last one or two segments say which
//! endpoint it is, and everything before them is the name. Handlers then match exhaustively.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::error::{Code, Error};
use depot_store::digest::Digest;
use depot_store::names::{Reference, RepoName, Tag};

/// The most `?tag=` parameters one manifest push may carry (the spec asks for at least 10);
/// more is a `414`, as the spec allows.
pub const MAX_TAGS_PER_PUSH: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /v2/`
    Base,
    /// `GET /v2/_catalog`
    Catalog,
    /// `GET|HEAD /v2/<name>/blobs/<digest>`
    BlobGet {
        name: RepoName,
        digest: Digest,
        head: bool,
    },
    /// `DELETE /v2/<name>/blobs/<digest>`
    BlobDelete { name: RepoName, digest: Digest },
    /// `POST /v2/<name>/blobs/uploads/`
    UploadStart { name: RepoName },
    /// `PATCH /v2/<name>/blobs/uploads/<id>`
    UploadPatch { name: RepoName, id: String },
    /// `PUT /v2/<name>/blobs/uploads/<id>?digest=`
    UploadFinish { name: RepoName, id: String },
    /// `GET /v2/<name>/blobs/uploads/<id>`
    UploadStatus { name: RepoName, id: String },
    /// `DELETE /v2/<name>/blobs/uploads/<id>`
    UploadCancel { name: RepoName, id: String },
    /// `GET|HEAD /v2/<name>/manifests/<reference>`
    ManifestGet {
        name: RepoName,
        reference: Reference,
        head: bool,
    },
    /// `PUT /v2/<name>/manifests/<reference>`, or `PUT /v2/<name>/manifests/<digest>?tag=..`
    ManifestPut {
        name: RepoName,
        reference: Reference,
        /// The tags of a multi-tag push (`?tag=` repeated, in order, without duplicates).
        tags: Vec<Tag>,
    },
    /// `DELETE /v2/<name>/manifests/<reference>`
    ManifestDelete {
        name: RepoName,
        reference: Reference,
    },
    /// `GET /v2/<name>/tags/list`
    TagsList { name: RepoName },
    /// `GET /v2/<name>/referrers/<digest>`
    Referrers { name: RepoName, digest: Digest },
}

impl Endpoint {
    /// The repository the endpoint acts on, if any.
    pub fn repository(&self) -> Option<&RepoName> {
        use Endpoint::*;
        match self {
            Base | Catalog => None,
            BlobGet { name, .. }
            | BlobDelete { name, .. }
            | UploadStart { name }
            | UploadPatch { name, .. }
            | UploadFinish { name, .. }
            | UploadStatus { name, .. }
            | UploadCancel { name, .. }
            | ManifestGet { name, .. }
            | ManifestPut { name, .. }
            | ManifestDelete { name, .. }
            | TagsList { name }
            | Referrers { name, .. } => Some(name),
        }
    }

    /// Parses `path` (which starts with `/v2/`) and the parameters that say what the request
    /// acts on (`query`: the multi-tag push's `tag`s) for `method`.
    pub fn parse(
        method: &Method,
        path: &str,
        query: &[(String, String)],
    ) -> Result<Endpoint, Error> {
        let rest = path.strip_prefix("/v2/").ok_or_else(not_found)?;
        if rest.is_empty() {
            return only(method, &[Method::GET, Method::HEAD], Endpoint::Base);
        }
        if rest == "_catalog" {
            return only(method, &[Method::GET], Endpoint::Catalog);
        }
        let segments: Vec<&str> = rest.split('/').collect();
        let n = segments.len();
        let name_of = |upto: usize| -> Result<RepoName, Error> {
            let name = segments[..upto].join("/");
            name.parse().map_err(|_| {
                Error::new(StatusCode::BAD_REQUEST, Code::NameInvalid)
                    .detail(json!({ "name": truncate(&name) }))
            })
        };
        let digest_of = |s: &str| -> Result<Digest, Error> {
            s.parse()
                .map_err(|_| Error::digest_invalid(format!("invalid digest {:?}", truncate(s))))
        };

        // `<name>/blobs/uploads/` (trailing slash) or `<name>/blobs/uploads`
        if n >= 3
            && segments[n - 3] == "blobs"
            && segments[n - 2] == "uploads"
            && segments[n - 1].is_empty()
        {
            let name = name_of(n - 3)?;
            return only(method, &[Method::POST], Endpoint::UploadStart { name });
        }
        if n >= 2
            && segments[n - 2] == "blobs"
            && segments[n - 1] == "uploads"
            && *method == Method::POST
        {
            return Ok(Endpoint::UploadStart {
                name: name_of(n - 2)?,
            });
        }
        // `<name>/blobs/uploads/<id>`
        if n >= 4 && segments[n - 3] == "blobs" && segments[n - 2] == "uploads" {
            let name = name_of(n - 3)?;
            let id = segments[n - 1].to_owned();
            if !valid_upload_id(&id) {
                return Err(Error::upload_unknown());
            }
            return match *method {
                Method::PATCH => Ok(Endpoint::UploadPatch { name, id }),
                Method::PUT => Ok(Endpoint::UploadFinish { name, id }),
                Method::GET => Ok(Endpoint::UploadStatus { name, id }),
                Method::DELETE => Ok(Endpoint::UploadCancel { name, id }),
                _ => Err(method_not_allowed()),
            };
        }
        if n >= 3 && segments[n - 2] == "blobs" {
            let name = name_of(n - 2)?;
            // A malformed digest names no blob: reads and deletes are told so (the spec's
            // table has only `404` for them), not that their input was bad.
            let digest = segments[n - 1].parse().map_err(|_| {
                Error::blob_unknown(truncate(segments[n - 1]))
                    .message("no blob has this digest: it is not a valid digest")
            })?;
            return match *method {
                Method::GET => Ok(Endpoint::BlobGet {
                    name,
                    digest,
                    head: false,
                }),
                Method::HEAD => Ok(Endpoint::BlobGet {
                    name,
                    digest,
                    head: true,
                }),
                Method::DELETE => Ok(Endpoint::BlobDelete { name, digest }),
                _ => Err(method_not_allowed()),
            };
        }
        if n >= 3 && segments[n - 2] == "manifests" {
            let name = name_of(n - 2)?;
            let raw = segments[n - 1];
            let reference: Reference = raw.parse().map_err(|_| {
                if [Method::GET, Method::HEAD, Method::DELETE].contains(method) {
                    // Nothing can be stored under a malformed reference, so for a read or a
                    // delete it names nothing (the spec lists only `404` for a manifest read);
                    // `400` is for a manifest being pushed.
                    Error::manifest_unknown(truncate(raw))
                        .message("no manifest has this reference: it is not a valid tag or digest")
                } else if *method != Method::PUT {
                    method_not_allowed()
                } else if raw.contains(':') {
                    Error::digest_invalid(format!("invalid digest {:?}", truncate(raw)))
                } else {
                    Error::bad_request(
                        Code::ManifestInvalid,
                        format!("invalid tag {:?}", truncate(raw)),
                    )
                }
            })?;
            return match *method {
                Method::GET => Ok(Endpoint::ManifestGet {
                    name,
                    reference,
                    head: false,
                }),
                Method::HEAD => Ok(Endpoint::ManifestGet {
                    name,
                    reference,
                    head: true,
                }),
                Method::PUT => Ok(Endpoint::ManifestPut {
                    tags: push_tags(&reference, query)?,
                    name,
                    reference,
                }),
                Method::DELETE => Ok(Endpoint::ManifestDelete { name, reference }),
                _ => Err(method_not_allowed()),
            };
        }
        if n >= 3 && segments[n - 2] == "tags" && segments[n - 1] == "list" {
            let name = name_of(n - 2)?;
            return only(method, &[Method::GET], Endpoint::TagsList { name });
        }
        if n >= 3 && segments[n - 2] == "referrers" {
            let name = name_of(n - 2)?;
            let digest = digest_of(segments[n - 1])?;
            return only(method, &[Method::GET], Endpoint::Referrers { name, digest });
        }
        Err(not_found())
    }
}

/// The `?tag=` parameters of a manifest push: only with a digest reference (a push by tag names
/// its tag already), each a valid tag, at most [`MAX_TAGS_PER_PUSH`]. One bad tag refuses the
/// whole push, so a client never has to find out which of its tags were taken.
fn push_tags(reference: &Reference, query: &[(String, String)]) -> Result<Vec<Tag>, Error> {
    let mut tags: Vec<Tag> = Vec::new();
    for (key, value) in query {
        if key != "tag" {
            continue;
        }
        let tag: Tag = value.parse().map_err(|_| {
            Error::bad_request(
                Code::ManifestInvalid,
                format!("invalid tag {:?}", truncate(value)),
            )
            .message("a tag parameter is not a valid tag; nothing was pushed")
        })?;
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    if tags.len() > MAX_TAGS_PER_PUSH {
        return Err(Error::unsupported(
            StatusCode::URI_TOO_LONG,
            format!("at most {MAX_TAGS_PER_PUSH} tags per push"),
        ));
    }
    if !tags.is_empty() && matches!(reference, Reference::Tag(_)) {
        return Err(Error::bad_request(
            Code::ManifestInvalid,
            "tag parameters go with a push by digest: PUT /v2/<name>/manifests/<digest>?tag=..",
        ));
    }
    Ok(tags)
}

fn only(method: &Method, allowed: &[Method], endpoint: Endpoint) -> Result<Endpoint, Error> {
    if allowed.contains(method) {
        Ok(endpoint)
    } else {
        Err(method_not_allowed())
    }
}

/// Upload ids are ours (UUIDs); anything else cannot name a session.
fn valid_upload_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn truncate(s: &str) -> String {
    s.chars().take(256).collect()
}

pub fn not_found() -> Error {
    Error::unsupported(StatusCode::NOT_FOUND, "no such endpoint")
}

fn method_not_allowed() -> Error {
    Error::unsupported(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this endpoint",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(method: &Method, path: &str) -> Result<Endpoint, Error> {
        Endpoint::parse(method, path, &[])
    }

    fn d() -> String {
        format!("sha256:{}", "a".repeat(64))
    }

    #[test]
    fn parses_from_the_right() {
        let e = parse(&Method::GET, &format!("/v2/team/blobs/blobs/{}", d())).unwrap();
        assert!(matches!(e, Endpoint::BlobGet { ref name, .. } if name.as_str() == "team/blobs"));
        let e = parse(&Method::POST, "/v2/a/blobs/uploads/blobs/uploads/").unwrap();
        assert!(
            matches!(e, Endpoint::UploadStart { ref name } if name.as_str() == "a/blobs/uploads")
        );
        let e = parse(&Method::PATCH, "/v2/x/manifests/blobs/uploads/abc-1").unwrap();
        assert!(
            matches!(e, Endpoint::UploadPatch { ref name, ref id } if name.as_str() == "x/manifests" && id == "abc-1")
        );
        let e = parse(&Method::GET, "/v2/tags/tags/list").unwrap();
        assert!(matches!(e, Endpoint::TagsList { ref name } if name.as_str() == "tags"));
        let e = parse(&Method::HEAD, "/v2/m/manifests/manifests/latest").unwrap();
        assert!(
            matches!(e, Endpoint::ManifestGet { ref name, head: true, .. } if name.as_str() == "m/manifests")
        );
        let q = |tags: &[&str]| -> Vec<(String, String)> {
            tags.iter()
                .map(|t| ("tag".to_owned(), t.to_string()))
                .collect()
        };
        let put = format!("/v2/a/manifests/{}", d());
        let e =
            Endpoint::parse(&Method::PUT, &put, &q(&["1.2.3", "1.2", "1.2.3", "latest"])).unwrap();
        let Endpoint::ManifestPut { tags, .. } = e else {
            panic!("{e:?}")
        };
        let tags: Vec<&str> = tags.iter().map(Tag::as_str).collect();
        assert_eq!(tags, ["1.2.3", "1.2", "latest"]);
        let e = parse(&Method::GET, &format!("/v2/r/referrers/{}", d())).unwrap();
        assert!(matches!(e, Endpoint::Referrers { .. }));
        assert_eq!(parse(&Method::GET, "/v2/").unwrap(), Endpoint::Base);
        assert_eq!(
            parse(&Method::GET, "/v2/_catalog").unwrap(),
            Endpoint::Catalog
        );
    }

    #[test]
    fn rejects_bad_input_with_codes() {
        let e = parse(&Method::GET, &format!("/v2/Bad/blobs/{}", d())).unwrap_err();
        assert_eq!(e.code, Code::NameInvalid);
        let e = parse(&Method::GET, "/v2/a/blobs/sha256:xyz").unwrap_err();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::NOT_FOUND, Code::BlobUnknown)
        );
        let e = parse(&Method::GET, "/v2/a/referrers/sha256:xyz").unwrap_err();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::BAD_REQUEST, Code::DigestInvalid)
        );
        let e = parse(&Method::PUT, "/v2/a/manifests/-bad").unwrap_err();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::BAD_REQUEST, Code::ManifestInvalid)
        );
        let put = format!("/v2/a/manifests/{}", d());
        let tag = |t: &str| vec![("tag".to_owned(), t.to_owned())];
        let e = Endpoint::parse(&Method::PUT, &put, &tag("-bad")).unwrap_err();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::BAD_REQUEST, Code::ManifestInvalid)
        );
        let e = Endpoint::parse(&Method::PUT, "/v2/a/manifests/v1", &tag("v2")).unwrap_err();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::BAD_REQUEST, Code::ManifestInvalid)
        );
        let many: Vec<(String, String)> = (0..=MAX_TAGS_PER_PUSH)
            .map(|i| ("tag".to_owned(), format!("t{i}")))
            .collect();
        let e = Endpoint::parse(&Method::PUT, &put, &many).unwrap_err();
        assert_eq!(e.status, StatusCode::URI_TOO_LONG);
        let e = parse(&Method::PUT, "/v2/a/manifests/sha256:xyz").unwrap_err();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::BAD_REQUEST, Code::DigestInvalid)
        );
        for method in [Method::GET, Method::HEAD, Method::DELETE] {
            for bad in [".INVALID_MANIFEST_NAME", "-bad", "sha256:xyz"] {
                let e = parse(&method, &format!("/v2/a/manifests/{bad}")).unwrap_err();
                assert_eq!(
                    (e.status, e.code),
                    (StatusCode::NOT_FOUND, Code::ManifestUnknown),
                    "{method} {bad}"
                );
            }
        }
        let e = parse(&Method::POST, &format!("/v2/a/blobs/{}", d())).unwrap_err();
        assert_eq!(e.status, StatusCode::METHOD_NOT_ALLOWED);
        let e = parse(&Method::GET, "/v2/a/nothing").unwrap_err();
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        let e = parse(&Method::GET, "/v2/a/blobs/uploads/..%2f").unwrap_err();
        assert_eq!(e.code, Code::BlobUploadUnknown);
    }
}
