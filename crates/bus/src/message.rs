//! Messages and their headers, as callers see them (no async-nats types).

use bytes::Bytes;

use crate::BusError;

/// Message headers: an ordered list of (name, value) pairs.
///
/// Names are compared ASCII case-insensitively by [`Headers::get`], [`Headers::insert`] and
/// [`Headers::remove`], as in HTTP, so a foreign client's `content-type` still matches
/// `Content-Type`; the name is kept as written. A name must be non-empty printable ASCII
/// without `:`, and a value must not contain CR or LF, because NATS writes headers as
/// `Name: value` lines; the bus checks this on send ([`BusError::InvalidHeader`]).
///
/// The in-process bus keeps the order. Over NATS the order of *different* names is lost
/// (async-nats keeps headers in a hash map), so received headers are sorted by name; several
/// values of one name keep their order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    entries: Vec<(String, String)>,
}

impl Headers {
    /// No headers.
    pub fn new() -> Headers {
        Headers::default()
    }

    /// The first value of the header `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Every value of the header `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Sets the header `name` to `value`, replacing every earlier value of that name.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        self.remove(&name);
        self.entries.push((name, value.into()));
    }

    /// Adds a value to the header `name`, keeping earlier ones.
    pub fn append(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.entries.push((name.into(), value.into()));
    }

    /// Builder form of [`Headers::insert`].
    #[must_use]
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Headers {
        self.insert(name, value);
        self
    }

    /// Removes every value of the header `name`.
    pub fn remove(&mut self, name: &str) {
        self.entries
            .retain(|(key, _)| !key.eq_ignore_ascii_case(name));
    }

    /// All (name, value) pairs, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
    }

    /// The number of (name, value) pairs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no headers.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Checks every name and value against the rules in the type's documentation.
    pub fn validate(&self) -> Result<(), BusError> {
        for (name, value) in &self.entries {
            let invalid = |reason| {
                Err(BusError::InvalidHeader {
                    name: name.clone(),
                    reason,
                })
            };
            if name.is_empty() {
                return invalid("the name is empty");
            }
            if name.chars().any(|c| !c.is_ascii_graphic() || c == ':') {
                return invalid("the name must be printable ASCII without ':'");
            }
            if value.contains(['\r', '\n']) {
                return invalid("the value contains CR or LF");
            }
        }
        Ok(())
    }

    /// The bytes the headers take on the wire in NATS (`NATS/1.0\r\n`, one `Name: value\r\n`
    /// line per pair, a final `\r\n`), or 0 when there are none (NATS then sends no header
    /// block at all).
    pub fn wire_bytes(&self) -> usize {
        if self.entries.is_empty() {
            return 0;
        }
        let lines: usize = self
            .entries
            .iter()
            .map(|(name, value)| name.len() + ": ".len() + value.len() + "\r\n".len())
            .sum();
        "NATS/1.0\r\n".len() + lines + "\r\n".len()
    }
}

impl<N: Into<String>, V: Into<String>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        Headers {
            entries: iter
                .into_iter()
                .map(|(name, value)| (name.into(), value.into()))
                .collect(),
        }
    }
}

/// A message as delivered to a subscriber or returned as a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The literal subject it was published on.
    pub subject: String,
    /// Its headers (empty when it had none).
    pub headers: Headers,
    /// Its body.
    pub payload: Bytes,
    /// Where to send the reply, when the message is a request (see [`crate::Bus::respond`]).
    pub reply_to: Option<String>,
}

/// The size NATS counts against its `max_payload`: the header block plus the payload. The bus
/// refuses messages above [`crate::PAYLOAD_BYTES_MAX`] by this measure, so a service that must
/// fit a reply under the limit (such as `log.read`) should budget for its headers too.
pub fn message_bytes(headers: &Headers, payload: &[u8]) -> usize {
    headers.wire_bytes().saturating_add(payload.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_case_insensitively_and_insert_replaces() {
        let mut headers = Headers::new().with("Content-Type", "a");
        headers.append("X-Many", "1");
        headers.append("x-many", "2");
        assert_eq!(headers.get("content-type"), Some("a"));
        assert_eq!(headers.get_all("X-MANY").collect::<Vec<_>>(), ["1", "2"]);
        headers.insert("CONTENT-TYPE", "b");
        assert_eq!(headers.get("Content-Type"), Some("b"));
        assert_eq!(headers.len(), 3);
        headers.remove("x-many");
        assert_eq!(headers.len(), 1);
        assert_eq!(headers.get("missing"), None);
    }

    #[test]
    fn validation() {
        assert!(Headers::new()
            .with("Parlor-Position", "7")
            .validate()
            .is_ok());
        for (name, value) in [
            ("", "v"),
            ("a:b", "v"),
            ("a b", "v"),
            ("é", "v"),
            ("a", "x\r\ny"),
        ] {
            let headers = Headers::new().with(name, value);
            assert!(headers.validate().is_err(), "{name:?}: {value:?}");
        }
    }

    #[test]
    fn wire_bytes_counts_like_nats() {
        assert_eq!(Headers::new().wire_bytes(), 0);
        // "NATS/1.0\r\n" + "A: bc\r\n" + "\r\n"
        assert_eq!(Headers::new().with("A", "bc").wire_bytes(), 10 + 7 + 2);
        assert_eq!(message_bytes(&Headers::new().with("A", "bc"), b"xyz"), 22);
    }
}
