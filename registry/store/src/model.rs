//! What a project and a build are, and which tags belong to a build.
//!
//! A build's images live in its project's repository (named by the project id). Its tags are
//! `<build-id>` (per target for bake: `<build-id>-<target>`), per-platform tags pushed by native
//! builders (`<build-id>[-<target>]-<os>-<arch>[-<variant>]`) and its save tags
//! (`<save-tag>[-<target>]`). [`Build::tag_role`] decides which of those a tag is, so a push token
//! can write exactly these and nothing of another build.

use serde::{Deserialize, Serialize};

/// Length of a build id (see [`random_id`]).
pub const BUILD_ID_LEN: usize = 16;
/// The longest a build (or a project's builds) may be kept: ten years. Every expiry is checked
/// against it, so no arithmetic on times can overflow.
pub const MAX_RETENTION_SECS: i64 = 10 * 365 * 24 * 3600;
/// How many platforms one list (the build's, or a target's) may name.
pub const MAX_PLATFORMS: usize = 32;
/// How many bake targets and save tags a build may have.
pub const MAX_TARGETS: usize = 64;
pub const MAX_SAVE_TAGS: usize = 32;
/// How many `-t` names one output may record, and how long one may be.
pub const MAX_IMAGE_NAMES: usize = 16;
pub const MAX_IMAGE_NAME_LEN: usize = 255;
/// Longest `os`, `architecture` or `variant` in a platform.
const MAX_PLATFORM_PART: usize = 32;

/// When something `secs` from `now_ms` happens, with `secs` checked against
/// `1..=MAX_RETENTION_SECS`; the error names `field` and the range.
pub fn expiry_after(now_ms: i64, secs: i64, field: &str) -> Result<i64, String> {
    if !(1..=MAX_RETENTION_SECS).contains(&secs) {
        return Err(format!(
            "{field} must be between 1 and {MAX_RETENTION_SECS} seconds (ten years)"
        ));
    }
    now_ms
        .checked_add(secs * 1000)
        .ok_or_else(|| format!("{field} is out of range"))
}

/// The repository a project's build cache lives in (`--cache-to type=registry` of `depot
/// build`): the builders of its builds push there with their push tokens, and what they push
/// belongs to their build, so the cache lives as long as the builds that wrote it.
pub fn cache_repository(project: &str) -> String {
    format!("{project}/cache")
}

/// The build id a tag is named after, if it is one (`<id>` or `<id>-...`): such a tag belongs
/// to that build alone.
pub fn build_id_prefix(tag: &str) -> Option<&str> {
    let id = tag.get(..BUILD_ID_LEN)?;
    let rest = &tag[BUILD_ID_LEN..];
    let shaped = id.as_bytes()[0].is_ascii_lowercase()
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    (shaped && (rest.is_empty() || rest.starts_with('-'))).then_some(id)
}

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
    /// Retention by count, beside the age limit every build has.
    pub keep: Option<KeepPolicy>,
}

/// The most builds a count policy may keep, and the longest `days` it may name.
pub const MAX_KEEP_BUILDS: i64 = 100_000;
pub const MAX_KEEP_DAYS: i64 = 3650;
const DAY_MS: i64 = 24 * 3600 * 1000;

/// Retention by count: the newest `builds` saved builds of a project are kept (until their own
/// expiry); older saved builds are kept only while younger than `days`, when it is set.
/// Builds still building, and failed ones, are not counted: a run of failures never pushes the
/// last good build out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeepPolicy {
    pub builds: i64,
    pub days: Option<i64>,
}

