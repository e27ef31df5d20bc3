//! Loading an image into a Docker Engine (or anything speaking its API, such as
//! `podman system service`) at `DOCKER_HOST`.
//!
//! First choice: the daemon pulls from the registry itself (`POST /images/create` with a
//! short-lived pull token in `X-Registry-Auth`), so layers it already has are not downloaded
//! again and it can pull them in parallel. When it cannot (the registry is not reachable from
//! the daemon, or is plain HTTP and the daemon insists on TLS), the CLI streams a
//! `docker save` archive to `POST /images/load` instead.

use std::collections::HashMap;

use anyhow::{anyhow, bail, Context as _, Result};
use bollard::auth::DockerCredentials;
use bollard::query_parameters::{CreateImageOptions, ImportImageOptions, TagImageOptions};
use bollard::Docker;
use futures::StreamExt;
use tokio_util::io::ReaderStream;

use super::archive;
use crate::image::Graph;
use crate::oci::manifest::Platform;
use crate::progress::{Bar, Progress};
use crate::source::Source;

/// How the image reaches the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Transfer {
    /// The daemon pulls from the registry; an archive is streamed if it cannot
    Auto,
    /// Only let the daemon pull from the registry
    Registry,
    /// Always stream an image archive to the daemon
    Archive,
}

pub struct Daemon {
    docker: Docker,
    pub platform: Platform,
    /// What the daemon presents to the registry when it pulls.
    pub creds: Option<DockerCredentials>,
    pub transfer: Transfer,
}

/// `name:tag` split at the tag's colon (not a registry port's).
pub fn split_tag(name: &str) -> (&str, &str) {
    match name.rfind(':') {
        Some(i) if !name[i..].contains('/') => (&name[..i], &name[i + 1..]),
        _ => (name, "latest"),
    }
}

impl Daemon {
    pub async fn connect() -> Result<Daemon> {
        let host =
            std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
        let docker = Docker::connect_with_defaults()
            .with_context(|| format!("cannot connect to the Docker daemon at {host}"))?
            .negotiate_version()
            .await
            .with_context(|| {
                format!("cannot reach the Docker daemon at {host} (is it running? set DOCKER_HOST)")
            })?;
        let v = docker
            .version()
            .await
            .with_context(|| format!("asking the Docker daemon at {host} for its version"))?;
        let platform = Platform {
            os: v.os.unwrap_or_else(|| "linux".into()),
            architecture: v.arch.unwrap_or_else(|| Platform::host().architecture),
            variant: None,
        };
        Ok(Daemon {
            docker,
            platform,
            creds: None,
            transfer: Transfer::Auto,
        })
    }

