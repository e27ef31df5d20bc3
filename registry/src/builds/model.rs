//! What a project and a build are, and which tags belong to a build.
//!
//! A build's images live in its project's repository (named by the project id). Its tags are
//! `<build-id>` (per target for bake: `<build-id>-<target>`), per-platform tags pushed by native
//! builders (`<build-id>[-<target>]-<os>-<arch>[-<variant>]`) and its save tags
//! (`<save-tag>[-<target>]`). [`Build::tag_role`] decides which of those a tag is, so a push token
//! can write exactly these and nothing of another build.

use serde::{Deserialize, Serialize};

/// Lifecycle of a build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuildState {
    Building,
    Saved,
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

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "building" => Some(BuildState::Building),
            "saved" => Some(BuildState::Saved),
            "failed" => Some(BuildState::Failed),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    pub id: String,
    pub name: String,
    pub retention_secs: i64,
    pub created_at: i64,
}

/// A platform as `os/arch[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// Parses `linux/amd64` or `linux/arm64/v8`.
    pub fn parse(s: &str) -> Option<Self> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &&str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(ok) {
            return None;
        }
        Some(Platform {
            os: parts[0].to_owned(),
            architecture: parts[1].to_owned(),
            variant: parts.get(2).map(|v| (*v).to_owned()),
        })
    }

    /// The tag suffix a native builder may push this platform to: `linux-arm64-v8`.
    pub fn tag_suffix(&self) -> String {
        self.to_string().replace('/', "-")
    }

    /// Whether an image built for `actual` satisfies this expected platform (a variant left
    /// out here accepts any: `linux/arm64` is met by an image that says `linux/arm64/v8`).
    pub fn accepts(&self, actual: &Platform) -> bool {
        self.os == actual.os
            && self.architecture == actual.architecture
            && (self.variant.is_none() || self.variant == actual.variant)
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// One output of a build: the default one (`name` empty) or a bake target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub name: String,
    /// Expected platforms (`os/arch[/variant]`); with fewer than two, one image completes it.
    #[serde(default)]
    pub platforms: Vec<String>,
}

/// What a build expects, fixed when it is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct BuildSpec {
    #[serde(default)]
    pub platforms: Vec<String>,
    /// Bake targets; empty for an ordinary build.
    #[serde(default)]
    pub targets: Vec<Target>,
    #[serde(default)]
    pub save_tags: Vec<String>,
}

impl BuildSpec {
    /// The outputs to wait for: each named target, or the one unnamed output.
    pub fn outputs(&self) -> Vec<Target> {
        if self.targets.is_empty() {
            return vec![Target {
                name: String::new(),
                platforms: self.platforms.clone(),
            }];
        }
        self.targets
            .iter()
            .map(|t| Target {
                name: t.name.clone(),
                platforms: if t.platforms.is_empty() {
                    self.platforms.clone()
                } else {
                    t.platforms.clone()
                },
            })
            .collect()
    }

    /// Checks names and platforms so that every tag derived from them is a valid, unambiguous tag.
    pub fn validate(&self) -> Result<(), String> {
        let all_platforms = self
            .platforms
            .iter()
            .chain(self.targets.iter().flat_map(|t| t.platforms.iter()));
        for p in all_platforms {
            if Platform::parse(p).is_none() {
                return Err(format!("invalid platform {p:?} (want os/arch[/variant])"));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for t in &self.targets {
            if !is_name(&t.name, 64) {
                return Err(format!("invalid target name {:?}", t.name));
            }
            if !seen.insert(&t.name) {
                return Err(format!("target {:?} named twice", t.name));
            }
        }
        for s in &self.save_tags {
            if !is_name(s, 64) {
                return Err(format!("invalid save tag {s:?}"));
            }
        }
        Ok(())
    }
}

/// A name usable inside a tag: `[A-Za-z0-9_][A-Za-z0-9._-]*`, at most `max` bytes.
fn is_name(s: &str, max: usize) -> bool {
    let mut bytes = s.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphanumeric() || b == b'_' => {}
        _ => return false,
    }
    s.len() <= max
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

/// A build as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Build {
    pub id: String,
    pub project: String,
    pub state: BuildState,
    pub spec: BuildSpec,
    pub failure: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Until when builders may push while the build is still `building`.
    pub lease_expires_at: i64,
    pub expires_at: i64,
}

/// What a tag is to a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagRole {
    /// `<build-id>[-<target>]`: the build's image (or index) for a target.
    Output { target: String },
    /// `<build-id>[-<target>]-<os>-<arch>[-<variant>]`: one platform of a target.
    PlatformImage { target: String, platform: Platform },
    /// `<save-tag>[-<target>]`.
    Save { target: String },
}

impl Build {
    pub fn is_expired(&self, now_ms: i64) -> bool {
        self.expires_at <= now_ms
    }

    /// The tag of a target's output: `<build-id>` or `<build-id>-<target>`.
    pub fn output_tag(&self, target: &str) -> String {
        suffixed(&self.id, target)
    }

