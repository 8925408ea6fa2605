//! The gateway's HTTP API as a frontend calls it (B3, B5): HS256 tokens minted here from the
//! secret the harness gives the gateway (`--jwt-secret`), and a keep-alive HTTP/1 client.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How long a token minted here is valid: longer than any run.
const TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long the gateway may take to accept connections after its process started.
pub const GATEWAY_READY_WAIT: Duration = Duration::from_secs(120);
/// One HTTP request's time limit (reads wait at most 5 s for `min_position`).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A random secret for one run's gateway (hex of a v4 UUID's 122 random bits, twice).
pub fn random_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// A part serving the HTTP API (`parlor up`, `parlor gateway`), with where it listens and the
/// secret its tokens are signed with.
pub struct Serving {
    /// The process.
    pub parlor: crate::system::Parlor,
    /// Its HTTP address (a free loopback port).
    pub address: std::net::SocketAddr,
    /// Its `--jwt-secret`, for [`mint_token`].
    pub secret: String,
}

/// Spawns `parlor <subcommand>` with its HTTP API on a free loopback port, the operator address
/// on any free port and a fresh secret.
pub fn spawn_serving(
    binary: &std::path::Path,
    subcommand: &str,
    nats_url: &str,
    data_dir: &std::path::Path,
) -> anyhow::Result<Serving> {
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], testkit::try_free_port()?));
    let secret = random_secret();
    let parlor = crate::system::Parlor::spawn_service(
        binary,
        &[subcommand],
        nats_url,
        data_dir,
        &[
            "--http-addr",
            &address.to_string(),
            "--ops-addr",
            "127.0.0.1:0",
            "--jwt-secret",
            &secret,
        ],
    )?;
    Ok(Serving {
        parlor,
        address,
        secret,
    })
}

/// An HS256 JWT with the claims `sub` and `exp` (protocol.md §3), as `parlor token` makes.
pub fn mint_token(secret: &str, subject: &str) -> anyhow::Result<String> {
    let base64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the clock is before 1970")?
        .saturating_add(TOKEN_TTL)
        .as_secs();
    let header = base64.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = base64.encode(serde_json::json!({"sub": subject, "exp": expires}).to_string());
    let signed = format!("{header}.{claims}");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .map_err(|error| anyhow::anyhow!("HS256 key: {error}"))?;
    mac.update(signed.as_bytes());
    let signature = base64.encode(mac.finalize().into_bytes());
    Ok(format!("{signed}.{signature}"))
}

/// How long [`Gateway::get_retrying_rate_limited`] keeps asking while told to wait.
const RATE_LIMITED_RETRY_MAX: Duration = Duration::from_secs(30);
/// The pause before asking again after a 429.
const RATE_LIMITED_PAUSE: Duration = Duration::from_millis(10);

/// A request the gateway answered with a status other than success.
#[derive(Debug)]
pub struct Refused {
    /// The path asked.
    pub path: String,
    /// The status.
    pub status: reqwest::StatusCode,
    /// The body, as text.
    pub body: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GET {}: {}: {}", self.path, self.status, self.body)
    }
}

impl std::error::Error for Refused {}

/// A client of one gateway.
#[derive(Debug, Clone)]
pub struct Gateway {
    client: reqwest::Client,
    base: String,
}

impl Gateway {
    /// A client of the gateway at `http://<address>`.
    pub fn new(address: std::net::SocketAddr) -> anyhow::Result<Gateway> {
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .pool_max_idle_per_host(1_024)
            .build()
            .context("building the HTTP client")?;
        Ok(Gateway {
            client,
            base: format!("http://{address}"),
        })
    }

    /// `GET <path>` with `query` as `token`'s user; the JSON body of a 200, else an error
    /// with the status and body.
    pub async fn get(
        &self,
        path: &str,
        query: &[(&str, &str)],
        token: &str,
    ) -> anyhow::Result<serde_json::Value> {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .query(query)
            .bearer_auth(token)
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .with_context(|| format!("GET {path}: reading the body"))?;
        if !status.is_success() {
            return Err(Refused {
                path: path.to_owned(),
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
            }
            .into());
        }
        serde_json::from_slice(&body).with_context(|| format!("GET {path}: the body is not JSON"))
    }

    /// [`Gateway::get`], asked again while the gateway answers 429 (the caller's reads waiting
    /// for `min_position` are at their bound, H-L1: "retry when one is answered"), for at most
    /// [`RATE_LIMITED_RETRY_MAX`]. Returns the answer and how many 429s came before it.
    pub async fn get_retrying_rate_limited(
        &self,
        path: &str,
        query: &[(&str, &str)],
        token: &str,
    ) -> (anyhow::Result<serde_json::Value>, u64) {
        let deadline = Instant::now() + RATE_LIMITED_RETRY_MAX;
        let mut retries = 0;
        loop {
            let answer = self.get(path, query, token).await;
            let rate_limited = answer.as_ref().err().is_some_and(|error| {
                error
                    .downcast_ref::<Refused>()
                    .is_some_and(|refused| refused.status == reqwest::StatusCode::TOO_MANY_REQUESTS)
            });
            if !rate_limited || Instant::now() >= deadline {
                return (answer, retries);
            }
            retries += 1;
            tokio::time::sleep(RATE_LIMITED_PAUSE).await;
        }
    }

    /// Waits until `GET /healthz` answers at all (any status: it reports the read models,
    /// some of which a run may not start), at most `wait`.
    pub async fn wait_listening(&self, wait: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + wait;
        loop {
            let probe = self
                .client
                .get(format!("{}/healthz", self.base))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if probe.is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "the gateway at {} did not answer within {wait:?}",
                    self.base
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_three_parts_and_the_claims() {
        let token = mint_token("secret", "bench-user-1").expect("a token");
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .expect("base64url claims");
        let claims: serde_json::Value = serde_json::from_slice(&claims).expect("JSON claims");
        assert_eq!(claims["sub"], "bench-user-1");
        assert!(claims["exp"].as_u64().is_some());
    }
}
