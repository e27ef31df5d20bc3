//! Upload session ids that carry their own proof of origin.
//!
//! Opening a session (`POST`) writes nothing: the id itself says when it was minted, for which
//! repository (through the MAC) and which digest algorithm the session hashes with, signed with
//! a key every replica shares (kept in the `settings` table). The first chunk creates the
//! session's row. A `POST` + `PUT` push therefore costs one database commit, not three, and an
//! id that was never minted here (or for another repository) is still `BLOB_UPLOAD_UNKNOWN`.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use depot_store::digest::Algorithm;
use depot_store::names::RepoName;

/// How long a minted id stays usable.
pub const SESSION_TTL_MS: i64 = 24 * 60 * 60 * 1000;

/// Mints and checks session ids: `<created ms, hex>-<alg>-<random, 16 hex>-<mac, 24 hex>`.
#[derive(Clone)]
pub struct UploadIds {
    key: Vec<u8>,
}

/// What a valid id says about its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionInfo {
    pub algorithm: Algorithm,
    pub created_ms: i64,
}

impl UploadIds {
    pub fn new(key: &[u8]) -> Self {
        UploadIds { key: key.to_vec() }
    }

    fn mac(&self, repo: &RepoName, body: &str) -> String {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(repo.as_str().as_bytes());
        mac.update(b"\n");
        mac.update(body.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..12])
    }

    pub fn mint(&self, repo: &RepoName, algorithm: Algorithm, now_ms: i64) -> String {
        let alg = match algorithm {
            Algorithm::Sha256 => "s2",
            Algorithm::Sha512 => "s5",
        };
        let body = format!("{now_ms:x}-{alg}-{:016x}", rand::random::<u64>());
        let mac = self.mac(repo, &body);
        format!("{body}-{mac}")
    }

    /// Checks an id for `repo`; `None` if it was not minted here for `repo` or has expired.
    pub fn check(&self, repo: &RepoName, id: &str, now_ms: i64) -> Option<SessionInfo> {
        let (body, mac) = id.rsplit_once('-')?;
        // Compare MACs without early exit, so timing tells nothing about the right value.
        let expected = self.mac(repo, body);
        if expected.len() != mac.len()
            || expected
                .bytes()
                .zip(mac.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                != 0
        {
            return None;
        }
        let mut parts = body.split('-');
        let created_ms = i64::from_str_radix(parts.next()?, 16).ok()?;
        let algorithm = match parts.next()? {
            "s2" => Algorithm::Sha256,
            "s5" => Algorithm::Sha512,
            _ => return None,
        };
        (now_ms - created_ms <= SESSION_TTL_MS).then_some(SessionInfo {
            algorithm,
            created_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mint_and_check() {
        let ids = UploadIds::new(b"k");
        let repo: RepoName = "a/b".parse().unwrap();
        let other: RepoName = "a/c".parse().unwrap();
        let id = ids.mint(&repo, Algorithm::Sha512, 1000);
        assert!(id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        assert_eq!(
            ids.check(&repo, &id, 2000),
            Some(SessionInfo {
                algorithm: Algorithm::Sha512,
                created_ms: 1000
            })
        );
        assert_eq!(
            ids.check(&other, &id, 2000),
            None,
            "bound to its repository"
        );
        assert_eq!(UploadIds::new(b"other key").check(&repo, &id, 2000), None);
        assert_eq!(
            ids.check(&repo, &id, 1000 + SESSION_TTL_MS + 1),
            None,
            "expired"
        );
        let mut forged = id.clone();
        forged.replace_range(0..1, if id.starts_with('0') { "1" } else { "0" });
        assert_eq!(ids.check(&repo, &forged, 2000), None);
        assert_eq!(
            ids.check(&repo, "00000000-0000-4000-8000-000000000000", 2000),
            None
        );
    }
}
