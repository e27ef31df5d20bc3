//! Content digests (`sha256:<hex>`, `sha512:<hex>`) and a SHA-256/512 hasher whose state can be
//! saved between requests.
//!
//! A chunked upload arrives as several `PATCH` requests, possibly on different replicas. Rather than
//! re-reading everything at the closing `PUT` to verify the digest, each request resumes the hash
//! from the state saved with the upload session and saves it again when the chunk is durable. The
//! `sha2` crate does not expose its state, but it does expose the (SHA-NI accelerated) block
//! compression functions, so the resumable part here is only the block buffering around them.

use std::fmt;
use std::str::FromStr;

use sha2::digest::generic_array::GenericArray;
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
/// It hashes both SHA-256 and, only when the client asks for it, SHA-512: the closing `PUT` names
/// the digest, but earlier `PATCH`es do not, so the algorithm is chosen when the session opens
/// (SHA-256 unless the client announced otherwise) and a mismatch is reported as `DIGEST_INVALID`.
#[derive(Clone)]
pub struct ResumableHasher {
    algorithm: Algorithm,
    state256: [u32; 8],
    state512: [u64; 8],
    /// Bytes that do not yet fill a whole block.
    pending: Vec<u8>,
    /// Total bytes hashed.
    length: u64,
}

const SHA256_INIT: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];
const SHA512_INIT: [u64; 8] = [
    0x6a09e667f3bcc908,
    0xbb67ae8584caa73b,
    0x3c6ef372fe94f82b,
    0xa54ff53a5f1d36f1,
    0x510e527fade682d1,
    0x9b05688c2b3e6c1f,
    0x1f83d9abfb41bd6b,
    0x5be0cd19137e2179,
];

impl ResumableHasher {
    pub fn new(algorithm: Algorithm) -> Self {
        ResumableHasher {
            algorithm,
            state256: SHA256_INIT,
            state512: SHA512_INIT,
            pending: Vec::new(),
            length: 0,
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.length
    }

    pub fn is_empty(&self) -> bool {
        self.length == 0
    }

    fn block_len(&self) -> usize {
        match self.algorithm {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    fn compress(&mut self, blocks: &[u8]) {
        match self.algorithm {
            Algorithm::Sha256 => {
                let blocks: Vec<_> = blocks
                    .chunks_exact(64)
                    .map(GenericArray::clone_from_slice)
                    .collect();
                sha2::compress256(&mut self.state256, &blocks);
            }
            Algorithm::Sha512 => {
                let blocks: Vec<_> = blocks
                    .chunks_exact(128)
                    .map(GenericArray::clone_from_slice)
                    .collect();
                sha2::compress512(&mut self.state512, &blocks);
            }
        }
    }

    pub fn update(&mut self, mut data: &[u8]) {
        let block = self.block_len();
        self.length += data.len() as u64;
        if !self.pending.is_empty() {
            let take = (block - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() < block {
                return;
            }
            let pending = std::mem::take(&mut self.pending);
            self.compress(&pending);
        }
        let whole = data.len() - data.len() % block;
        // Compress in bounded batches so the temporary block list stays small.
        for batch in data[..whole].chunks(block * 1024) {
            self.compress(batch);
        }
        self.pending.extend_from_slice(&data[whole..]);
    }

    /// The digest of everything hashed so far (the hasher itself is unchanged).
    pub fn finish(&self) -> Digest {
        let mut tail = self.clone();
        let block = tail.block_len();
        let bit_len = u128::from(tail.length) * 8;
        let mut pad = vec![0x80u8];
        let len_bytes = if block == 64 { 8 } else { 16 };
        while !(tail.pending.len() + pad.len() + len_bytes).is_multiple_of(block) {
            pad.push(0);
        }
        if block == 64 {
            pad.extend_from_slice(&(bit_len as u64).to_be_bytes());
        } else {
            pad.extend_from_slice(&bit_len.to_be_bytes());
        }
        let mut last = std::mem::take(&mut tail.pending);
        last.extend_from_slice(&pad);
        tail.compress(&last);
        let hex = match tail.algorithm {
            Algorithm::Sha256 => tail
                .state256
                .iter()
                .map(|w| format!("{w:08x}"))
                .collect::<String>(),
            Algorithm::Sha512 => tail
                .state512
                .iter()
                .map(|w| format!("{w:016x}"))
                .collect::<String>(),
        };
        Digest(format!("{}:{hex}", tail.algorithm.as_str()))
    }

    /// Serialize: algorithm byte, length, state words, pending bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![match self.algorithm {
            Algorithm::Sha256 => 1u8,
            Algorithm::Sha512 => 2u8,
        }];
        out.extend_from_slice(&self.length.to_be_bytes());
        match self.algorithm {
            Algorithm::Sha256 => self
                .state256
                .iter()
                .for_each(|w| out.extend_from_slice(&w.to_be_bytes())),
            Algorithm::Sha512 => self
                .state512
                .iter()
                .for_each(|w| out.extend_from_slice(&w.to_be_bytes())),
        }
        out.extend_from_slice(&self.pending);
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let (&tag, rest) = bytes.split_first()?;
        let algorithm = match tag {
            1 => Algorithm::Sha256,
            2 => Algorithm::Sha512,
            _ => return None,
        };
        let mut h = ResumableHasher::new(algorithm);
        h.length = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
        let rest = &rest[8..];
        let words = match algorithm {
            Algorithm::Sha256 => {
                for (i, w) in rest.get(..32)?.chunks_exact(4).enumerate() {
                    h.state256[i] = u32::from_be_bytes(w.try_into().ok()?);
                }
                32
            }
            Algorithm::Sha512 => {
                for (i, w) in rest.get(..64)?.chunks_exact(8).enumerate() {
                    h.state512[i] = u64::from_be_bytes(w.try_into().ok()?);
                }
                64
            }
        };
        h.pending = rest[words..].to_vec();
        (h.pending.len() < h.block_len()
            && h.pending.len() as u64 == h.length % h.block_len() as u64)
            .then_some(h)
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
                assert_eq!(h.len(), data.len() as u64);
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
    }
}
