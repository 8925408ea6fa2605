//! The headers of a published event (`parlor.evt.<type>`, protocol.md §2): its position, stream,
//! version and content type, written and read back as name/value pairs.

use crate::codec::Format;
use crate::record::RecordedEvent;

/// The content type header (`application/json` or `application/x-bincode`).
pub const HEADER_CONTENT_TYPE: &str = "Content-Type";
/// The event's global position, decimal.
pub const HEADER_POSITION: &str = "Parlor-Position";
/// The event's stream.
pub const HEADER_STREAM: &str = "Parlor-Stream";
/// The event's version within its stream, decimal.
pub const HEADER_VERSION: &str = "Parlor-Version";

/// Headers that do not describe an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid event headers: {message}")]
pub struct InvalidHeaders {
    /// Which header is missing or wrong.
    pub message: String,
}

/// What the headers of a published event say.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventHeaders {
    /// The event's global position.
    pub position: u64,
    /// Its stream.
    pub stream: String,
    /// Its version within the stream.
    pub version: u64,
    /// The body's format.
    pub format: Format,
}

impl EventHeaders {
    /// The headers of `event` published in `format`.
    pub fn for_event(event: &RecordedEvent, format: Format) -> EventHeaders {
        EventHeaders {
            position: event.position,
            stream: event.stream.clone(),
            version: event.version,
            format,
        }
    }

    /// The headers as name/value pairs, in a fixed order.
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        vec![
            (HEADER_POSITION.to_owned(), self.position.to_string()),
            (HEADER_STREAM.to_owned(), self.stream.clone()),
            (HEADER_VERSION.to_owned(), self.version.to_string()),
            (
                HEADER_CONTENT_TYPE.to_owned(),
                self.format.content_type().to_owned(),
            ),
        ]
    }

    /// Reads the headers back. Names match without regard to case; other headers are ignored;
    /// a missing `Content-Type` means JSON (as everywhere in the protocol).
    pub fn from_pairs<'a, I>(pairs: I) -> Result<EventHeaders, InvalidHeaders>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let (mut position, mut stream, mut version, mut content_type) = (None, None, None, None);
        for (name, value) in pairs {
            let slot = if name.eq_ignore_ascii_case(HEADER_POSITION) {
                &mut position
            } else if name.eq_ignore_ascii_case(HEADER_STREAM) {
                &mut stream
            } else if name.eq_ignore_ascii_case(HEADER_VERSION) {
                &mut version
            } else if name.eq_ignore_ascii_case(HEADER_CONTENT_TYPE) {
                &mut content_type
            } else {
                continue;
            };
            *slot = Some(value);
        }
        let number = |name: &str, value: Option<&str>| -> Result<u64, InvalidHeaders> {
            let value = value.ok_or_else(|| invalid(format!("{name}: missing")))?;
            value
                .trim()
                .parse()
                .map_err(|_| invalid(format!("{name}: expected a non-negative integer")))
        };
        let stream = match stream {
            Some(stream) if !stream.is_empty() => stream.to_owned(),
            Some(_) => return Err(invalid(format!("{HEADER_STREAM}: empty"))),
            None => return Err(invalid(format!("{HEADER_STREAM}: missing"))),
        };
        Ok(EventHeaders {
            position: number(HEADER_POSITION, position)?,
            stream,
            version: number(HEADER_VERSION, version)?,
            format: Format::from_content_type(content_type).ok_or_else(|| {
                invalid(format!("{HEADER_CONTENT_TYPE}: unsupported content type"))
            })?,
        })
    }
}

/// An [`InvalidHeaders`] with `message`.
fn invalid(message: String) -> InvalidHeaders {
    InvalidHeaders { message }
}