    /// Which of this build's tags `tag` is, if any.
    pub fn tag_role(&self, tag: &str) -> Option<TagRole> {
        for output in self.spec.outputs() {
            let base = self.output_tag(&output.name);
            if tag == base {
                return Some(TagRole::Output {
                    target: output.name,
                });
            }
            let Some(rest) = tag
                .strip_prefix(base.as_str())
                .and_then(|r| r.strip_prefix('-'))
            else {
                continue;
            };
            for p in output.platforms.iter().filter_map(|p| Platform::parse(p)) {
                if rest == p.tag_suffix() {
                    return Some(TagRole::PlatformImage {
                        target: output.name.clone(),
                        platform: p,
                    });
                }
            }
        }
        for save in &self.spec.save_tags {
            for output in self.spec.outputs() {
                if tag == suffixed(save, &output.name) {
                    return Some(TagRole::Save {
                        target: output.name,
                    });
                }
            }
        }
        None
    }
}

fn suffixed(base: &str, target: &str) -> String {
    if target.is_empty() {
        base.to_owned()
    } else {
        format!("{base}-{target}")
    }
}

/// A fresh random id of `len` characters from `[a-z0-9]` (usable in repository names and tags).
pub fn random_id(len: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    // The first character is a letter so an id never looks like a number to YAML or a shell.
    (0..len)
        .map(|i| {
            let range = if i == 0 { 26 } else { ALPHABET.len() };
            ALPHABET[rng.gen_range(0..range)] as char
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(spec: BuildSpec) -> Build {
        Build {
            id: "b1x".into(),
            project: "p".into(),
            state: BuildState::Building,
            spec,
            failure: None,
            created_at: 0,
            updated_at: 0,
            lease_expires_at: 0,
            expires_at: 0,
        }
    }

    #[test]
    fn tag_roles_of_a_multi_platform_build() {
        let b = build(BuildSpec {
            platforms: vec!["linux/amd64".into(), "linux/arm64/v8".into()],
            targets: vec![],
            save_tags: vec!["latest".into()],
        });
        assert_eq!(
            b.tag_role("b1x"),
            Some(TagRole::Output {
                target: String::new()
            })
        );
        assert_eq!(
            b.tag_role("b1x-linux-arm64-v8"),
            Some(TagRole::PlatformImage {
                target: String::new(),
                platform: Platform::parse("linux/arm64/v8").unwrap()
            })
        );
        assert_eq!(
            b.tag_role("latest"),
            Some(TagRole::Save {
                target: String::new()
            })
        );
        assert_eq!(b.tag_role("b1x-linux-arm64"), None);
        assert_eq!(b.tag_role("b1y"), None);
        assert_eq!(b.tag_role("v2"), None);
    }

    #[test]
    fn tag_roles_of_a_bake_build() {
        let b = build(BuildSpec {
            platforms: vec![],
            targets: vec![
                Target {
                    name: "web".into(),
                    platforms: vec![],
                },
                Target {
                    name: "api".into(),
                    platforms: vec!["linux/amd64".into(), "linux/arm64".into()],
                },
            ],
            save_tags: vec!["v1".into()],
        });
        assert_eq!(
            b.tag_role("b1x-web"),
            Some(TagRole::Output {
                target: "web".into()
            })
        );
        assert_eq!(
            b.tag_role("b1x-api-linux-arm64"),
            Some(TagRole::PlatformImage {
                target: "api".into(),
                platform: Platform::parse("linux/arm64").unwrap()
            })
        );
        assert_eq!(
            b.tag_role("v1-api"),
            Some(TagRole::Save {
                target: "api".into()
            })
        );
        assert_eq!(b.tag_role("b1x"), None);
        assert_eq!(b.tag_role("v1"), None);
    }

    #[test]
    fn platforms() {
        let arm = Platform::parse("linux/arm64").unwrap();
        let arm8 = Platform::parse("linux/arm64/v8").unwrap();
        assert!(arm.accepts(&arm8));
        assert!(!arm8.accepts(&arm));
        assert_eq!(arm8.to_string(), "linux/arm64/v8");
        assert!(Platform::parse("linux").is_none());
        assert!(Platform::parse("Linux/amd64").is_none());
        assert!(Platform::parse("linux/amd64/v1/x").is_none());
    }

    #[test]
    fn spec_validation() {
        let mut spec = BuildSpec::default();
        assert!(spec.validate().is_ok());
        spec.save_tags = vec!["-bad".into()];
        assert!(spec.validate().is_err());
        spec.save_tags = vec![];
        spec.platforms = vec!["linux/AMD64".into()];
        assert!(spec.validate().is_err());
    }

    #[test]
    fn random_ids_are_tag_and_repository_safe() {
        for _ in 0..100 {
            let id = random_id(16);
            assert_eq!(id.len(), 16);
            assert!(id.chars().next().unwrap().is_ascii_lowercase());
            assert!(id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
        }
    }
}
