//! How a part connects to NATS: the servers, its credentials, TLS and its inbox prefix.
//!
//! Plain data checked once ([`NatsOptions::check`]); `nats.rs` turns it into async-nats
//! options. Secrets are read from files so that no process list shows them.

use std::path::PathBuf;

use crate::subject::validate_publish_subject;
use crate::BusError;

/// Who the part is to the server (security.md H-N1: one user per part).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum NatsAuth {
    /// No credentials (a development server without users).
    #[default]
    Anonymous,
    /// A `.creds` file (a user JWT and its NKey seed), as `nsc` writes it.
    CredsFile(PathBuf),
    /// A user name and the file holding its password (one line; a trailing newline is ignored).
    UserPasswordFile {
        /// The user name.
        user: String,
        /// The file with the password.
        password_file: PathBuf,
    },
}

/// TLS towards the server: the CA to trust and, for mutual TLS, the client's own certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NatsTls {
    /// PEM file of the CA that signed the servers' certificates; implies TLS is required.
    pub ca: Option<PathBuf>,
    /// PEM file of the client certificate (with `key`).
    pub cert: Option<PathBuf>,
    /// PEM file of the client certificate's private key (with `cert`).
    pub key: Option<PathBuf>,
}

impl NatsTls {
    /// Whether any TLS option is set, so the connection must use TLS.
    pub fn is_required(&self) -> bool {
        self.ca.is_some() || self.cert.is_some() || self.key.is_some()
    }
}

/// Everything a part needs to connect to NATS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatsOptions {
    /// Server URLs (`nats://host:port`, `tls://host:port`); any of them will do, and the
    /// client moves to another when one fails.
    pub servers: Vec<String>,
    /// The connection's name, shown by the server's monitoring.
    pub client_name: String,
    /// Credentials.
    pub auth: NatsAuth,
    /// TLS.
    pub tls: NatsTls,
    /// The prefix of this part's reply subjects (`_INBOX` when `None`). A per-part prefix
    /// lets the server's permissions give each user its own replies only.
    pub inbox_prefix: Option<String>,
}

impl NatsOptions {
    /// Options for `servers`, a comma-separated list of URLs, with no credentials or TLS.
    pub fn new(servers: &str, client_name: &str) -> NatsOptions {
        NatsOptions {
            servers: split_servers(servers),
            client_name: client_name.to_owned(),
            auth: NatsAuth::Anonymous,
            tls: NatsTls::default(),
            inbox_prefix: None,
        }
    }

    /// The servers as one comma-separated string, for messages.
    pub fn servers_text(&self) -> String {
        self.servers.join(",")
    }

    /// Checks what can be checked without a server: at least one URL, a certificate with its
    /// key, an inbox prefix that is a literal subject.
    pub fn check(&self) -> Result<(), BusError> {
        if self.servers.is_empty() {
            return Err(BusError::Config(
                "no NATS server URL given (--nats-url takes a comma-separated list)".into(),
            ));
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return Err(BusError::Config(
                "a client certificate needs its key and a key its certificate \
                 (--nats-tls-cert with --nats-tls-key)"
                    .into(),
            ));
        }
        if let Some(prefix) = &self.inbox_prefix {
            validate_publish_subject(prefix).map_err(|error| {
                BusError::Config(format!(
                    "the inbox prefix {prefix:?} is not usable: {error}"
                ))
            })?;
        }
        Ok(())
    }

    /// The password of [`NatsAuth::UserPasswordFile`], read from its file.
    pub(crate) fn read_password(password_file: &std::path::Path) -> Result<String, BusError> {
        let text = std::fs::read_to_string(password_file).map_err(|error| {
            BusError::Config(format!(
                "cannot read the NATS password file {}: {error}",
                password_file.display()
            ))
        })?;
        let password = text.trim_end_matches(['\r', '\n']);
        if password.is_empty() {
            return Err(BusError::Config(format!(
                "the NATS password file {} is empty",
                password_file.display()
            )));
        }
        Ok(password.to_owned())
    }
}

/// Splits `a,b,c` into URLs, trimming blanks and dropping empty items.
fn split_servers(servers: &str) -> Vec<String> {
    servers
        .split(',')
        .map(str::trim)
        .filter(|server| !server.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn servers_are_split_on_commas_and_trimmed() {
        let options = NatsOptions::new(" nats://a:1, nats://b:2 ,,tls://c:3", "x");
        assert_eq!(
            options.servers,
            ["nats://a:1", "nats://b:2", "tls://c:3"].map(String::from)
        );
        assert!(options.check().is_ok());
    }

    #[test]
    fn empty_lists_half_certificates_and_wildcard_prefixes_are_refused() {
        assert!(NatsOptions::new(" , ", "x").check().is_err());
        let mut options = NatsOptions::new("nats://a:1", "x");
        options.tls.cert = Some("cert.pem".into());
        assert!(options.check().is_err());
        let mut options = NatsOptions::new("nats://a:1", "x");
        options.inbox_prefix = Some("_INBOX.>".into());
        assert!(options.check().is_err());
    }

    #[test]
    fn password_files_lose_their_final_newline_and_must_not_be_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("password");
        std::fs::write(&path, "s3cret\n").unwrap();
        assert_eq!(NatsOptions::read_password(&path).unwrap(), "s3cret");
        std::fs::write(&path, "\n").unwrap();
        assert!(NatsOptions::read_password(&path).is_err());
        assert!(NatsOptions::read_password(&dir.path().join("missing")).is_err());
    }
}
