//! What a token must be (security.md H-I3): `exp` present and at most the maximum lifetime
//! ahead, `nbf` passed, `iss` and `aud` as configured, signed with the current or the previous
//! HS256 secret or an Ed25519 key of a JWKS file — and nothing else.

use base64::Engine as _;
use ed25519_dalek::Signer as _;
use gateway::auth::TokenPolicy;
use gateway::GatewayConfig;
use serde_json::{json, Value};

use crate::support::{now_seconds, raw_token, responder, TestGateway, SECRET};

/// A gateway whose rooms projector answers, so that a 200 means the token passed.
async fn gateway_with(configure: impl FnOnce(&mut GatewayConfig)) -> TestGateway {
    let gateway = TestGateway::start_with(bus::Bus::in_process(), configure).await;
    responder(&gateway.bus, "parlor.query.rooms", |_, _| {
        Some(json!({"ok": true, "position": 1, "data": {"rooms": [], "next_cursor": null}}))
    })
    .await;
    gateway
}

/// The status of `GET /v1/rooms` with `token`, and the error message when refused.
async fn status_of(gateway: &TestGateway, token: &str) -> (u16, String) {
    let response = gateway.get("/v1/rooms", token).await;
    let message = if response.status == 200 {
        String::new()
    } else {
        response.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    (response.status, message)
}

fn in_an_hour() -> i64 {
    now_seconds() + 3600
}

#[tokio::test]
async fn h_i3_an_expired_token_or_one_without_exp_is_refused() {
    let gateway = gateway_with(|_| {}).await;
    let expired = raw_token(SECRET, &json!({"sub": "alice", "exp": now_seconds() - 10}));
    assert_eq!(
        status_of(&gateway, &expired).await,
        (401, "token expired".into())
    );
    let no_exp = raw_token(SECRET, &json!({"sub": "alice"}));
    assert_eq!(status_of(&gateway, &no_exp).await.0, 401);
    let fine = raw_token(SECRET, &json!({"sub": "alice", "exp": in_an_hour()}));
    assert_eq!(status_of(&gateway, &fine).await.0, 200);
    gateway.stop().await;
}

#[tokio::test]
async fn h_i3_a_token_living_longer_than_the_max_ttl_is_refused() {
    let gateway = gateway_with(|config| {
        config.jwt_policy.max_ttl = std::time::Duration::from_secs(2 * 3600);
    })
    .await;
    let too_long = raw_token(
        SECRET,
        &json!({"sub": "alice", "exp": now_seconds() + 3 * 3600}),
    );
    let (status, message) = status_of(&gateway, &too_long).await;
    assert_eq!(status, 401);
    assert!(message.contains("too long"), "{message}");
    let within = raw_token(
        SECRET,
        &json!({"sub": "alice", "exp": now_seconds() + 3600}),
    );
    assert_eq!(status_of(&gateway, &within).await.0, 200);
    // The default is a day: a year-long token is refused without any configuration.
    let default = gateway_with(|_| {}).await;
    let year = raw_token(
        SECRET,
        &json!({"sub": "alice", "exp": now_seconds() + 365 * 86_400}),
    );
    assert_eq!(status_of(&default, &year).await.0, 401);
    gateway.stop().await;
    default.stop().await;
}

#[tokio::test]
async fn h_i3_nbf_in_the_future_is_refused() {
    let gateway = gateway_with(|_| {}).await;
    let early = raw_token(
        SECRET,
        &json!({"sub": "alice", "exp": in_an_hour(), "nbf": now_seconds() + 600}),
    );
    let (status, message) = status_of(&gateway, &early).await;
    assert_eq!(status, 401);
    assert!(message.contains("nbf"), "{message}");
    let started = raw_token(
        SECRET,
        &json!({"sub": "alice", "exp": in_an_hour(), "nbf": now_seconds() - 10}),
    );
    assert_eq!(status_of(&gateway, &started).await.0, 200);
    gateway.stop().await;
}

#[tokio::test]
async fn h_i3_a_wrong_or_missing_issuer_or_audience_is_refused_when_configured() {
    let gateway = gateway_with(|config| {
        config.jwt_policy = TokenPolicy {
            issuer: Some("https://id.example".into()),
            audience: Some("parlor".into()),
            ..TokenPolicy::default()
        };
    })
    .await;
    let claims = |extra: Value| {
        let mut claims = json!({"sub": "alice", "exp": in_an_hour()});
        for (key, value) in extra.as_object().unwrap() {
            claims[key] = value.clone();
        }
        raw_token(SECRET, &claims)
    };
    for (what, token, expected) in [
        ("no iss", claims(json!({"aud": "parlor"})), "issuer"),
        (
            "wrong iss",
            claims(json!({"iss": "https://evil.example", "aud": "parlor"})),
            "issuer",
        ),
        (
            "no aud",
            claims(json!({"iss": "https://id.example"})),
            "audience",
        ),
        (
            "wrong aud",
            claims(json!({"iss": "https://id.example", "aud": "other"})),
            "audience",
        ),
    ] {
        let (status, message) = status_of(&gateway, &token).await;
        assert_eq!(status, 401, "{what}");
        assert!(message.contains(expected), "{what}: {message}");
    }
    let right = claims(json!({"iss": "https://id.example", "aud": "parlor"}));
    assert_eq!(status_of(&gateway, &right).await.0, 200);
    let among = claims(json!({"iss": "https://id.example", "aud": ["web", "parlor"]}));
    assert_eq!(
        status_of(&gateway, &among).await.0,
        200,
        "aud as a list naming parlor"
    );
    // A token minted for this policy passes it.
    let policy = TokenPolicy {
        issuer: Some("https://id.example".into()),
        audience: Some("parlor".into()),
        ..TokenPolicy::default()
    };
    let minted = gateway::auth::mint_token_for(
        SECRET.as_bytes(),
        "alice",
        None,
        std::time::Duration::from_secs(600),
        &policy,
    )
    .unwrap();
    assert_eq!(status_of(&gateway, &minted).await.0, 200);
    gateway.stop().await;
}

#[tokio::test]
async fn h_i3_the_previous_secret_is_accepted_during_a_rotation() {
    let old_secret = "the secret being rotated out";
    let rotating = gateway_with(|config| {
        config.jwt_previous_secret = Some(old_secret.into());
    })
    .await;
    let claims = json!({"sub": "alice", "exp": in_an_hour()});
    let old = raw_token(old_secret, &claims);
    let new = raw_token(SECRET, &claims);
    let stranger = raw_token("nobody's secret", &claims);
    assert_eq!(
        status_of(&rotating, &old).await.0,
        200,
        "the previous secret"
    );
    assert_eq!(
        status_of(&rotating, &new).await.0,
        200,
        "the current secret"
    );
    assert_eq!(status_of(&rotating, &stranger).await.0, 401);
    // Once the rotation is over (no previous secret), the old tokens stop working.
    let rotated = gateway_with(|_| {}).await;
    assert_eq!(status_of(&rotated, &old).await.0, 401);
    rotating.stop().await;
    rotated.stop().await;
}

/// An EdDSA token over `claims`, signed with `key`, naming `kid` when given.
fn eddsa_token(key: &ed25519_dalek::SigningKey, kid: Option<&str>, claims: &Value) -> String {
    let base64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut header = json!({"alg": "EdDSA", "typ": "JWT"});
    if let Some(kid) = kid {
        header["kid"] = json!(kid);
    }
    let signed = format!(
        "{}.{}",
        base64.encode(header.to_string()),
        base64.encode(claims.to_string())
    );
    let signature = key.sign(signed.as_bytes());
    format!("{signed}.{}", base64.encode(signature.to_bytes()))
}

/// A JWKS file holding the public halves of `keys` (kid, key), in `directory`.
fn jwks_file(
    directory: &std::path::Path,
    keys: &[(&str, &ed25519_dalek::SigningKey)],
) -> std::path::PathBuf {
    let base64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let keys: Vec<Value> = keys
        .iter()
        .map(|(kid, key)| {
            json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": kid,
                   "x": base64.encode(key.verifying_key().as_bytes())})
        })
        .collect();
    let path = directory.join("jwks.json");
    std::fs::write(&path, json!({ "keys": keys }).to_string()).unwrap();
    path
}

