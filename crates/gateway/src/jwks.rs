//! Public verification keys from a JWKS file (`--jwt-jwks FILE`, security.md H-I3) and the
//! Ed25519 signature check behind jsonwebtoken's `EdDSA`; the only user of `ed25519-dalek`.
//!
//! With public keys a gateway holds no signing secret: tokens are minted by an identity
//! provider that keeps the private key. Only Ed25519 keys (`"kty": "OKP", "crv": "Ed25519"`)
//! are taken. RS256 is not offered: jsonwebtoken's RustCrypto backend verifies it with the `rsa`
//! crate, whose advisory RUSTSEC-2023-0071 has no fixed release, and its other backend
//! (aws-lc-rs) builds a C library with cmake for one algorithm (docs/security.md, Decisions).
//! A JWKS file with an RSA or EC key is refused at start-up rather than half used.

use std::io::Read;
use std::path::{Path, PathBuf};

use jsonwebtoken::crypto::JwtVerifier;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::signature::Verifier;
use jsonwebtoken::{Algorithm, DecodingKey};

/// The largest JWKS file read, in bytes: a handful of keys, not a file to slurp.
pub const JWKS_FILE_BYTES_MAX: u64 = 64 * 1024;

/// The most keys a JWKS file may hold: a token without `kid` is tried against each.
pub const JWKS_KEYS_MAX: usize = 16;

/// Bytes of an Ed25519 public key.
const ED25519_PUBLIC_KEY_BYTES: usize = 32;

/// Why a JWKS file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// The file could not be read.
    #[error("JWKS file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The file is not a JWKS, or holds a key this gateway cannot use.
    #[error("JWKS file {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key.
        message: String,
    },
}

/// One Ed25519 public key, with its `kid` when the file gave one.
#[derive(Clone)]
pub struct PublicKey {
    /// The key id a token's header names (`kid`).
    pub key_id: Option<String>,
    /// The key, in jsonwebtoken's form.
    pub(crate) key: DecodingKey,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// Reads the Ed25519 keys of the JWKS file at `path`.
pub fn read_jwks(path: &Path) -> Result<Vec<PublicKey>, JwksError> {
    let read_error = |source| JwksError::Read {
        path: path.to_owned(),
        source,
    };
    let mut text = String::new();
    std::fs::File::open(path)
        .map_err(read_error)?
        .take(JWKS_FILE_BYTES_MAX + 1)
        .read_to_string(&mut text)
        .map_err(read_error)?;
    if text.len() as u64 > JWKS_FILE_BYTES_MAX {
        return Err(JwksError::Invalid {
            path: path.to_owned(),
            message: format!("larger than {JWKS_FILE_BYTES_MAX} bytes"),
        });
    }
    parse_jwks(&text).map_err(|message| JwksError::Invalid {
        path: path.to_owned(),
        message,
    })
}

/// Parses a JWKS document (`{"keys": [...]}`) into its Ed25519 keys; any other key is an error.
pub fn parse_jwks(text: &str) -> Result<Vec<PublicKey>, String> {
    let set: JwkSet = serde_json::from_str(text).map_err(|error| format!("not a JWKS: {error}"))?;
    if set.keys.is_empty() {
        return Err("it holds no keys".into());
    }
    if set.keys.len() > JWKS_KEYS_MAX {
        return Err(format!("more than {JWKS_KEYS_MAX} keys"));
    }
    set.keys
        .iter()
        .enumerate()
        .map(|(index, jwk)| {
            let name = match &jwk.common.key_id {
                Some(kid) => format!("key {kid:?}"),
                None => format!("key {}", index + 1),
            };
            let AlgorithmParameters::OctetKeyPair(parameters) = &jwk.algorithm else {
                return Err(format!(
                    "{name}: only Ed25519 keys (kty OKP) are accepted; RS256 and EC are not offered"
                ));
            };
            if parameters.curve != EllipticCurve::Ed25519 {
                return Err(format!("{name}: the curve must be Ed25519"));
            }
            if let Some(algorithm) = jwk.common.key_algorithm {
                if algorithm != KeyAlgorithm::EdDSA {
                    return Err(format!("{name}: alg must be EdDSA"));
                }
            }
            let key = DecodingKey::from_ed_components(&parameters.x)
                .map_err(|error| format!("{name}: x: {error}"))?;
            // Checked now, so a bad key stops the gateway at start-up, not on a request.
            Ed25519Verifier::new(&key).map_err(|_| format!("{name}: x is not an Ed25519 key"))?;
            Ok(PublicKey {
                key_id: jwk.common.key_id.clone(),
                key,
            })
        })
        .collect()
}

/// Verifies Ed25519 signatures strictly (`verify_strict`: no small-order keys, no malleable
/// signatures).
pub(crate) struct Ed25519Verifier(ed25519_dalek::VerifyingKey);

impl Ed25519Verifier {
    /// A verifier for a raw 32-byte public key, as jsonwebtoken keeps a JWK's `x`.
    pub(crate) fn new(key: &DecodingKey) -> jsonwebtoken::errors::Result<Ed25519Verifier> {
        let bytes: &[u8; ED25519_PUBLIC_KEY_BYTES] = key
            .try_get_as_bytes()?
            .try_into()
            .map_err(|_| ErrorKind::InvalidEddsaKey)?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(bytes)
            .map_err(|_| ErrorKind::InvalidEddsaKey)?;
        Ok(Ed25519Verifier(key))
    }
}

impl Verifier<Vec<u8>> for Ed25519Verifier {
    fn verify(
        &self,
        message: &[u8],
        signature: &Vec<u8>,
    ) -> Result<(), jsonwebtoken::signature::Error> {
        let signature = ed25519_dalek::Signature::from_slice(signature)
            .map_err(jsonwebtoken::signature::Error::from_source)?;
        self.0
            .verify_strict(message, &signature)
            .map_err(jsonwebtoken::signature::Error::from_source)
    }
}

impl JwtVerifier for Ed25519Verifier {
    fn algorithm(&self) -> Algorithm {
        Algorithm::EdDSA
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ed25519_keys_are_taken() {
        let ed = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;
        let keys = parse_jwks(ed).expect("an Ed25519 JWKS");
        assert_eq!(keys[0].key_id.as_deref(), Some("k1"));
        let rsa = r#"{"keys":[{"kty":"RSA","kid":"r","n":"AQAB","e":"AQAB"}]}"#;
        let refused = parse_jwks(rsa).expect_err("RSA is not offered");
        assert!(refused.contains("RS256"), "{refused}");
        assert!(parse_jwks(r#"{"keys":[]}"#).is_err());
        assert!(parse_jwks("not json").is_err());
        let short = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA"}]}"#;
        assert!(parse_jwks(short).is_err());
    }
}
