//! The keys that sign and verify the registry's JWTs: Ed25519 (`EdDSA`), each named by a `kid`
//! derived from its public key, so verifiers can hold several keys while one is rotated out.

use std::collections::HashMap;

use base64::Engine;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::Digest as _;

/// The signing key and every key tokens may be verified with.
pub struct Keys {
    kid: String,
    encoding: EncodingKey,
    verifying: HashMap<String, DecodingKey>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("Keys")
            .field("kid", &self.kid)
            .field("verifying", &self.verifying.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("malformed token")]
    Malformed,
    #[error("token algorithm is not EdDSA")]
    Algorithm,
    #[error("token signed by an unknown key")]
    UnknownKey,
    #[error("token signature or claims are invalid")]
    Invalid,
    /// Ours in every other respect, and past its `exp` (Unix seconds).
    #[error("token expired")]
    Expired(i64),
}

/// A fresh Ed25519 private key as PKCS#8 PEM.
pub fn generate_pem() -> String {
    let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    key.to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .expect("an Ed25519 key always encodes")
        .to_string()
}

/// The `kid` of a public key: the first 16 hex digits of its SHA-256.
fn kid_of(public: &VerifyingKey) -> String {
    hex::encode(&sha2::Sha256::digest(public.as_bytes())[..8])
}

fn decoding_key(public: &VerifyingKey) -> DecodingKey {
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(public.as_bytes());
    DecodingKey::from_ed_components(&x).expect("a 32-byte Ed25519 key is a valid component")
}

/// Reads a public key from PEM: a `PUBLIC KEY`, or a private key (an old signing key kept for
/// verification while its tokens run out).
fn public_from_pem(pem: &str) -> anyhow::Result<VerifyingKey> {
    if let Ok(private) = SigningKey::from_pkcs8_pem(pem) {
        return Ok(private.verifying_key());
    }
    VerifyingKey::from_public_key_pem(pem)
        .map_err(|e| anyhow::anyhow!("not an Ed25519 public or private key in PEM: {e}"))
}

impl Keys {
    /// Signs with `signing_pem` (Ed25519 PKCS#8) and also accepts tokens of `extra_pems`.
    pub fn new(signing_pem: &str, extra_pems: &[String]) -> anyhow::Result<Self> {
        let signing = SigningKey::from_pkcs8_pem(signing_pem)
            .map_err(|e| anyhow::anyhow!("the signing key is not an Ed25519 PKCS#8 PEM: {e}"))?;
        let der = signing
            .to_pkcs8_der()
            .map_err(|e| anyhow::anyhow!("encoding the signing key: {e}"))?;
        let public = signing.verifying_key();
        let kid = kid_of(&public);
        let mut verifying = HashMap::from([(kid.clone(), decoding_key(&public))]);
        for pem in extra_pems {
            let key = public_from_pem(pem)?;
            verifying.insert(kid_of(&key), decoding_key(&key));
        }
        Ok(Keys {
            kid,
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
            verifying,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn sign<T: Serialize>(&self, claims: &T) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("claims always serialize")
    }

    /// Checks the header (EdDSA only, a known `kid`) and the signature, and returns the claims.
    /// Time claims are the caller's to check against the registry clock.
    pub fn verify<T: DeserializeOwned>(&self, token: &str) -> Result<T, Rejected> {
        // `decode_header` rejects `alg: none` and every algorithm name it does not know.
        let header = jsonwebtoken::decode_header(token).map_err(|_| Rejected::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(Rejected::Algorithm);
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.verifying.get(kid))
            .ok_or(Rejected::UnknownKey)?;
        let mut validation = jsonwebtoken::Validation::new(Algorithm::EdDSA);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        jsonwebtoken::decode::<T>(token, key, &validation)
            .map(|data| data.claims)
            .map_err(|_| Rejected::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, serde::Deserialize, PartialEq, Debug)]
    struct C {
        sub: String,
    }

    #[test]
    fn sign_verify_and_rotate() {
        let old = generate_pem();
        let new = generate_pem();
        let old_keys = Keys::new(&old, &[]).unwrap();
        let rotated = Keys::new(&new, std::slice::from_ref(&old)).unwrap();
        let claims = C { sub: "x".into() };
        let token = old_keys.sign(&claims);
        assert_eq!(rotated.verify::<C>(&token).unwrap(), claims);
        let fresh = rotated.sign(&claims);
        assert_eq!(old_keys.verify::<C>(&fresh), Err(Rejected::UnknownKey));
        assert_ne!(old_keys.kid(), rotated.kid());
    }

    #[test]
    fn rejects_tampering_and_none() {
        let keys = Keys::new(&generate_pem(), &[]).unwrap();
        let token = keys.sign(&C { sub: "x".into() });
        let parts: Vec<&str> = token.split('.').collect();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            b64.encode(br#"{"sub":"admin"}"#),
            parts[2]
        );
        assert_eq!(keys.verify::<C>(&forged), Err(Rejected::Invalid));
        let none = format!(
            "{}.{}.",
            b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
            parts[1]
        );
        assert!(keys.verify::<C>(&none).is_err());
        assert_eq!(keys.verify::<C>("garbage"), Err(Rejected::Malformed));
    }
}
