//! Content digests (`sha256:<hex>`, `sha512:<hex>`) and a SHA-256/512 hasher whose state can be
//! saved between requests.
//!
//! A chunked upload arrives as several `PATCH` requests, possibly on different replicas. Rather than
//! re-reading everything at the closing `PUT` to verify the digest, each request resumes the hash
//! from the state saved with the upload session (`sha2`'s serializable state) and saves it again
//! when the chunk is durable.

use std::fmt;
use std::str::FromStr;

use sha2::digest::common::hazmat::SerializableState;
use sha2::{Digest as _, Sha256, Sha512};

/// The digest algorithms this registry accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

/// A validated digest. Always lowercase hex of the algorithm's exact length.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid digest {0:?}")]
pub struct InvalidDigest(pub String);

impl Digest {
    pub fn algorithm(&self) -> Algorithm {
        if self.0.starts_with("sha512:") {
            Algorithm::Sha512
        } else {
            Algorithm::Sha256
        }
    }

    /// The hex part after the colon.
    pub fn hex(&self) -> &str {
        &self.0[self.algorithm().as_str().len() + 1..]
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Digest of a byte slice held in memory (manifests only; blobs are streamed).
    pub fn of(algorithm: Algorithm, bytes: &[u8]) -> Digest {
        let hex = match algorithm {
            Algorithm::Sha256 => hex::encode(Sha256::digest(bytes)),
            Algorithm::Sha512 => hex::encode(Sha512::digest(bytes)),
        };
        Digest(format!("{}:{hex}", algorithm.as_str()))
    }
}

impl FromStr for Digest {
    type Err = InvalidDigest;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidDigest(s.chars().take(200).collect());
        let (alg, hex) = s.split_once(':').ok_or_else(invalid)?;
        let alg = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            _ => return Err(invalid()),
        };
        let ok = hex.len() == alg.hex_len()
            && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if ok {
            Ok(Digest(s.to_owned()))
        } else {
            Err(invalid())
        }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A hasher for one upload whose state serializes to a few hundred bytes.
///
/// The algorithm is chosen when the session opens (SHA-256 unless the client asks otherwise),
/// since earlier `PATCH`es do not name the digest; a mismatch at the closing `PUT` is reported
/// as `DIGEST_INVALID`. The state is `sha2`'s own (block buffer included), so hashing runs at the
/// crate's full, SHA-NI accelerated speed.
#[derive(Clone)]
pub enum ResumableHasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl ResumableHasher {
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha256 => ResumableHasher::Sha256(Sha256::new()),
            Algorithm::Sha512 => ResumableHasher::Sha512(Sha512::new()),
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        match self {
            ResumableHasher::Sha256(_) => Algorithm::Sha256,
            ResumableHasher::Sha512(_) => Algorithm::Sha512,
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            ResumableHasher::Sha256(h) => h.update(data),
            ResumableHasher::Sha512(h) => h.update(data),
        }
    }

    /// The digest of everything hashed so far (the hasher itself is unchanged).
    pub fn finish(&self) -> Digest {
        let hex = match self {
            ResumableHasher::Sha256(h) => hex::encode(h.clone().finalize()),
            ResumableHasher::Sha512(h) => hex::encode(h.clone().finalize()),
        };
        Digest(format!("{}:{hex}", self.algorithm().as_str()))
    }

    /// Serializes: one algorithm byte, then `sha2`'s serialized state.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        match self {
            ResumableHasher::Sha256(h) => {
                out.push(1);
                out.extend_from_slice(&h.serialize());
            }
            ResumableHasher::Sha512(h) => {
                out.push(2);
                out.extend_from_slice(&h.serialize());
            }
        }
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let (&tag, state) = bytes.split_first()?;
        match tag {
            1 => Sha256::deserialize(state.try_into().ok()?)
                .ok()
                .map(ResumableHasher::Sha256),
            2 => Sha512::deserialize(state.try_into().ok()?)
                .ok()
                .map(ResumableHasher::Sha512),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let d: Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
        assert_eq!(d.hex(), "a".repeat(64));
        assert!(format!("sha256:{}", "A".repeat(64))
            .parse::<Digest>()
            .is_err());
        assert!(format!("sha256:{}", "a".repeat(63))
            .parse::<Digest>()
            .is_err());
        assert!(format!("md5:{}", "a".repeat(32)).parse::<Digest>().is_err());
        assert!("sha256".parse::<Digest>().is_err());
        assert!(format!("sha512:{}", "0".repeat(128))
            .parse::<Digest>()
            .is_ok());
    }

    #[test]
    fn resumable_matches_sha2_across_splits_and_serialization() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 31 % 251) as u8).collect();
        for alg in [Algorithm::Sha256, Algorithm::Sha512] {
            let expected = Digest::of(alg, &data);
            for split in [0, 1, 63, 64, 65, 127, 128, 129, 5000, 10_000] {
                let mut h = ResumableHasher::new(alg);
                h.update(&data[..split]);
                let mut h = ResumableHasher::from_bytes(&h.to_bytes()).unwrap();
                for piece in data[split..].chunks(77) {
                    h.update(piece);
                }
                assert_eq!(h.finish(), expected, "{alg:?} split {split}");
            }
            assert_eq!(ResumableHasher::new(alg).finish(), Digest::of(alg, b""));
        }
    }

    #[test]
    fn corrupt_state_is_rejected() {
        assert!(ResumableHasher::from_bytes(&[]).is_none());
        assert!(ResumableHasher::from_bytes(&[9; 50]).is_none());
        let mut h = ResumableHasher::new(Algorithm::Sha256);
        h.update(b"abc");
        let mut bytes = h.to_bytes();
        bytes.push(1);
        assert!(ResumableHasher::from_bytes(&bytes).is_none());
        bytes.truncate(10);
        assert!(ResumableHasher::from_bytes(&bytes).is_none());
    }
}
