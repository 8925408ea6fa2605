//! Subject rules: validation of subjects and queue group names, and wildcard matching.
//!
//! A subject is a non-empty list of non-empty tokens joined by `.`, with no whitespace, at most
//! [`SUBJECT_BYTES_MAX`] bytes long. In a subscription, a token may be the wildcard `*` (exactly
//! one token) or, as the last token only, `>` (one or more tokens). Messages are published to
//! literal subjects: a published subject may not contain a wildcard token. This is stricter
//! than nats-server, which accepts tokens such as `a*` as literals; rejecting them keeps the
//! two implementations identical and catches typos early.

use crate::BusError;

/// The longest subject or queue group name accepted, in bytes. nats-server limits a whole
/// protocol line to 4 KiB by default; this leaves ample room for the rest of the line.
pub const SUBJECT_BYTES_MAX: usize = 512;

/// Checks a subject to publish or request on: literal tokens only.
pub fn validate_publish_subject(subject: &str) -> Result<(), BusError> {
    validate_tokens(subject, false)
}

/// Checks a subscription's subject, which may contain the wildcards `*` and (last) `>`.
pub fn validate_subscribe_subject(subject: &str) -> Result<(), BusError> {
    validate_tokens(subject, true)
}

/// Checks a queue group name: non-empty, no whitespace, no wildcard characters, bounded.
pub fn validate_queue_group(group: &str) -> Result<(), BusError> {
    let invalid = |reason| {
        Err(BusError::InvalidSubject {
            subject: group.to_owned(),
            reason,
        })
    };
    if group.is_empty() {
        return invalid("the queue group name is empty");
    }
    if group.len() > SUBJECT_BYTES_MAX {
        return invalid("the queue group name is too long");
    }
    if group.chars().any(char::is_whitespace) {
        return invalid("the queue group name contains whitespace");
    }
    if group.contains(['*', '>']) {
        return invalid("the queue group name contains a wildcard");
    }
    Ok(())
}

/// Whether a literal subject matches a (validated) subscription pattern.
pub fn matches(pattern: &str, subject: &str) -> bool {
    let mut subject_tokens = subject.split('.');
    for pattern_token in pattern.split('.') {
        if pattern_token == ">" {
            // `>` needs at least one more token, and validation put it last.
            return subject_tokens.next().is_some();
        }
        match subject_tokens.next() {
            Some(token) if pattern_token == "*" || pattern_token == token => {}
            _ => return false,
        }
    }
    subject_tokens.next().is_none()
}

fn validate_tokens(subject: &str, wildcards_allowed: bool) -> Result<(), BusError> {
    let invalid = |reason| {
        Err(BusError::InvalidSubject {
            subject: subject.to_owned(),
            reason,
        })
    };
    if subject.is_empty() {
        return invalid("the subject is empty");
    }
    if subject.len() > SUBJECT_BYTES_MAX {
        return invalid("the subject is too long");
    }
    if subject.chars().any(char::is_whitespace) {
        return invalid("the subject contains whitespace");
    }
    let mut tokens = subject.split('.').peekable();
    while let Some(token) = tokens.next() {
        let is_last = tokens.peek().is_none();
        if token.is_empty() {
            return invalid("the subject has an empty token");
        }
        if !token.contains(['*', '>']) {
            continue;
        }
        if !wildcards_allowed {
            return invalid("wildcards are allowed only in subscriptions");
        }
        match token {
            "*" => {}
            ">" if is_last => {}
            ">" => return invalid("`>` must be the last token"),
            _ => return invalid("a wildcard must be a whole token"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_subjects() {
        for good in ["a", "a.b", "parlor.cmd.message.send", "_INBOX.x1.2"] {
            assert!(validate_publish_subject(good).is_ok(), "{good}");
        }
        let too_long = "a".repeat(SUBJECT_BYTES_MAX + 1);
        for bad in [
            "", ".", "a.", ".a", "a..b", "a b", "a\tb", "a.*", "a.>", "a*", &too_long,
        ] {
            assert!(validate_publish_subject(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn subscribe_subjects() {
        for good in ["a", "a.*", "*.b", "a.>", ">", "*.*.>", "a.*.c"] {
            assert!(validate_subscribe_subject(good).is_ok(), "{good}");
        }
        for bad in ["", "a..b", "a.>.c", ">.a", "a.b*", "a.>b", "a. b"] {
            assert!(validate_subscribe_subject(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn queue_groups() {
        assert!(validate_queue_group("writers").is_ok());
        for bad in ["", "a b", "a*", "a>"] {
            assert!(validate_queue_group(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn wildcard_matching() {
        let table = [
            ("a.b", "a.b", true),
            ("a.b", "a.c", false),
            ("a.b", "a.b.c", false),
            ("a.b.c", "a.b", false),
            ("a.*", "a.b", true),
            ("a.*", "a", false),
            ("a.*", "a.b.c", false),
            ("*.b", "a.b", true),
            ("a.>", "a.b", true),
            ("a.>", "a.b.c.d", true),
            ("a.>", "a", false),
            (">", "a", true),
            (">", "a.b", true),
            ("a.*.>", "a.b", false),
            ("a.*.>", "a.b.c", true),
        ];
        for (pattern, subject, expected) in table {
            assert_eq!(matches(pattern, subject), expected, "{pattern} ~ {subject}");
        }
    }
}