impl KeepPolicy {
    /// Checks the ranges (`1..=MAX_KEEP_BUILDS`, `1..=MAX_KEEP_DAYS`), so the arithmetic in
    /// [`KeepPolicy::expiry`] cannot overflow.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_KEEP_BUILDS).contains(&self.builds) {
            return Err(format!(
                "keep_builds must be between 1 and {MAX_KEEP_BUILDS}"
            ));
        }
        if let Some(d) = self.days {
            if !(1..=MAX_KEEP_DAYS).contains(&d) {
                return Err(format!("keep_days must be between 1 and {MAX_KEEP_DAYS}"));
            }
        }
        Ok(())
    }

    /// When a saved build beyond the newest `builds` must expire: now, or when it turns `days`
    /// old if that is later; never later than the expiry it already has (`None`: it stays as
    /// it is).
    pub fn expiry(&self, created_at: i64, expires_at: i64, now: i64) -> Option<i64> {
        let until = match self.days {
            Some(d) => created_at.saturating_add(d * DAY_MS).max(now),
            None => now,
        };
        (until < expires_at).then_some(until)
    }
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
        if !(2..=3).contains(&parts.len())
            || !parts.iter().all(ok)
            || parts.iter().any(|p| p.len() > MAX_PLATFORM_PART)
        {
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Target {
    pub name: String,
    /// Expected platforms (`os/arch[/variant]`); with fewer than two, one image completes it.
    #[serde(default)]
    pub platforms: Vec<String>,
    /// The `-t` names the build was run with for this output (`ghcr.io/acme/web:v1`), which
    /// `depot pull` gives the image by default, as Depot does. Recorded, never resolved.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_names: Vec<String>,
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
    /// The `-t` names of a build without targets (see [`Target::image_names`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_names: Vec<String>,
}

impl BuildSpec {
    /// The outputs to wait for: each named target, or the one unnamed output.
    pub fn outputs(&self) -> Vec<Target> {
        if self.targets.is_empty() {
            return vec![Target {
                name: String::new(),
                platforms: self.platforms.clone(),
                image_names: self.image_names.clone(),
            }];
        }
        self.targets
            .iter()
            .map(|t| Target {
                name: t.name.clone(),
                image_names: t.image_names.clone(),
                platforms: if t.platforms.is_empty() {
                    self.platforms.clone()
                } else {
                    t.platforms.clone()
                },
            })
            .collect()
    }

    /// Checks names and platforms so that every tag the build `id` can ever derive (outputs,
    /// per-platform images, save tags per target) is a valid, unambiguous tag.
    pub fn validate(&self, id: &str) -> Result<(), String> {
        let lists =
            std::iter::once(&self.platforms).chain(self.targets.iter().map(|t| &t.platforms));
        for list in lists {
            if list.len() > MAX_PLATFORMS {
                return Err(format!("at most {MAX_PLATFORMS} platforms per list"));
            }
            let mut seen = std::collections::HashSet::new();
            for p in list {
                let parsed = Platform::parse(p).ok_or_else(|| {
                    format!(
                        "invalid platform {:?} (want os/arch[/variant], each [a-z0-9_]{{1,{MAX_PLATFORM_PART}}})",
                        truncated(p)
                    )
                })?;
                if !seen.insert(parsed) {
                    return Err(format!("platform {p:?} named twice"));
                }
            }
        }
        if self.targets.len() > MAX_TARGETS {
            return Err(format!("at most {MAX_TARGETS} targets"));
        }
        let mut seen = std::collections::HashSet::new();
        for t in &self.targets {
            if !is_name(&t.name, 64) {
                return Err(format!("invalid target name {:?}", truncated(&t.name)));
            }
            if !seen.insert(&t.name) {
                return Err(format!("target {:?} named twice", t.name));
            }
        }
        if self.save_tags.len() > MAX_SAVE_TAGS {
            return Err(format!("at most {MAX_SAVE_TAGS} save tags"));
        }
        let mut seen = std::collections::HashSet::new();
        for s in &self.save_tags {
            if !is_name(s, 128) {
                return Err(format!("invalid save tag {:?}", truncated(s)));
            }
            if !seen.insert(s) {
                return Err(format!("save tag {s:?} named twice"));
            }
        }
        if !self.targets.is_empty() && !self.image_names.is_empty() {
            return Err("a build with targets records image_names per target".into());
        }
        let names =
            std::iter::once(&self.image_names).chain(self.targets.iter().map(|t| &t.image_names));
        for list in names {
            if list.len() > MAX_IMAGE_NAMES {
                return Err(format!("at most {MAX_IMAGE_NAMES} image_names per output"));
            }
            for n in list {
                if n.is_empty()
                    || n.chars().count() > MAX_IMAGE_NAME_LEN
                    || n.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    return Err(format!(
                        "invalid image name {:?} (1 to {MAX_IMAGE_NAME_LEN} characters, no spaces)",
                        truncated(n)
                    ));
                }
            }
        }
        for tag in self.derived_tags(id) {
            if tag.parse::<crate::names::Tag>().is_err() {
                return Err(format!(
                    "the build would need tag {tag:?}, longer than a tag may be (128 characters): shorten its target names, platforms or save tags"
                ));
            }
        }
        Ok(())
    }

    /// Every tag build `id` can point: each output's, each platform image's, and each save
    /// tag per output.
    pub fn derived_tags(&self, id: &str) -> Vec<String> {
        let mut tags = Vec::new();
        for output in self.outputs() {
            let base = suffixed(id, &output.name);
            for p in output.platforms.iter().filter_map(|p| Platform::parse(p)) {
                tags.push(format!("{base}-{}", p.tag_suffix()));
            }
            tags.push(base);
            tags.extend(self.save_tags.iter().map(|s| suffixed(s, &output.name)));
        }
        tags
    }

    /// The save tags of this spec as pointed per output (`<save-tag>[-<target>]`).
    pub fn derived_save_tags(&self) -> Vec<String> {
        let outputs = self.outputs();
        self.save_tags
            .iter()
            .flat_map(|s| outputs.iter().map(move |o| suffixed(s, &o.name)))
            .collect()
    }
}

