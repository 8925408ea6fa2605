//! Who is calling: JSON Web Tokens (protocol.md §3, security.md H-I3) with the claims `sub`,
//! `exp` and an optional `role` (`moderator` or `service`), minted by `parlor token` (HS256) or
//! an identity provider (EdDSA, checked against a JWKS file's public keys), and checked on every
//! request but `/healthz`.
//!
//! A token is accepted only when `exp` is present and at most the policy's `max_ttl` ahead (so a
//! stolen token dies within a day by default), `nbf` (when present) has passed, and `iss` and
//! `aud` equal the configured issuer and audience when those are configured. HS256 tokens are
//! checked against the current secret and, during a rotation, the previous one; a gateway
//! configured with public keys only refuses HS256 outright, so it holds no signing secret.
//!
//! Times are always checked against the real clock, never the development clock: moving the dev
//! clock must not log everybody out (or in). A `service` token's `sub` must be
//! `service:<name>`; every other token's `sub` must be a valid user id (R-U2), so a user token can
//! never pose as a service.
//!
//! jsonwebtoken 11 needs a crypto provider. Its `rust_crypto` feature would compile RSA (with an
//! open advisory, RUSTSEC-2023-0071) and two elliptic curves that Parlor never uses, so this
//! module installs a provider of its own that knows HS256 (hmac + sha2) and verifies EdDSA
//! (ed25519-dalek, in [`crate::jwks`]), and refuses every other algorithm.

use std::fmt;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use hmac::{Hmac, Mac};
use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::signature::{Signer, Verifier};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::jwks::{Ed25519Verifier, PublicKey};

/// The file, inside the data directory, that holds the generated secret.
pub const SECRET_FILE_NAME: &str = "jwt-secret";

/// Random bytes in a generated secret (stored as twice as many hex characters).
pub const SECRET_RANDOM_BYTES: usize = 30;

/// The longest secret file read, in bytes (a secret is a line of text, not a file to slurp).
pub const SECRET_FILE_BYTES_MAX: u64 = 4 * 1024;

/// The longest token accepted, in bytes; longer `Authorization` headers are refused unread.
pub const TOKEN_BYTES_MAX: usize = 8 * 1024;

/// The prefix of a service's subject.
const SERVICE_PREFIX: &str = "service:";

/// How far ahead a token's `exp` may be by default (`--jwt-max-ttl`).
pub const JWT_MAX_TTL_DEFAULT: Duration = Duration::from_secs(24 * 3600);

/// What a token must satisfy besides its signature (security.md H-I3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPolicy {
    /// The furthest `exp` may be ahead of now (real clock).
    pub max_ttl: Duration,
    /// When set, `iss` must be present and equal to it.
    pub issuer: Option<String>,
    /// When set, `aud` must be present and name it.
    pub audience: Option<String>,
}

impl Default for TokenPolicy {
    /// `max_ttl` of [`JWT_MAX_TTL_DEFAULT`]; no issuer or audience checked.
    fn default() -> TokenPolicy {
        TokenPolicy {
            max_ttl: JWT_MAX_TTL_DEFAULT,
            issuer: None,
            audience: None,
        }
    }
}

/// The keys tokens may be signed with.
#[derive(Debug, Clone, Default)]
pub struct TokenKeys {
    /// HS256 secrets: the current one first, then the previous one during a rotation. Empty
    /// when the gateway verifies with public keys only.
    pub secrets: Vec<String>,
    /// Ed25519 public keys from a JWKS file ([`crate::jwks::read_jwks`]).
    pub public_keys: Vec<PublicKey>,
}

/// What a token may do beyond a plain user's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// May read the moderation queue (`GET /v1/moderation/reports`).
    Moderator,
    /// A backend service (`sub` = `service:<name>`): may send the service commands.
    Service,
}

impl Role {
    /// The claim's spelling (`moderator`, `service`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Moderator => "moderator",
            Role::Service => "service",
        }
    }

    /// Parses the claim's spelling.
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "moderator" => Some(Role::Moderator),
            "service" => Some(Role::Service),
            _ => None,
        }
    }
}

/// The authenticated caller of a request: a checked token's subject and role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's `sub`: a user id, or `service:<name>` for a service token.
    pub subject: String,
    /// The token's `role`, if any.
    pub role: Option<Role>,
}

impl Caller {
    /// Whether the token carries `"role": "moderator"`.
    pub fn is_moderator(&self) -> bool {
        self.role == Some(Role::Moderator)
    }

    /// Whether the token carries `"role": "service"` (its subject is then `service:<name>`).
    pub fn is_service(&self) -> bool {
        self.role == Some(Role::Service)
    }
}