/// A gateway that checks tokens with the public keys of `path` only: it holds no secret.
async fn public_key_gateway(path: &std::path::Path) -> TestGateway {
    let public_keys = gateway::jwks::read_jwks(path).expect("a valid JWKS file");
    gateway_with(move |config| {
        config.jwt_secret = String::new();
        config.jwt_public_keys = public_keys;
    })
    .await
}

#[tokio::test]
async fn h_i3_an_eddsa_token_from_a_jwks_file_is_accepted() {
    let directory = tempfile::tempdir().unwrap();
    let identity = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let next = ed25519_dalek::SigningKey::from_bytes(&[8; 32]);
    let path = jwks_file(
        directory.path(),
        &[("2026-12", &identity), ("2027-01", &next)],
    );
    let gateway = public_key_gateway(&path).await;
    let claims = json!({"sub": "alice", "exp": in_an_hour()});
    assert_eq!(
        status_of(&gateway, &eddsa_token(&identity, Some("2026-12"), &claims))
            .await
            .0,
        200
    );
    assert_eq!(
        status_of(&gateway, &eddsa_token(&next, None, &claims))
            .await
            .0,
        200,
        "without kid, every key of the file is tried"
    );
    // A key named by kid must be the one that signed; unknown kids and keys are refused.
    let forger = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    for (what, token) in [
        (
            "wrong key for the kid",
            eddsa_token(&next, Some("2026-12"), &claims),
        ),
        (
            "unknown kid",
            eddsa_token(&identity, Some("2020-01"), &claims),
        ),
        ("a key not in the file", eddsa_token(&forger, None, &claims)),
    ] {
        assert_eq!(status_of(&gateway, &token).await.0, 401, "{what}");
    }
    // The same time checks hold for public-key tokens.
    let expired = json!({"sub": "alice", "exp": now_seconds() - 10});
    assert_eq!(
        status_of(&gateway, &eddsa_token(&identity, Some("2026-12"), &expired))
            .await
            .0,
        401
    );
    gateway.stop().await;
}

