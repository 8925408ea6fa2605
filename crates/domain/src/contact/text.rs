//! Small helpers of the heuristics. Everything that slices the text goes through these, so
//! no slice can fall inside a multi-byte character whatever offsets the arithmetic produces.

use regex::Regex;

use super::{ContactKind, ContactMatch};

pub(super) fn compile(pattern: &str) -> Regex {
    Regex::new(pattern).expect("contact detector pattern is a valid regex")
}

pub(super) fn hit(kind: ContactKind, start: usize, end: usize) -> ContactMatch {
    ContactMatch { kind, start, end }
}

/// The largest char boundary at or below `i`.
pub(super) fn floor_boundary(text: &str, i: usize) -> usize {
    let mut i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The smallest char boundary at or above `i`.
pub(super) fn ceil_boundary(text: &str, i: usize) -> usize {
    let mut i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// Up to `max` bytes of text ending at `end`, and the offset where that window starts.
pub(super) fn window_before(text: &str, end: usize, max: usize) -> (usize, &str) {
    let end = floor_boundary(text, end);
    let start = ceil_boundary(text, end.saturating_sub(max));
    (start, text.get(start..end).unwrap_or(""))
}

/// Up to `max` bytes of text starting at `start`.
pub(super) fn window_after(text: &str, start: usize, max: usize) -> &str {
    let start = ceil_boundary(text, start);
    let end = floor_boundary(text, start.saturating_add(max));
    text.get(start..end).unwrap_or("")
}

pub(super) fn char_before(text: &str, i: usize) -> Option<char> {
    text.get(..i).and_then(|s| s.chars().next_back())
}

pub(super) fn char_after(text: &str, i: usize) -> Option<char> {
    text.get(i..).and_then(|s| s.chars().next())
}

/// The last `n` words (ASCII letters and digits) of `s`, lower-cased.
pub(super) fn last_words(s: &str, n: usize) -> Vec<String> {
    let mut words: Vec<String> = s
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .rev()
        .take(n)
        .map(str::to_ascii_lowercase)
        .collect();
    words.reverse();
    words
}

/// The first word (ASCII letters) of `s`, lower-cased, skipping leading spaces.
pub(super) fn first_word(s: &str) -> String {
    s.trim_start()
        .chars()
        .take_while(char::is_ascii_alphabetic)
        .take(24)
        .collect::<String>()
        .to_ascii_lowercase()
}

pub(super) const CURRENCY_SYMBOLS: &[char] = &[
    '$', '€', '£', '¥', '₹', '₽', '₴', '₸', '₺', '₩', '₦', '¢', '₱', '฿', '₫', '₪',
];