/// Why a token, or the secret, could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer …` header.
    #[error("missing bearer token (send 'Authorization: Bearer <token>')")]
    MissingToken,
    /// The token is not a well-formed HS256 JWT with the expected claims.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The signature does not match the secret.
    #[error("bad token signature")]
    BadSignature,
    /// `exp` has passed (by the real clock).
    #[error("token expired")]
    Expired,
    /// `nbf` is still ahead (by the real clock).
    #[error("token not valid yet (nbf is in the future)")]
    NotYetValid,
    /// `exp` is further ahead than the policy's `max_ttl`.
    #[error("token lives too long: exp is more than {max_ttl_seconds} s ahead")]
    TooLongLived {
        /// The policy's limit.
        max_ttl_seconds: u64,
    },
    /// `iss` is missing or not the configured issuer.
    #[error("token issuer (iss) is not accepted")]
    WrongIssuer,
    /// `aud` is missing or does not name the configured audience.
    #[error("token audience (aud) is not accepted")]
    WrongAudience,
    /// The token's algorithm is not one this gateway is configured to accept.
    #[error("{0}")]
    AlgorithmNotAccepted(String),
    /// No configured key verifies tokens of this algorithm and key id.
    #[error("no verification key for this token{0}")]
    UnknownKey(String),
    /// Neither a secret nor public keys were given.
    #[error("no token verification key: give an HS256 secret or a JWKS file")]
    NoKeys,
    /// The claims are well-formed but not acceptable (a bad subject for the role, say).
    #[error("invalid token claims: {0}")]
    InvalidClaims(String),
    /// The secret is empty.
    #[error("the JWT secret is empty")]
    EmptySecret,
    /// A token could not be signed.
    #[error("cannot sign a token: {0}")]
    Signing(String),
    /// The secret file could not be read or created.
    #[error("JWT secret file {path}: {source}")]
    SecretFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
}

/// The claims of a Parlor token that Parlor reads itself; `nbf`, `iss` and `aud` (a string or a
/// list) are checked by jsonwebtoken's validation.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(default)]
    role: Option<String>,
}

/// The claims `parlor token` writes: [`Claims`] plus the policy's issuer and audience. (JSON
/// only, never bincode, so `skip_serializing_if` is safe here.)
#[derive(Debug, Serialize)]
struct NewClaims<'a> {
    sub: &'a str,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
}

/// Now by the real clock, in seconds since the epoch.
fn real_now_seconds() -> u64 {
    u64::try_from(clock::real_now_ms() / 1000).unwrap_or(0)
}

/// Checks that `subject` fits `role`: `service:<name>` for a service, a user id otherwise.
fn check_subject(subject: &str, role: Option<Role>) -> Result<(), AuthError> {
    match role {
        Some(Role::Service) => match domain::Actor::parse(subject) {
            Ok(domain::Actor::Service(_)) => Ok(()),
            _ => Err(AuthError::InvalidClaims(format!(
                "a service token's sub must be '{SERVICE_PREFIX}<name>'"
            ))),
        },
        Some(Role::Moderator) | None => domain::UserId::parse(subject)
            .map(|_| ())
            .map_err(|error| AuthError::InvalidClaims(format!("sub: {error}"))),
    }
}

/// Signs a token for `subject` with `role`, valid for `ttl` from now by the real clock, under
/// the default [`TokenPolicy`].
///
/// Refuses a subject that does not fit the role (see the module documentation).
pub fn mint_token(
    secret: &[u8],
    subject: &str,
    role: Option<Role>,
    ttl: Duration,
) -> Result<String, AuthError> {
    mint_token_for(secret, subject, role, ttl, &TokenPolicy::default())
}

/// Signs an HS256 token that passes `policy`: `ttl` at most its `max_ttl`, with its issuer and
/// audience as `iss` and `aud`.
pub fn mint_token_for(
    secret: &[u8],
    subject: &str,
    role: Option<Role>,
    ttl: Duration,
    policy: &TokenPolicy,
) -> Result<String, AuthError> {
    install_provider();
    if secret.is_empty() {
        return Err(AuthError::EmptySecret);
    }
    if ttl > policy.max_ttl {
        return Err(AuthError::TooLongLived {
            max_ttl_seconds: policy.max_ttl.as_secs(),
        });
    }
    check_subject(subject, role)?;
    let claims = NewClaims {
        sub: subject,
        exp: real_now_seconds().saturating_add(ttl.as_secs()),
        role: role.map(Role::as_str),
        iss: policy.issuer.as_deref(),
        aud: policy.audience.as_deref(),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .map_err(|error| AuthError::Signing(error.to_string()))
}

/// Checks tokens against the configured keys and policy.
#[derive(Clone)]
pub struct TokenVerifier {
    /// HS256 keys, current first.
    secrets: Vec<DecodingKey>,
    public_keys: Vec<PublicKey>,
    policy: TokenPolicy,
}

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The keys may be secrets: never print them.
        f.debug_struct("TokenVerifier")
            .field("secrets", &self.secrets.len())
            .field("public_keys", &self.public_keys)
            .field("policy", &self.policy)
            .finish()
    }
}

