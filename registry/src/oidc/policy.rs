//! Trust policies: what each provider's rules are, how a request's rules are checked, and
//! whether the claims of a verified ID token satisfy them.
//!
//! Each provider's token says who the job is in its own claims (GitHub's `repository` and
//! `ref`, GitLab's `project_path` and `ref_protected`, ...). A policy names the project or
//! pipeline it trusts and may narrow that to refs, environments, workflows or branches.
//! Pull-request jobs are never admitted by a `build` policy: none of the providers' tokens says
//! reliably whether the change comes from a fork (GitHub's `pull_request_target` even runs with
//! the base branch's ref), so every pull-request job is treated as one that may.

use depot_api_types::{OidcProvider, TrustAccess, TrustPolicySpec};
use serde_json::{Map, Value};

/// Most patterns one list may hold, and the longest pattern or name.
const MAX_ITEMS: usize = 64;
const MAX_LEN: usize = 256;

/// The claims of a verified ID token.
pub type Claims = Map<String, Value>;

/// Why a request's policy cannot be stored (the message of a `400`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// A checked policy: its access and its provider's rules.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub provider: OidcProvider,
    pub access: TrustAccess,
    pub spec: TrustPolicySpec,
}

fn required(field: &str, value: &Option<String>) -> Result<(), Invalid> {
    match value.as_deref().map(str::trim) {
        Some(v) if !v.is_empty() => name(field, v),
        _ => Err(Invalid(format!("{field} is required"))),
    }
}

fn name(field: &str, v: &str) -> Result<(), Invalid> {
    if v.len() > MAX_LEN || v.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Invalid(format!(
            "{field} must be at most {MAX_LEN} characters, without spaces"
        )));
    }
    Ok(())
}

fn patterns(field: &str, list: &[String]) -> Result<(), Invalid> {
    if list.len() > MAX_ITEMS {
        return Err(Invalid(format!(
            "{field} holds at most {MAX_ITEMS} entries"
        )));
    }
    for p in list {
        if p.is_empty() {
            return Err(Invalid(format!("{field} holds an empty entry")));
        }
        name(field, p)?;
    }
    Ok(())
}

impl Policy {
    /// Checks a request's policy: `provider` and `access` are required, and only the fields
    /// of that provider may be given.
    pub fn from_spec(spec: TrustPolicySpec) -> Result<Policy, Invalid> {
        let provider = spec.provider.ok_or_else(|| {
            Invalid("provider is required: github, gitlab, circleci or buildkite".into())
        })?;
        let access = spec
            .access
            .ok_or_else(|| Invalid("access is required: build or pull".into()))?;
        let s = &spec;
        let given: [(&str, bool); 13] = [
            ("owner", s.owner.is_some()),
            ("repository", s.repository.is_some()),
            ("refs", !s.refs.is_empty()),
            ("environments", !s.environments.is_empty()),
            ("workflows", !s.workflows.is_empty()),
            ("namespace", s.namespace.is_some()),
            ("project", s.project.is_some()),
            ("protected_only", s.protected_only),
            ("organization_id", s.organization_id.is_some()),
            ("project_id", s.project_id.is_some()),
            ("organization", s.organization.is_some()),
            ("pipeline", s.pipeline.is_some()),
            ("branches", !s.branches.is_empty()),
        ];
        let allowed: &[&str] = match provider {
            OidcProvider::Github => &["owner", "repository", "refs", "environments", "workflows"],
            OidcProvider::Gitlab => &["namespace", "project", "refs", "protected_only"],
            OidcProvider::Circleci => &["organization_id", "project_id"],
            OidcProvider::Buildkite => &["organization", "pipeline", "branches"],
        };
        if let Some((field, _)) = given.iter().find(|(f, set)| *set && !allowed.contains(f)) {
            return Err(Invalid(format!(
                "{field} is not a field of {} policies (they take {})",
                provider.as_str(),
                allowed.join(", ")
            )));
        }
        match provider {
            OidcProvider::Github => {
                required("owner", &s.owner)?;
                required("repository", &s.repository)?;
                if s.repository.as_deref().is_some_and(|r| r.contains('/')) {
                    return Err(Invalid(
                        "repository is the name without the owner (owner: acme, repository: app)"
                            .into(),
                    ));
                }
                patterns("refs", &s.refs)?;
                patterns("environments", &s.environments)?;
                patterns("workflows", &s.workflows)?;
            }
            OidcProvider::Gitlab => {
                required("namespace", &s.namespace)?;
                required("project", &s.project)?;
                patterns("refs", &s.refs)?;
            }
            OidcProvider::Circleci => {
                required("organization_id", &s.organization_id)?;
                required("project_id", &s.project_id)?;
            }
            OidcProvider::Buildkite => {
                required("organization", &s.organization)?;
                required("pipeline", &s.pipeline)?;
                patterns("branches", &s.branches)?;
            }
        }
        Ok(Policy {
            provider,
            access,
            spec,
        })
    }

