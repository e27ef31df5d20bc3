//! `depot trust-policy add|list|rm`: which CI jobs may exchange their OIDC identity for a
//! credential on the project (managed with the project's own token or the admin token).

use std::io::IsTerminal;

use anyhow::Result;
use depot_api_types::{OidcProvider, TrustAccess, TrustPolicySpec};

use crate::api::Api;
use crate::config::Context;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Access {
    /// Create builds (and push to them) and pull
    Build,
    /// Pull only (pull-request jobs, untrusted branches)
    Pull,
}

#[derive(Debug, clap::Args)]
pub struct Common {
    /// What a matching job may do
    #[arg(long, value_enum)]
    access: Access,
}

#[derive(Debug, clap::Subcommand)]
pub enum Provider {
    /// Trust GitHub Actions jobs of a repository (pull-request jobs never get build access)
    #[command(after_help = "Examples:
  depot trust-policy add github --owner acme --repository app --ref refs/heads/main --ref 'refs/tags/v*' --access build
  depot trust-policy add github --owner acme --repository app --access pull")]
    Github {
        /// The repository's owner (user or organisation)
        #[arg(long)]
        owner: String,
        /// The repository's name, without the owner
        #[arg(long)]
        repository: String,
        /// Refs jobs may run on, `*` as wildcard (repeatable; default any)
        #[arg(long = "ref", value_name = "PATTERN")]
        refs: Vec<String>,
        /// Deployment environments jobs must run in (repeatable; default any)
        #[arg(long = "environment", value_name = "NAME")]
        environments: Vec<String>,
        /// Workflows, by name or path `.github/workflows/x.yml` (repeatable; default any)
        #[arg(long = "workflow", value_name = "NAME")]
        workflows: Vec<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Trust GitLab CI jobs of a project (merge request pipelines never get build access)
    #[command(after_help = "Example:
  depot trust-policy add gitlab --namespace acme --project-path app --ref refs/heads/main --protected-only --access build")]
    Gitlab {
        /// The group or user namespace
        #[arg(long)]
        namespace: String,
        /// The project's path inside the namespace
        #[arg(long = "project-path")]
        project_path: String,
        /// Refs jobs may run on (`main`, `refs/heads/main`, `refs/tags/v*`; repeatable)
        #[arg(long = "ref", value_name = "PATTERN")]
        refs: Vec<String>,
        /// Only jobs on protected branches and tags
        #[arg(long)]
        protected_only: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Trust CircleCI jobs of a project
    #[command(after_help = "Example:
  depot trust-policy add circleci --organization-id 0a1b... --project-id 7f3e... --access build")]
    Circleci {
        #[arg(long)]
        organization_id: String,
        #[arg(long)]
        project_id: String,
        #[command(flatten)]
        common: Common,
    },
    /// Trust Buildkite jobs of a pipeline (fork branches never get build access)
    #[command(after_help = "Example:
  depot trust-policy add buildkite --organization acme --pipeline app --branch main --access build")]
    Buildkite {
        /// The organisation's slug
        #[arg(long)]
        organization: String,
        /// The pipeline's slug
        #[arg(long)]
        pipeline: String,
        /// Branches jobs may build, `*` as wildcard (repeatable; default any)
        #[arg(long = "branch", value_name = "PATTERN")]
        branches: Vec<String>,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum Args {
    /// Trust the jobs of a CI provider that match
    #[command(subcommand)]
    Add(Provider),
    /// The project's trust policies
    List {
        /// table or json (default: table on a terminal, json otherwise)
        #[arg(long, short = 'o', value_parser = ["table", "json"])]
        output: Option<String>,
    },
    /// Stop trusting: no new exchange, and what the policies issued stops working
    Rm {
        #[arg(required = true)]
        ids: Vec<String>,
    },
}

fn spec(provider: Provider) -> TrustPolicySpec {
    let access = |c: &Common| {
        Some(match c.access {
            Access::Build => TrustAccess::Build,
            Access::Pull => TrustAccess::Pull,
        })
    };
    match provider {
        Provider::Github {
            owner,
            repository,
            refs,
            environments,
            workflows,
            common,
        } => TrustPolicySpec {
            provider: Some(OidcProvider::Github),
            access: access(&common),
            owner: Some(owner),
            repository: Some(repository),
            refs,
            environments,
            workflows,
            ..Default::default()
        },
        Provider::Gitlab {
            namespace,
            project_path,
            refs,
            protected_only,
            common,
        } => TrustPolicySpec {
            provider: Some(OidcProvider::Gitlab),
            access: access(&common),
            namespace: Some(namespace),
            project: Some(project_path),
            refs,
            protected_only,
            ..Default::default()
        },
        Provider::Circleci {
            organization_id,
            project_id,
            common,
        } => TrustPolicySpec {
            provider: Some(OidcProvider::Circleci),
            access: access(&common),
            organization_id: Some(organization_id),
            project_id: Some(project_id),
            ..Default::default()
        },
        Provider::Buildkite {
            organization,
            pipeline,
            branches,
            common,
        } => TrustPolicySpec {
            provider: Some(OidcProvider::Buildkite),
            access: access(&common),
            organization: Some(organization),
            pipeline: Some(pipeline),
            branches,
            ..Default::default()
        },
    }
}

/// What a policy trusts, in one line (`acme/app refs=refs/heads/main`).
fn describe(s: &TrustPolicySpec) -> String {
    let list =
        |name: &str, v: &[String]| (!v.is_empty()).then(|| format!("{name}={}", v.join(",")));
    let who = match s.provider {
        Some(OidcProvider::Github) => format!(
            "{}/{}",
            s.owner.as_deref().unwrap_or_default(),
            s.repository.as_deref().unwrap_or_default()
        ),
        Some(OidcProvider::Gitlab) => format!(
            "{}/{}",
            s.namespace.as_deref().unwrap_or_default(),
            s.project.as_deref().unwrap_or_default()
        ),
        Some(OidcProvider::Circleci) => format!(
            "org {} project {}",
            s.organization_id.as_deref().unwrap_or_default(),
            s.project_id.as_deref().unwrap_or_default()
        ),
        Some(OidcProvider::Buildkite) => format!(
            "{}/{}",
            s.organization.as_deref().unwrap_or_default(),
            s.pipeline.as_deref().unwrap_or_default()
        ),
        None => String::new(),
    };
    [
        Some(who),
        list("refs", &s.refs),
        list("environments", &s.environments),
        list("workflows", &s.workflows),
        list("branches", &s.branches),
        s.protected_only.then(|| "protected-only".to_owned()),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ")
}

pub async fn run(ctx: &Context, http: &reqwest::Client, args: Args) -> Result<()> {
    let api = Api::new(http.clone(), ctx);
    let project = ctx.project()?;
    match args {
        Args::Add(provider) => {
            let created = api.create_trust_policy(project, &spec(provider)).await?;
            println!("{}", created.id);
            eprintln!(
                "Project {project} now trusts {} jobs of {} ({} access)",
                created
                    .spec
                    .provider
                    .map(|p| p.as_str())
                    .unwrap_or_default(),
                describe(&created.spec),
                created.spec.access.map(|a| a.as_str()).unwrap_or_default()
            );
        }
        Args::List { output } => {
            let policies = api.trust_policies(project).await?;
            let table = match output.as_deref() {
                Some(o) => o == "table",
                None => std::io::stdout().is_terminal(),
            };
            if table {
                let mut t = comfy_table::Table::new();
                t.load_style(comfy_table::presets::UTF8_BORDERS_ONLY);
                t.set_header(["ID", "PROVIDER", "ACCESS", "TRUSTS", "CREATED_AT"]);
                for p in &policies {
                    t.add_row([
                        p.id.clone(),
                        p.spec
                            .provider
                            .map(|x| x.as_str())
                            .unwrap_or_default()
                            .to_owned(),
                        p.spec
                            .access
                            .map(|x| x.as_str())
                            .unwrap_or_default()
                            .to_owned(),
                        describe(&p.spec),
                        p.created_at.clone(),
                    ]);
                }
                println!("{t}");
            } else {
                println!("{}", serde_json::to_string_pretty(&policies)?);
            }
        }
        Args::Rm { ids } => {
            for id in ids {
                api.delete_trust_policy(project, &id).await?;
                eprintln!("Deleted trust policy {id}");
            }
        }
    }
    Ok(())
}