impl TokenVerifier {
    /// A verifier of HS256 tokens signed with `secret`, under the default policy.
    pub fn new(secret: &[u8]) -> Result<TokenVerifier, AuthError> {
        if secret.is_empty() {
            return Err(AuthError::EmptySecret);
        }
        let keys = TokenKeys {
            secrets: vec![String::from_utf8_lossy(secret).into_owned()],
            public_keys: Vec::new(),
        };
        TokenVerifier::with_keys(&keys, TokenPolicy::default())
    }

    /// A verifier of tokens signed with any of `keys`, under `policy`.
    pub fn with_keys(keys: &TokenKeys, policy: TokenPolicy) -> Result<TokenVerifier, AuthError> {
        install_provider();
        if keys.secrets.iter().any(String::is_empty) {
            return Err(AuthError::EmptySecret);
        }
        if keys.secrets.is_empty() && keys.public_keys.is_empty() {
            return Err(AuthError::NoKeys);
        }
        Ok(TokenVerifier {
            secrets: keys
                .secrets
                .iter()
                .map(|secret| DecodingKey::from_secret(secret.as_bytes()))
                .collect(),
            public_keys: keys.public_keys.clone(),
            policy,
        })
    }

    /// The validation of `algorithm` under the policy: times by the real clock, no leeway.
    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        // Tokens are minted on machines with synchronised clocks: no skew to forgive, and an
        // expired token is expired.
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        if let Some(issuer) = &self.policy.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match &self.policy.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            // Without a configured audience a token's `aud` names nothing Parlor checks.
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        validation
    }

    /// The keys that may have signed a token of `header`, or why none may.
    fn candidates(&self, header: &Header) -> Result<Vec<&DecodingKey>, AuthError> {
        match header.alg {
            Algorithm::HS256 if self.secrets.is_empty() => Err(AuthError::AlgorithmNotAccepted(
                "HS256 tokens are not accepted: this gateway verifies public-key (EdDSA) tokens only"
                    .into(),
            )),
            Algorithm::HS256 => Ok(self.secrets.iter().collect()),
            Algorithm::EdDSA if self.public_keys.is_empty() => Err(
                AuthError::AlgorithmNotAccepted("EdDSA tokens are not accepted: no JWKS is configured".into()),
            ),
            Algorithm::EdDSA => {
                let keys: Vec<&DecodingKey> = self
                    .public_keys
                    .iter()
                    .filter(|key| match &header.kid {
                        Some(kid) => key.key_id.as_deref() == Some(kid.as_str()),
                        None => true,
                    })
                    .map(|key| &key.key)
                    .collect();
                if keys.is_empty() {
                    let kid = header.kid.as_deref().unwrap_or_default();
                    return Err(AuthError::UnknownKey(format!(" (kid {kid:?})")));
                }
                Ok(keys)
            }
            _ => Err(AuthError::AlgorithmNotAccepted(
                "only HS256 and EdDSA tokens are accepted".into(),
            )),
        }
    }

    /// Checks a token's signature, times (by the real clock), issuer, audience and claims.
    pub fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        if token.len() > TOKEN_BYTES_MAX {
            return Err(AuthError::Malformed(format!(
                "longer than {TOKEN_BYTES_MAX} bytes"
            )));
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|error| AuthError::Malformed(error.to_string()))?;
        let validation = self.validation(header.alg);
        // The current secret first, then the previous one; or each public key the header
        // allows. Only a signature mismatch moves on to the next key; the signature is checked
        // before any claim, so a claim's refusal always comes from the key that signed.
        let mut decoded = None;
        for key in self.candidates(&header)? {
            match jsonwebtoken::decode::<Claims>(token, key, &validation) {
                Err(error) if *error.kind() == ErrorKind::InvalidSignature => continue,
                result => {
                    decoded = Some(result);
                    break;
                }
            }
        }
        let decoded = decoded.unwrap_or_else(|| Err(ErrorKind::InvalidSignature.into()));
        let data = decoded.map_err(|error| match error.kind() {
            ErrorKind::InvalidSignature => AuthError::BadSignature,
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
            ErrorKind::InvalidAudience => AuthError::WrongAudience,
            ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
                "iss" => AuthError::WrongIssuer,
                "aud" => AuthError::WrongAudience,
                _ => AuthError::InvalidClaims(format!("{claim} is required")),
            },
            ErrorKind::InvalidAlgorithm => {
                AuthError::AlgorithmNotAccepted("only HS256 and EdDSA tokens are accepted".into())
            }
            _ => AuthError::Malformed(error.to_string()),
        })?;
        let claims = data.claims;
        let max_ttl_seconds = self.policy.max_ttl.as_secs();
        if claims.exp > real_now_seconds().saturating_add(max_ttl_seconds) {
            return Err(AuthError::TooLongLived { max_ttl_seconds });
        }
        let role = match claims.role.as_deref() {
            None => None,
            Some(text) => Some(Role::parse(text).ok_or_else(|| {
                AuthError::InvalidClaims("role: must be 'moderator' or 'service'".into())
            })?),
        };
        check_subject(&claims.sub, role)?;
        Ok(Caller {
            subject: claims.sub,
            role,
        })
    }
}