    /// Whether a job with these claims is admitted; `Err` says why not (for the log, never
    /// for the caller, who may be anyone able to mint a token for this audience).
    /// `circleci_org` is the organisation the token's issuer names.
    pub fn admits(&self, claims: &Claims, circleci_org: Option<&str>) -> Result<(), String> {
        let s = &self.spec;
        let build = self.access == TrustAccess::Build;
        match self.provider {
            OidcProvider::Github => {
                let want = format!(
                    "{}/{}",
                    s.owner.as_deref().unwrap_or_default(),
                    s.repository.as_deref().unwrap_or_default()
                );
                // GitHub's names are case-insensitive.
                let repository = text(claims, "repository");
                if !repository.eq_ignore_ascii_case(&want)
                    || !text(claims, "repository_owner")
                        .eq_ignore_ascii_case(s.owner.as_deref().unwrap_or_default())
                {
                    return Err(format!("repository {repository:?} is not {want:?}"));
                }
                let git_ref = text(claims, "ref");
                any_of("ref", &s.refs, &[git_ref])?;
                if !s.environments.is_empty() {
                    let env = text(claims, "environment");
                    if env.is_empty() {
                        return Err("the job runs in no environment".into());
                    }
                    any_of("environment", &s.environments, &[env])?;
                }
                if !s.workflows.is_empty() {
                    // `workflow_ref` is `owner/repo/.github/workflows/x.yml@ref`.
                    let path = text(claims, "workflow_ref")
                        .split_once('@')
                        .map(|(p, _)| p)
                        .unwrap_or_default()
                        .get(repository.len() + 1..)
                        .unwrap_or_default();
                    any_of("workflow", &s.workflows, &[text(claims, "workflow"), path])?;
                }
                let event = text(claims, "event_name");
                let pull_request = matches!(event, "pull_request" | "pull_request_target")
                    || git_ref.starts_with("refs/pull/");
                if build && pull_request {
                    return Err(format!(
                        "a {event} job is never admitted by a build policy (it may run a fork's code)"
                    ));
                }
            }
            OidcProvider::Gitlab => {
                let namespace = s.namespace.as_deref().unwrap_or_default();
                let want = format!("{namespace}/{}", s.project.as_deref().unwrap_or_default());
                let path = text(claims, "project_path");
                if path != want || text(claims, "namespace_path") != namespace {
                    return Err(format!("project {path:?} is not {want:?}"));
                }
                let git_ref = text(claims, "ref");
                let full = match text(claims, "ref_type") {
                    "branch" => format!("refs/heads/{git_ref}"),
                    "tag" => format!("refs/tags/{git_ref}"),
                    _ => git_ref.to_owned(),
                };
                any_of("ref", &s.refs, &[git_ref, &full])?;
                if s.protected_only && text(claims, "ref_protected") != "true" {
                    return Err(format!("ref {git_ref:?} is not protected"));
                }
                if build && text(claims, "pipeline_source") == "merge_request_event" {
                    return Err(
                        "a merge request pipeline is never admitted by a build policy".into(),
                    );
                }
            }
            OidcProvider::Circleci => {
                let org = s.organization_id.as_deref().unwrap_or_default();
                if circleci_org != Some(org) {
                    return Err(format!("organisation {circleci_org:?} is not {org:?}"));
                }
                let project = text(claims, "oidc.circleci.com/project-id");
                if project != s.project_id.as_deref().unwrap_or_default() {
                    return Err(format!("project {project:?} is not the policy's"));
                }
            }
            OidcProvider::Buildkite => {
                let org = text(claims, "organization_slug");
                let pipeline = text(claims, "pipeline_slug");
                if Some(org) != s.organization.as_deref() || Some(pipeline) != s.pipeline.as_deref()
                {
                    return Err(format!("pipeline {org}/{pipeline} is not the policy's"));
                }
                let branch = text(claims, "build_branch");
                any_of("branch", &s.branches, &[branch])?;
                // Buildkite names a third-party fork's branch `owner:branch`.
                if build && branch.contains(':') {
                    return Err(format!(
                        "branch {branch:?} is a fork's, never admitted by a build policy"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A string claim, or "" when absent or not a string.
pub fn text<'a>(claims: &'a Claims, name: &str) -> &'a str {
    claims.get(name).and_then(Value::as_str).unwrap_or_default()
}

/// Whether one of `values` matches one of `patterns` (an empty list admits everything).
fn any_of(what: &str, patterns: &[String], values: &[&str]) -> Result<(), String> {
    if patterns.is_empty()
        || patterns
            .iter()
            .any(|p| values.iter().any(|v| !v.is_empty() && glob(p, v)))
    {
        return Ok(());
    }
    Err(format!("{what} {:?} is not among {patterns:?}", values[0]))
}

/// `*` matches any run of characters (slashes too: `refs/tags/*` admits `refs/tags/v1/rc`);
/// everything else matches itself. Patterns are this small on purpose: a policy is read by
/// people deciding who may push, and `?`, classes or escapes would only make it harder.
pub fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn globs() {
        assert!(glob("refs/heads/main", "refs/heads/main"));
        assert!(!glob("refs/heads/main", "refs/heads/main2"));
        assert!(glob("refs/tags/v*", "refs/tags/v1.2"));
        assert!(glob("refs/tags/*", "refs/tags/v1/rc"));
        assert!(!glob("refs/tags/v*", "refs/heads/v1"));
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*b*c", "axxbyy"));
        assert!(!glob("ab*ba", "aba"));
        assert!(glob("release-*-final", "release-1-final"));
    }

    fn github(refs: &[&str], access: TrustAccess) -> Policy {
        Policy::from_spec(TrustPolicySpec {
            provider: Some(OidcProvider::Github),
            access: Some(access),
            owner: Some("acme".into()),
            repository: Some("app".into()),
            refs: refs.iter().map(|r| (*r).to_owned()).collect(),
            ..Default::default()
        })
        .unwrap()
    }

    fn claims(v: Value) -> Claims {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn github_jobs() {
        let p = github(&["refs/heads/main", "refs/tags/v*"], TrustAccess::Build);
        let job = |git_ref: &str, event: &str| {
            claims(
                json!({"repository": "Acme/App", "repository_owner": "acme", "ref": git_ref,
                "event_name": event, "workflow": "CI",
                "workflow_ref": "Acme/App/.github/workflows/ci.yml@refs/heads/main"}),
            )
        };
        assert_eq!(p.admits(&job("refs/heads/main", "push"), None), Ok(()));
        assert_eq!(p.admits(&job("refs/tags/v1", "push"), None), Ok(()));
        assert!(p.admits(&job("refs/heads/dev", "push"), None).is_err());
        // pull_request_target runs with the base ref, and still may run a fork's code.
        assert!(p
            .admits(&job("refs/heads/main", "pull_request_target"), None)
            .is_err());
        let pull = github(&[], TrustAccess::Pull);
        assert_eq!(
            pull.admits(&job("refs/pull/7/merge", "pull_request"), None),
            Ok(())
        );
        let other = claims(
            json!({"repository": "acme/app2", "repository_owner": "acme",
            "ref": "refs/heads/main"}),
        );
        assert!(pull.admits(&other, None).is_err());
        let mut narrowed = github(&[], TrustAccess::Build);
        narrowed.spec.workflows = vec![".github/workflows/ci.yml".into()];
        assert_eq!(
            narrowed.admits(&job("refs/heads/main", "push"), None),
            Ok(())
        );
        narrowed.spec.workflows = vec!["Release".into()];
        assert!(narrowed
            .admits(&job("refs/heads/main", "push"), None)
            .is_err());
        narrowed.spec.workflows = vec!["CI".into()];
        narrowed.spec.environments = vec!["production".into()];
        assert!(narrowed
            .admits(&job("refs/heads/main", "push"), None)
            .is_err());
        let mut in_env = job("refs/heads/main", "push");
        in_env.insert("environment".into(), json!("production"));
        assert_eq!(narrowed.admits(&in_env, None), Ok(()));
    }

    #[test]
    fn specs_are_checked() {
        let spec = |v: Value| serde_json::from_value::<TrustPolicySpec>(v).unwrap();
        let err = |v: Value| Policy::from_spec(spec(v)).unwrap_err().0;
        assert!(err(json!({"access": "build"})).contains("provider is required"));
        assert!(
            err(json!({"provider": "github", "owner": "a", "repository": "b"}))
                .contains("access is required")
        );
        assert!(
            err(json!({"provider": "github", "access": "pull", "owner": "a"}))
                .contains("repository is required")
        );
        assert!(
            err(json!({"provider": "github", "access": "pull", "owner": "a",
            "repository": "a/b"}))
            .contains("without the owner")
        );
        assert!(err(
            json!({"provider": "gitlab", "access": "pull", "namespace": "a",
            "project": "b", "branches": ["main"]})
        )
        .contains("branches is not a field of gitlab"));
        assert!(err(
            json!({"provider": "buildkite", "access": "pull", "organization": "a",
            "pipeline": "b", "branches": [""]})
        )
        .contains("empty"));
        Policy::from_spec(spec(json!({"provider": "circleci", "access": "build",
            "organization_id": "o", "project_id": "p"})))
        .unwrap();
    }

    #[test]
    fn gitlab_circleci_and_buildkite_jobs() {
        let spec = |v: Value| Policy::from_spec(serde_json::from_value(v).unwrap()).unwrap();
        let gitlab = spec(
            json!({"provider": "gitlab", "access": "build", "namespace": "acme",
            "project": "app", "refs": ["refs/heads/main"], "protected_only": true}),
        );
        let job = claims(json!({"namespace_path": "acme", "project_path": "acme/app",
            "ref": "main", "ref_type": "branch", "ref_protected": "true",
            "pipeline_source": "push"}));
        assert_eq!(gitlab.admits(&job, None), Ok(()));
        let mut unprotected = job.clone();
        unprotected.insert("ref_protected".into(), json!("false"));
        assert!(gitlab.admits(&unprotected, None).is_err());
        let mut mr = job.clone();
        mr.insert("pipeline_source".into(), json!("merge_request_event"));
        assert!(gitlab.admits(&mr, None).is_err());

        let circle = spec(json!({"provider": "circleci", "access": "build",
            "organization_id": "org-1", "project_id": "proj-1"}));
        let job = claims(json!({"oidc.circleci.com/project-id": "proj-1"}));
        assert_eq!(circle.admits(&job, Some("org-1")), Ok(()));
        assert!(circle.admits(&job, Some("org-2")).is_err());

        let kite = spec(json!({"provider": "buildkite", "access": "build",
            "organization": "acme", "pipeline": "app", "branches": ["main", "*:main"]}));
        let job = |branch: &str| {
            claims(json!({"organization_slug": "acme",
            "pipeline_slug": "app", "build_branch": branch}))
        };
        assert_eq!(kite.admits(&job("main"), None), Ok(()));
        assert!(kite.admits(&job("dev"), None).is_err());
        assert!(kite.admits(&job("mallory:main"), None).is_err());
    }
}