/// Unix milliseconds (as every stored time is) as RFC 3339 UTC (`2026-11-22T22:08:05Z`); times
/// before 1970 (none are stored) print as the epoch.
pub fn rfc3339(ms: i64) -> String {
    let at =
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(at).to_string()
}

/// The first `max` characters of `s` (cut at a character, never inside one).
pub fn at_most(s: &str, max: usize) -> &str {
    s.char_indices().nth(max).map_or(s, |(i, _)| &s[..i])
}

/// At most 80 characters of `s`, for error messages about oversized input.
fn truncated(s: &str) -> String {
    let cut = at_most(s, 80);
    if cut.len() < s.len() {
        format!("{cut}...")
    } else {
        s.to_owned()
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
    fn keep_policy_expiry_is_now_or_at_the_age_never_later_than_before() {
        let day = DAY_MS;
        let now = 100 * day;
        let count_only = KeepPolicy {
            builds: 3,
            days: None,
        };
        assert_eq!(count_only.expiry(now - day, now + 5 * day, now), Some(now));
        // Already expiring sooner (or now): left as it is.
        assert_eq!(count_only.expiry(now - day, now, now), None);
        let with_days = KeepPolicy {
            builds: 3,
            days: Some(7),
        };
        // Two days old: kept five more days, not its own thirty.
        assert_eq!(
            with_days.expiry(now - 2 * day, now + 28 * day, now),
            Some(now + 5 * day)
        );
        // Eight days old: now.
        assert_eq!(
            with_days.expiry(now - 8 * day, now + 22 * day, now),
            Some(now)
        );
        // Its own expiry comes first.
        assert_eq!(with_days.expiry(now - 2 * day, now + day, now), None);
        // The extremes stay in range.
        let widest = KeepPolicy {
            builds: MAX_KEEP_BUILDS,
            days: Some(MAX_KEEP_DAYS),
        };
        assert!(widest.validate().is_ok());
        // A creation time near the end of time saturates instead of wrapping into the past.
        assert_eq!(widest.expiry(i64::MAX - 1, i64::MAX, 0), None);
        assert_eq!(widest.expiry(0, i64::MAX, 0), Some(MAX_KEEP_DAYS * DAY_MS));
        for bad in [
            KeepPolicy {
                builds: 0,
                days: None,
            },
            KeepPolicy {
                builds: MAX_KEEP_BUILDS + 1,
                days: None,
            },
            KeepPolicy {
                builds: 1,
                days: Some(0),
            },
            KeepPolicy {
                builds: 1,
                days: Some(MAX_KEEP_DAYS + 1),
            },
            KeepPolicy {
                builds: -1,
                days: Some(-1),
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tag_roles_of_a_multi_platform_build() {
        let b = build(BuildSpec {
            platforms: vec!["linux/amd64".into(), "linux/arm64/v8".into()],
            targets: vec![],
            save_tags: vec!["latest".into()],
            ..Default::default()
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
                    ..Default::default()
                },
                Target {
                    name: "api".into(),
                    platforms: vec!["linux/amd64".into(), "linux/arm64".into()],
                    ..Default::default()
                },
            ],
            save_tags: vec!["v1".into()],
            ..Default::default()
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
        let id = random_id(BUILD_ID_LEN);
        let mut spec = BuildSpec::default();
        assert!(spec.validate(&id).is_ok());
        spec.save_tags = vec!["-bad".into()];
        assert!(spec.validate(&id).is_err());
        spec.save_tags = vec![];
        spec.platforms = vec!["linux/AMD64".into()];
        assert!(spec.validate(&id).is_err());
        spec.platforms = vec!["linux/amd64".into(), "linux/amd64".into()];
        assert!(spec.validate(&id).is_err(), "duplicate platforms");
        spec.platforms = vec![format!("linux/{}", "a".repeat(5000))];
        assert!(spec.validate(&id).is_err(), "a 5,000-character platform");
        spec.platforms = vec![];
        // A target of 64 and a save tag of 64 characters would derive a 129-character tag.
        spec.targets = vec![Target {
            name: "t".repeat(64),
            ..Default::default()
        }];
        spec.save_tags = vec!["s".repeat(64)];
        let e = spec.validate(&id).unwrap_err();
        assert!(e.contains("128"), "{e}");
        spec.save_tags = vec!["s".repeat(63)];
        assert!(spec.validate(&id).is_ok());
        // Every tag the accepted spec derives is a valid tag.
        spec.platforms = vec!["linux/arm64/v8".into()];
        spec.targets[0].name = "t".repeat(40);
        spec.validate(&id).unwrap();
        for tag in spec.derived_tags(&id) {
            assert!(tag.parse::<crate::names::Tag>().is_ok(), "{tag}");
        }
        // Recorded -t names: per target for a bake build, bounded in count and length.
        spec.targets[0].image_names = vec!["ghcr.io/acme/web:v1".into()];
        spec.validate(&id).unwrap();
        spec.image_names = vec!["acme/app:v1".into()];
        assert!(spec.validate(&id).unwrap_err().contains("per target"));
        spec.image_names = vec![];
        spec.targets[0].image_names = vec!["a b".into()];
        assert!(spec
            .validate(&id)
            .unwrap_err()
            .contains("invalid image name"));
        spec.targets[0].image_names = vec!["x".repeat(256)];
        assert!(spec.validate(&id).is_err());
        spec.targets[0].image_names = vec!["a:1".into(); MAX_IMAGE_NAMES + 1];
        assert!(spec.validate(&id).unwrap_err().contains("at most"));
    }

    #[test]
    fn expiries_are_checked() {
        assert_eq!(expiry_after(1000, 1, "x"), Ok(2000));
        assert!(expiry_after(0, 0, "x").is_err());
        assert!(expiry_after(0, -5, "x").is_err());
        let e = expiry_after(0, 9_223_372_036_854_776, "add_secs").unwrap_err();
        assert!(e.contains("add_secs") && e.contains("315360000"), "{e}");
        assert!(expiry_after(0, MAX_RETENTION_SECS, "x").is_ok());
        assert!(expiry_after(i64::MAX - 10, MAX_RETENTION_SECS, "x").is_err());
    }

    #[test]
    fn tags_named_after_build_ids() {
        let id = random_id(BUILD_ID_LEN);
        assert_eq!(build_id_prefix(&id), Some(id.as_str()));
        assert_eq!(build_id_prefix(&format!("{id}-web")), Some(id.as_str()));
        assert_eq!(build_id_prefix(&format!("{id}x")), None);
        assert_eq!(build_id_prefix("latest"), None);
        assert_eq!(build_id_prefix("Aaaaaaaaaaaaaaaa"), None);
    }

    #[test]
    fn random_ids_are_tag_and_repository_safe() {
        for _ in 0..100 {
            let id = random_id(BUILD_ID_LEN);
            assert_eq!(id.len(), 16);
            assert!(id.chars().next().unwrap().is_ascii_lowercase());
            assert!(id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
        }
    }
}