/// Reads a secret file (`--jwt-secret-file`, `--jwt-previous-secret-file`): its text, trimmed.
pub fn read_secret_file(path: &Path) -> Result<String, AuthError> {
    read_secret(path).map_err(|source| AuthError::SecretFile {
        path: path.to_owned(),
        source,
    })
}

/// Reads the secret from `<data_dir>/jwt-secret`, creating it (random, mode 0600) on first use.
///
/// The secret is the file's text, trimmed: the same bytes as passing that text to
/// `--jwt-secret`. Creation is atomic (a complete temporary file hard-linked into place), so two
/// processes starting at once agree on one secret.
pub fn load_or_create_secret(data_dir: &Path) -> Result<String, AuthError> {
    let path = data_dir.join(SECRET_FILE_NAME);
    let file_error = |source| AuthError::SecretFile {
        path: path.clone(),
        source,
    };
    match read_secret(&path) {
        Ok(secret) => return Ok(secret),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(file_error(error)),
    }
    std::fs::create_dir_all(data_dir).map_err(file_error)?;
    let temporary = data_dir.join(format!(
        ".{SECRET_FILE_NAME}.{}",
        uuid::Uuid::new_v4().simple()
    ));
    let created = write_private(&temporary, &random_secret())
        .and_then(|()| std::fs::hard_link(&temporary, &path));
    // The temporary name goes in every case; the secret lives on under its real name.
    let _ = std::fs::remove_file(&temporary);
    match created {
        Ok(()) => tracing::info!(path = %path.display(), "created a new JWT secret"),
        // Another process created it first: use theirs.
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
        Err(error) => return Err(file_error(error)),
    }
    read_secret(&path).map_err(file_error)
}

/// Reads and trims a secret file; an empty one is an error.
fn read_secret(path: &Path) -> io::Result<String> {
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(SECRET_FILE_BYTES_MAX)
        .read_to_string(&mut text)?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the secret file is empty",
        ));
    }
    Ok(secret.to_owned())
}

/// Writes `text` to a new file readable by its owner only.
fn write_private(path: &Path, text: &str) -> io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