#[tokio::test]
async fn h_i3_an_hs256_token_is_refused_when_only_jwks_is_configured() {
    let directory = tempfile::tempdir().unwrap();
    let identity = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let path = jwks_file(directory.path(), &[("2026-12", &identity)]);
    let gateway = public_key_gateway(&path).await;
    let hs256 = raw_token(SECRET, &json!({"sub": "alice", "exp": in_an_hour()}));
    let (status, message) = status_of(&gateway, &hs256).await;
    assert_eq!(status, 401);
    assert!(message.contains("HS256"), "{message}");
    // Nor can an HS256 token "signed" with the public key itself pass (algorithm confusion).
    let public = identity.verifying_key();
    let confused = raw_token(
        &String::from_utf8_lossy(public.as_bytes()),
        &json!({"sub": "alice", "exp": in_an_hour()}),
    );
    assert_eq!(status_of(&gateway, &confused).await.0, 401);
    gateway.stop().await;
}

#[test]
fn h_i3_a_jwks_file_with_an_rsa_key_is_refused_at_start() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("jwks.json");
    std::fs::write(
        &path,
        r#"{"keys":[{"kty":"RSA","kid":"r1","alg":"RS256","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB"}]}"#,
    )
    .unwrap();
    let error = gateway::jwks::read_jwks(&path).expect_err("RS256 is not offered");
    assert!(error.to_string().contains("Ed25519"), "{error}");
}
