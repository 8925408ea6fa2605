//! Start-up errors that name the flag to fix: the libraries report what failed (an address in
//! use, a directory they cannot open); only this binary knows which flag gave that value. And
//! the one line a failure is printed as.

use crate::options::CommonOptions;

/// The gateway's start-up failure, led by the flag whose value it could not use.
pub fn gateway_error(error: gateway::GatewayError, common: &CommonOptions) -> anyhow::Error {
    let flag = match &error {
        gateway::GatewayError::Bind { addr, .. } if *addr == common.http_addr => {
            format!("--http-addr {addr}")
        }
        gateway::GatewayError::Bind { addr, .. } => format!("--ops-addr {addr}"),
        gateway::GatewayError::BlobStore { .. } => {
            format!("--data-dir {}", common.data_dir.display())
        }
        gateway::GatewayError::Auth(_) => {
            "--jwt-secret, --jwt-secret-file or --jwt-jwks".to_owned()
        }
        gateway::GatewayError::Config(_) => "a gateway limit flag".to_owned(),
        gateway::GatewayError::Bus(_) => {
            format!("--nats-url / --subject-prefix {}", common.subject_prefix)
        }
        gateway::GatewayError::Serve(_) => return anyhow::Error::new(error),
    };
    anyhow::Error::new(error).context(flag)
}

/// The failure as one line: each context, then each cause, joined by `: `. A cause whose text
/// the line already ends with is left out (several library errors both print their source and
/// return it as `source()`, which would say it twice).
pub fn describe(failure: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in failure.chain() {
        let text = cause.to_string();
        if line.ends_with(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_already_printed_is_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::AddrInUse, "Address already in use");
        let error = gateway::GatewayError::Bind {
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], 8787)),
            source: io,
        };
        let failure = anyhow::Error::new(error).context("--http-addr 127.0.0.1:8787");
        assert_eq!(
            describe(&failure),
            "--http-addr 127.0.0.1:8787: cannot listen on 127.0.0.1:8787: Address already in use"
        );
        let plain = anyhow::anyhow!("root").context("middle").context("top");
        assert_eq!(describe(&plain), "top: middle: root");
    }
}