/// A new random secret as hex. Two v4 UUIDs come from the operating system's random source
/// (through `uuid`'s getrandom), which spares a dependency on a random number crate.
fn random_secret() -> String {
    let mut bytes = Vec::with_capacity(SECRET_RANDOM_BYTES + 2);
    while bytes.len() < SECRET_RANDOM_BYTES {
        bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    bytes.truncate(SECRET_RANDOM_BYTES);
    hex::encode(bytes)
}

type HmacSha256 = Hmac<sha2::Sha256>;

/// Signs with HMAC-SHA256.
struct Hs256Signer(HmacSha256);

impl Signer<Vec<u8>> for Hs256Signer {
    fn try_sign(&self, message: &[u8]) -> Result<Vec<u8>, jsonwebtoken::signature::Error> {
        let mut mac = self.0.clone();
        mac.update(message);
        Ok(mac.finalize().into_bytes().to_vec())
    }
}

impl JwtSigner for Hs256Signer {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

/// Verifies HMAC-SHA256 signatures in constant time (`verify_slice`).
struct Hs256Verifier(HmacSha256);

impl Verifier<Vec<u8>> for Hs256Verifier {
    fn verify(
        &self,
        message: &[u8],
        signature: &Vec<u8>,
    ) -> Result<(), jsonwebtoken::signature::Error> {
        let mut mac = self.0.clone();
        mac.update(message);
        mac.verify_slice(signature)
            .map_err(jsonwebtoken::signature::Error::from_source)
    }
}

impl JwtVerifier for Hs256Verifier {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

fn new_signer(
    algorithm: &Algorithm,
    key: &EncodingKey,
) -> jsonwebtoken::errors::Result<Box<dyn JwtSigner>> {
    if *algorithm != Algorithm::HS256 {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    let mac =
        HmacSha256::new_from_slice(key.as_bytes()).map_err(|_| ErrorKind::InvalidKeyFormat)?;
    Ok(Box::new(Hs256Signer(mac)))
}

fn new_verifier(
    algorithm: &Algorithm,
    key: &DecodingKey,
) -> jsonwebtoken::errors::Result<Box<dyn JwtVerifier>> {
    match algorithm {
        Algorithm::HS256 => {
            let mac = HmacSha256::new_from_slice(key.try_get_as_bytes()?)
                .map_err(|_| ErrorKind::InvalidKeyFormat)?;
            Ok(Box::new(Hs256Verifier(mac)))
        }
        Algorithm::EdDSA => Ok(Box::new(Ed25519Verifier::new(key)?)),
        _ => Err(ErrorKind::InvalidAlgorithm.into()),
    }
}

/// The provider: signs HS256, verifies HS256 and EdDSA. JWK thumbprints are never computed, so
/// the key utilities stay unimplemented (JWKS files are read by `crate::jwks` without them).
static HS256_PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: new_signer,
    verifier_factory: new_verifier,
    key_utils: KeyUtils::new_unimplemented(),
};

/// Installs [`HS256_PROVIDER`] (HS256 and EdDSA) as jsonwebtoken's process-wide provider before first use. A
/// second call, or a provider installed by someone else, leaves the installed one in place.
fn install_provider() {
    let _ = HS256_PROVIDER.install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_with_their_role() {
        let secret = b"test secret";
        let verifier = TokenVerifier::new(secret).ok();
        let check = |subject: &str, role| {
            let token = mint_token(secret, subject, role, Duration::from_secs(60)).ok()?;
            verifier.as_ref()?.verify(&token).ok()
        };
        assert_eq!(
            check("alice", None),
            Some(Caller {
                subject: "alice".into(),
                role: None
            })
        );
        assert_eq!(
            check("mod-1", Some(Role::Moderator)).map(|caller| caller.is_moderator()),
            Some(true)
        );
        assert_eq!(
            check("service:hiring", Some(Role::Service)).map(|caller| caller.is_service()),
            Some(true)
        );
    }

    #[test]
    fn subjects_must_fit_the_role() {
        let secret = b"s";
        let long = Duration::from_secs(60);
        assert!(mint_token(secret, "service:hiring", None, long).is_err());
        assert!(mint_token(secret, "alice", Some(Role::Service), long).is_err());
        assert!(mint_token(secret, "service:", Some(Role::Service), long).is_err());
        assert!(mint_token(secret, "a b", None, long).is_err());
        assert!(mint_token(b"", "alice", None, long).is_err());
    }

    #[test]
    fn other_algorithms_are_refused() {
        install_provider();
        // HS384 is a valid JWT algorithm, but not one this gateway accepts.
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS384),
            &NewClaims {
                sub: "alice",
                exp: u64::MAX / 2,
                role: None,
                iss: None,
                aud: None,
            },
            &EncodingKey::from_secret(b"s"),
        );
        assert!(token.is_err(), "the provider signs HS256 only");
    }

    #[test]
    fn the_secret_is_created_once_and_private() {
        let directory = tempfile::tempdir().ok();
        let Some(directory) = directory else {
            return;
        };
        let first = load_or_create_secret(directory.path()).ok();
        let second = load_or_create_secret(directory.path()).ok();
        assert!(first.is_some());
        assert_eq!(first, second);
        assert_eq!(
            first.map(|secret| secret.len()),
            Some(2 * SECRET_RANDOM_BYTES)
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(directory.path().join(SECRET_FILE_NAME))
                .map(|metadata| metadata.permissions().mode() & 0o777)
                .ok();
            assert_eq!(mode, Some(0o600));
        }
        let leftovers = std::fs::read_dir(directory.path())
            .map(|entries| entries.count())
            .ok();
        assert_eq!(leftovers, Some(1), "no temporary file is left");
    }
}
