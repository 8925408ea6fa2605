//! Heuristic 4: IBANs and other bank details.

use std::sync::LazyLock;

use regex::Regex;

use super::text::{compile, hit, window_before};
use super::{ContactKind, ContactMatch};

/// IBAN length per country (SWIFT IBAN registry). Knowing the exact length tells us where
/// the IBAN ends even when it is written in groups and followed by more text, and rules out
/// most random letter-digit strings before the checksum is even computed.
#[rustfmt::skip]
const IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24), ("AE", 23), ("AL", 28), ("AT", 20), ("AZ", 28), ("BA", 20), ("BE", 16),
    ("BG", 22), ("BH", 22), ("BI", 27), ("BR", 29), ("BY", 28), ("CH", 21), ("CR", 22),
    ("CY", 28), ("CZ", 24), ("DE", 22), ("DJ", 27), ("DK", 18), ("DO", 28), ("EE", 20),
    ("EG", 29), ("ES", 24), ("FI", 18), ("FK", 18), ("FO", 18), ("FR", 27), ("GB", 22),
    ("GE", 22), ("GI", 23), ("GL", 18), ("GR", 27), ("GT", 28), ("HR", 21), ("HU", 28),
    ("IE", 22), ("IL", 23), ("IQ", 23), ("IS", 26), ("IT", 27), ("JO", 30), ("KW", 30),
    ("KZ", 20), ("LB", 28), ("LC", 32), ("LI", 21), ("LT", 20), ("LU", 20), ("LV", 21),
    ("LY", 25), ("MC", 27), ("MD", 24), ("ME", 22), ("MK", 19), ("MN", 20), ("MR", 27),
    ("MT", 31), ("MU", 30), ("NI", 28), ("NL", 18), ("NO", 15), ("OM", 23), ("PK", 24),
    ("PL", 28), ("PS", 29), ("PT", 25), ("QA", 29), ("RO", 24), ("RS", 22), ("RU", 33),
    ("SA", 24), ("SC", 31), ("SD", 18), ("SE", 24), ("SI", 19), ("SK", 24), ("SM", 27),
    ("SO", 23), ("ST", 25), ("SV", 28), ("TL", 23), ("TN", 24), ("TR", 26), ("UA", 29),
    ("VA", 22), ("VG", 24), ("XK", 20), ("YE", 30),
];

/// ASCII classes spelled out rather than `(?i)[a-z]`: case-insensitive Unicode classes also
/// match the Kelvin sign and the long s, which are not one byte long.
static IBAN_START_RE: LazyLock<Regex> = LazyLock::new(|| compile(r"\b[A-Za-z]{2}[0-9]{2}"));
static IBAN_WORD_RE: LazyLock<Regex> = LazyLock::new(|| compile(r"(?i)\biban\b"));

fn iban_length(country: &str) -> Option<usize> {
    IBAN_LENGTHS
        .iter()
        .find(|(c, _)| c.eq_ignore_ascii_case(country))
        .map(|&(_, len)| len)
}

/// ISO 13616 check: move the first four characters to the end, read letters as 10..35,
/// and the number must be 1 modulo 97.
fn iban_checksum_ok(compact: &str) -> bool {
    let (head, tail) = compact.split_at(4.min(compact.len()));
    let mut rem: u32 = 0;
    for c in tail.chars().chain(head.chars()) {
        let Some(v) = c.to_digit(36) else {
            return false;
        };
        rem = if v < 10 {
            (rem * 10 + v) % 97
        } else {
            (rem * 100 + v) % 97
        };
    }
    rem == 1
}

pub(super) fn find_ibans(text: &str, found: &mut Vec<ContactMatch>) {
    let bytes = text.as_bytes();
    for m in IBAN_START_RE.find_iter(text) {
        let Some(len) = m.as_str().get(..2).and_then(iban_length) else {
            continue;
        };
        // Collect `len` alphanumerics, allowing single spaces or dashes between groups.
        let mut compact = String::with_capacity(len);
        let mut i = m.start();
        let mut end = i;
        while compact.len() < len && i < bytes.len() {
            let b = bytes[i];
            if b.is_ascii_alphanumeric() {
                compact.push(char::from(b.to_ascii_uppercase()));
                i += 1;
                end = i;
            } else if (b == b' ' || b == b'-')
                && bytes.get(i + 1).is_some_and(u8::is_ascii_alphanumeric)
            {
                i += 1;
            } else {
                break;
            }
        }
        if compact.len() != len || bytes.get(end).is_some_and(u8::is_ascii_alphanumeric) {
            continue;
        }
        let digits = compact.bytes().filter(u8::is_ascii_digit).count();
        let (_, before) = window_before(text, m.start(), 24);
        // A failing checksum still counts when the writer calls it an IBAN (a typo does not
        // make it less of a bank account), as long as it is mostly digits like real ones.
        if iban_checksum_ok(&compact) || (IBAN_WORD_RE.is_match(before) && digits * 2 >= len) {
            found.push(hit(ContactKind::Iban, m.start(), end));
        }
    }
}

/// Country codes a SWIFT/BIC code can carry (positions 5–6): the IBAN countries plus the
/// big non-IBAN banking countries. Checking them keeps `SWIFT: REFACTOR` from firing.
const BIC_COUNTRIES: &[&str] = &[
    "US", "CA", "AU", "NZ", "CN", "JP", "IN", "SG", "HK", "KR", "MX", "AR", "CL", "CO", "PE", "ZA",
    "NG", "KE", "MA", "ID", "MY", "TH", "VN", "PH", "TW",
];

static BANK_DETAIL_RE: LazyLock<Regex> = LazyLock::new(|| {
    compile(concat!(
        r"(?P<swift>(?i:\b(?:swift|bic)(?:[\s/\-]*(?:code|number|no\.?))?\s*(?:is\s*)?[:\-]?\s*)",
        r"(?P<bic>[A-Z]{6}[A-Z0-9]{2}(?:[A-Z0-9]{3})?)\b)",
        r"|(?i:\bsort\s*code\s*(?:is\s*)?[:\-]?\s*[0-9]{2}[\s\-]?[0-9]{2}[\s\-]?[0-9]{2}\b)",
        r"|(?i:\b(?:routing|aba)(?:\s*(?:number|no\.?|#))?\s*(?:is\s*)?[:\-]?\s*[0-9]{9}\b)",
    ))
});

pub(super) fn find_bank_details(text: &str, found: &mut Vec<ContactMatch>) {
    for caps in BANK_DETAIL_RE.captures_iter(text) {
        let Some(m) = caps.get(0) else {
            continue;
        };
        if let Some(bic) = caps.name("bic") {
            let country = bic.as_str().get(4..6).unwrap_or("");
            if iban_length(country).is_none() && !BIC_COUNTRIES.contains(&country) {
                continue;
            }
        }
        found.push(hit(ContactKind::Payment, m.start(), m.end()));
    }
}