    /// Puts `graph` (one platform) into the daemon under `name`; returns how it got there.
    pub async fn load(
        &self,
        source: &Source,
        graph: &Graph,
        name: &str,
        platform: Option<&Platform>,
        progress: &Progress,
    ) -> Result<&'static str> {
        let creds = self.creds.clone();
        let how = match self.transfer {
            Transfer::Archive => {
                self.stream_archive(source, graph, name, progress).await?;
                "streamed as an archive"
            }
            Transfer::Registry => {
                self.pull(name, platform, creds, progress).await?;
                "pulled by the daemon"
            }
            Transfer::Auto => match self.pull(name, platform, creds, progress).await {
                Ok(()) => "pulled by the daemon",
                Err(e) => {
                    // It worked out: a log line, not a warning (hidden with --quiet).
                    progress.line(&format!(
                        "the daemon could not pull {name} ({e:#}); streaming the image to it instead"
                    ));
                    self.stream_archive(source, graph, name, progress).await?;
                    "streamed as an archive"
                }
            },
        };
        self.verify(graph, name).await?;
        Ok(how)
    }

    async fn pull(
        &self,
        name: &str,
        platform: Option<&Platform>,
        creds: Option<DockerCredentials>,
        progress: &Progress,
    ) -> Result<()> {
        let (repo, tag) = split_tag(name);
        let options = CreateImageOptions {
            from_image: Some(repo.to_owned()),
            tag: Some(tag.to_owned()),
            platform: platform.map(ToString::to_string).unwrap_or_default(),
            ..Default::default()
        };
        let mut stream = self.docker.create_image(Some(options), None, creds);
        let mut bars: HashMap<String, Bar> = HashMap::new();
        let mut done: std::collections::HashSet<String> = Default::default();
        while let Some(event) = stream.next().await {
            let event = event.map_err(|e| anyhow!("{e}"))?;
            if let Some(err) = event.error_detail.and_then(|e| e.message) {
                bail!("{err}");
            }
            let (Some(id), Some(status)) = (event.id, event.status) else {
                continue;
            };
            // Layer events carry a short layer id; other ids (the tag, the image) are not bars.
            if id.len() != 12 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue;
            }
            let bar = bars
                .entry(id.clone())
                .or_insert_with(|| progress.bar(format!("layer {id}"), 0));
            if let Some(d) = &event.progress_detail {
                if let (Some(cur), Some(total)) = (d.current, d.total) {
                    bar.set(cur.max(0) as u64, total.max(0) as u64);
                }
            }
            bar.message(&status);
            let finished = matches!(
                status.as_str(),
                "Pull complete" | "Already exists" | "Download complete"
            );
            if finished && done.insert(id) {
                bar.finish(&status.to_lowercase());
            }
        }
        for (id, bar) in &bars {
            if !done.contains(id) {
                bar.finish("done");
            }
        }
        Ok(())
    }

    async fn stream_archive(
        &self,
        source: &Source,
        graph: &Graph,
        name: &str,
        progress: &Progress,
    ) -> Result<()> {
        let (mut writer, reader) = tokio::io::duplex(1 << 20);
        let entries = [archive::Entry {
            graph,
            repo_tags: vec![name.to_owned()],
        }];
        let write = async {
            let r = archive::write(&mut writer, source, &entries, progress).await;
            drop(writer);
            r
        };
        let (written, loaded) = futures::join!(write, self.import(reader));
        // The writer's error explains a daemon's complaint about a truncated archive.
        written?;
        loaded
    }

    /// Sends a `docker save` archive file to `POST /images/load`.
    pub async fn load_archive_file(&self, path: &std::path::Path) -> Result<()> {
        let file = tokio::fs::File::open(path)
            .await
            .with_context(|| format!("opening {}", path.display()))?;
        self.import(file).await
    }

    async fn import(&self, archive: impl tokio::io::AsyncRead + Send + 'static) -> Result<()> {
        let mut answers = self.docker.import_image_stream(
            ImportImageOptions {
                quiet: true,
                ..Default::default()
            },
            ReaderStream::new(archive),
            None,
        );
        let mut failure = None;
        while let Some(a) = answers.next().await {
            match a {
                Ok(info) => {
                    if let Some(m) = info.error_detail.and_then(|e| e.message) {
                        failure = Some(m);
                    }
                }
                Err(e) => failure = Some(e.to_string()),
            }
        }
        match failure {
            Some(f) => bail!("the daemon refused the image archive: {f}"),
            None => Ok(()),
        }
    }

    /// Checks that `name` in the daemon is the image we meant (its ID is its config digest).
    async fn verify(&self, graph: &Graph, name: &str) -> Result<()> {
        let Some(config) = graph.images.first().and_then(|(_, m)| m.config.as_ref()) else {
            return Ok(());
        };
        let inspect = self
            .docker
            .inspect_image(name)
            .await
            .with_context(|| format!("the daemon does not show {name} after loading it"))?;
        let id = inspect.id.unwrap_or_default();
        let id = if id.contains(':') {
            id
        } else {
            format!("sha256:{id}")
        };
        if id != config.digest {
            bail!(
                "the daemon holds image {id} as {name}, expected {}",
                config.digest
            );
        }
        Ok(())
    }

    /// Gives the loaded image another name.
    pub async fn tag(&self, name: &str, new: &str) -> Result<()> {
        let (repo, tag) = split_tag(new);
        self.docker
            .tag_image(
                name,
                Some(TagImageOptions {
                    repo: Some(repo.to_owned()),
                    tag: Some(tag.to_owned()),
                }),
            )
            .await
            .with_context(|| format!("tagging {name} as {new}"))
    }
}

#[cfg(test)]
mod tests {
    use super::split_tag;

    #[test]
    fn tags_split_after_the_port() {
        assert_eq!(split_tag("127.0.0.1:5000/p:b1"), ("127.0.0.1:5000/p", "b1"));
        assert_eq!(
            split_tag("127.0.0.1:5000/p"),
            ("127.0.0.1:5000/p", "latest")
        );
        assert_eq!(split_tag("app:v1"), ("app", "v1"));
    }
}
