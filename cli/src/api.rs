//! The depot registry's control plane (`/api/v1`): projects, builds, pull tokens, trust
//! policies and the OIDC exchange.

use anyhow::{anyhow, bail, Context as _, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::config::Context;

pub use depot_api_types::{
    Build, BuildPage, BuildState, BuildSummary, CreateBuild, CreateProject, ErrorBody, FailBuild,
    Image, ImagePage, ImageRemoved, OidcConfig, OidcCredential, OidcExchange, Project,
    ProjectDeleted, ProjectList, PullToken, PullTokenRequest, TargetRequest, TrustPolicy,
    TrustPolicyList, TrustPolicySpec, UpdateProject,
};

pub struct Api {
    http: reqwest::Client,
    base: String,
    /// `base` without its scheme, as messages name the registry.
    host: String,
    /// `None` against a registry started with `--no-auth`.
    token: Option<String>,
}

/// No request body.
const NO_BODY: Option<&()> = None;

impl Api {
    pub fn new(http: reqwest::Client, ctx: &Context) -> Api {
        Api {
            http,
            base: ctx.registry.clone(),
            host: ctx.host().to_owned(),
            token: ctx.token.clone(),
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<Option<T>> {
        let url = format!("{}/api/v1{path}", self.base);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = match req.send().await {
            Ok(resp) => resp,
            Err(e) => {
                // A TLS mismatch is said plainly (with the flag that helps), never as a
                // connection failure worth trying again.
                if let Some(tls) = crate::oci::tls::failure(&e) {
                    let hint = crate::oci::own_registry_hint(&self.host);
                    bail!("{}", tls.explain(&self.host, &hint));
                }
                return Err(anyhow::Error::new(e)
                    .context(format!("cannot reach the depot registry at {}", self.base)));
            }
        };
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            let message = serde_json::from_str::<ErrorBody>(&text)
                .ok()
                .and_then(|e| e.message().map(str::to_owned))
                .unwrap_or(text);
            return Err(match (status.as_u16(), &self.token) {
                (401, Some(_)) => anyhow!("the registry refused the token ({message}); run `depot login` or check DEPOT_TOKEN"),
                (401, None) => anyhow!("the registry wants credentials ({message}): {}", crate::config::NO_CREDENTIALS_HINT),
                _ => anyhow!("{method} {url}: {status}: {message}"),
            });
        }
        if status == reqwest::StatusCode::NO_CONTENT {
            return Ok(Some(serde_json::from_str("null")?));
        }
        Ok(Some(resp.json().await.with_context(|| {
            format!("{method} {url}: answer is not the expected JSON")
        })?))
    }

    pub async fn projects(&self) -> Result<Vec<Project>> {
        let list: ProjectList = self
            .call(reqwest::Method::GET, "/projects", NO_BODY)
            .await?
            .ok_or_else(|| anyhow!("this registry has no /api/v1/projects"))?;
        Ok(list.projects)
    }

    pub async fn create_project(&self, req: &CreateProject) -> Result<Project> {
        self.call(reqwest::Method::POST, "/projects", Some(req))
            .await?
            .ok_or_else(|| anyhow!("this registry has no /api/v1/projects"))
    }

    pub async fn update_project(&self, id: &str, req: &UpdateProject) -> Result<Project> {
        self.call(
            reqwest::Method::PATCH,
            &format!("/projects/{id}"),
            Some(req),
        )
        .await?
        .ok_or_else(|| anyhow!("project {id} not found (or not visible to this token)"))
    }

    pub async fn delete_project(&self, id: &str) -> Result<ProjectDeleted> {
        self.call(reqwest::Method::DELETE, &format!("/projects/{id}"), NO_BODY)
            .await?
            .ok_or_else(|| anyhow!("project {id} not found (or not visible to this token)"))
    }

    /// One page of a project's images, most recently pushed first.
    pub async fn images_page(
        &self,
        project: &str,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<(Vec<Image>, Option<String>)> {
        let mut path = format!("/projects/{project}/images?limit={limit}");
        if let Some(c) = cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page: ImagePage = self
            .call(reqwest::Method::GET, &path, NO_BODY)
            .await?
            .ok_or_else(|| anyhow!("project {project} not found (or not visible to this token)"))?;
        Ok((page.images, page.next_cursor))
    }

    /// Removes an image by tag; `None` if the project has no such image.
    pub async fn remove_image(&self, project: &str, tag: &str) -> Result<Option<ImageRemoved>> {
        self.call(
            reqwest::Method::DELETE,
            &format!("/projects/{project}/images/{tag}"),
            NO_BODY,
        )
        .await
    }

    pub async fn build(&self, id: &str) -> Result<Option<Build>> {
        self.call(reqwest::Method::GET, &format!("/builds/{id}"), NO_BODY)
            .await
    }

    /// One page of a project's builds, newest first.
    pub async fn builds_page(
        &self,
        project: &str,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Option<(Vec<BuildSummary>, Option<String>)>> {
        let mut path = format!("/projects/{project}/builds?limit={limit}");
        if let Some(c) = cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page: Option<BuildPage> = self.call(reqwest::Method::GET, &path, NO_BODY).await?;
        Ok(page.map(|p| (p.builds, p.next_cursor)))
    }

    /// The newest live build of `project` carrying save tag `tag` (none either when the
    /// repository is not a project: a registry without auth serves any repository).
    pub async fn build_with_save_tag(
        &self,
        project: &str,
        tag: &str,
    ) -> Result<Option<BuildSummary>> {
        let mut cursor = None;
        loop {
            let Some((builds, next)) = self.builds_page(project, 100, cursor.as_deref()).await?
            else {
                return Ok(None);
            };
            if let Some(b) = builds
                .into_iter()
                .find(|b| !b.expired && b.save_tags.iter().any(|t| t == tag))
            {
                return Ok(Some(b));
            }
            match next {
                Some(n) => cursor = Some(n),
                None => return Ok(None),
            }
        }
    }

    /// Creates a build; the answer carries the token builders push with.
    pub async fn create_build(&self, project: &str, spec: &CreateBuild) -> Result<Build> {
        self.call(
            reqwest::Method::POST,
            &format!("/projects/{project}/builds"),
            Some(spec),
        )
        .await?
        .ok_or_else(|| anyhow!("project {project} not found (or this token cannot see it)"))
    }

    /// Saves the build with what has arrived (a no-op for a build already saved).
    pub async fn finalize_build(&self, id: &str) -> Result<Build> {
        self.call(
            reqwest::Method::POST,
            &format!("/builds/{id}/finalize"),
            NO_BODY,
        )
        .await?
        .ok_or_else(|| anyhow!("build {id} not found"))
    }

    /// Marks the build failed, saying why and (when one failed) which target and platform.
    pub async fn fail_build(
        &self,
        id: &str,
        reason: &str,
        target: Option<&str>,
        platform: Option<&str>,
    ) -> Result<()> {
        let body = FailBuild {
            reason: Some(reason.to_owned()),
            target: target.filter(|t| !t.is_empty()).map(str::to_owned),
            platform: platform.map(str::to_owned),
        };
        let _: Option<Build> = self
            .call(
                reqwest::Method::POST,
                &format!("/builds/{id}/fail"),
                Some(&body),
            )
            .await?;
        Ok(())
    }

    /// A pull token for a build, or (`build` = `None`) for the whole project.
    pub async fn pull_token(
        &self,
        project: Option<&str>,
        build: Option<&str>,
        ttl_secs: Option<u64>,
    ) -> Result<PullToken> {
        let path = match (build, project) {
            (Some(b), _) => format!("/builds/{b}/pull-token"),
            (None, Some(p)) => format!("/projects/{p}/pull-token"),
            (None, None) => return Err(anyhow!("a pull token needs a build or a project")),
        };
        let body = PullTokenRequest {
            ttl_secs: ttl_secs.map(|t| t.min(i64::MAX as u64) as i64),
        };
        self.call(reqwest::Method::POST, &path, Some(&body))
            .await?
            .ok_or_else(|| {
                anyhow!(
                    "{} not found, or this registry issues no tokens (--no-auth)",
                    build
                        .map(|b| format!("build {b}"))
                        .unwrap_or_else(|| format!("project {}", project.unwrap_or_default()))
                )
            })
    }

    /// The audience and issuers of the registry's OIDC exchange (`None`: it has none).
    pub async fn oidc_config(&self) -> Result<Option<OidcConfig>> {
        self.call(reqwest::Method::GET, "/oidc", NO_BODY).await
    }

    /// Exchanges a CI job's ID token for a credential on `project`.
    pub async fn oidc_exchange(&self, project: &str, id_token: &str) -> Result<OidcCredential> {
        let body = OidcExchange {
            project: project.to_owned(),
            token: id_token.to_owned(),
        };
        self.call(reqwest::Method::POST, "/oidc/token", Some(&body))
            .await?
            .ok_or_else(|| anyhow!("this registry has no OIDC exchange"))
    }

    pub async fn trust_policies(&self, project: &str) -> Result<Vec<TrustPolicy>> {
        let list: TrustPolicyList = self
            .call(
                reqwest::Method::GET,
                &format!("/projects/{project}/trust-policies"),
                NO_BODY,
            )
            .await?
            .ok_or_else(|| anyhow!("project {project} not found (or this token cannot see it)"))?;
        Ok(list.policies)
    }

    pub async fn create_trust_policy(
        &self,
        project: &str,
        spec: &TrustPolicySpec,
    ) -> Result<TrustPolicy> {
        self.call(
            reqwest::Method::POST,
            &format!("/projects/{project}/trust-policies"),
            Some(spec),
        )
        .await?
        .ok_or_else(|| anyhow!("project {project} not found (or this token cannot see it)"))
    }

    pub async fn delete_trust_policy(&self, project: &str, id: &str) -> Result<()> {
        let done: Option<()> = self
            .call(
                reqwest::Method::DELETE,
                &format!("/projects/{project}/trust-policies/{id}"),
                NO_BODY,
            )
            .await?;
        done.ok_or_else(|| anyhow!("project {project} has no trust policy {id}"))
    }
}
