//! Heuristic 8: spelled-out digits, "five five five, one two three, four five six seven".

use std::sync::LazyLock;

use regex::Regex;

use super::digit_runs::PHONE_WORD_RE;
use super::handles::SERVICES;
use super::text::{compile, hit, window_before};
use super::{ContactKind, ContactMatch};

static DIGIT_WORD_RE: LazyLock<Regex> = LazyLock::new(|| {
    compile(r"(?i)\b(?:zero|oh|one|two|three|four|five|six|seven|eight|nine)\b|[0-9]+")
});

fn digit_word_value(word: &str) -> Option<u32> {
    const WORDS: [&str; 10] = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    ];
    let lower = word.to_ascii_lowercase();
    if lower == "oh" {
        return Some(0);
    }
    WORDS
        .iter()
        .position(|w| *w == lower)
        .and_then(|p| u32::try_from(p).ok())
}

pub(super) fn find_spelled_digits(text: &str, found: &mut Vec<ContactMatch>) {
    // The current run: its byte range, its digit count, and the spelled words' values.
    let mut start = 0;
    let mut end = 0;
    let mut digits = 0usize;
    let mut spelled: Vec<u32> = Vec::new();
    let flush = |start: usize,
                 end: usize,
                 digits: usize,
                 spelled: &[u32],
                 found: &mut Vec<ContactMatch>| {
        // Three spelled words at least: runs of plain digits are the digit-run heuristic's.
        let counting = spelled.windows(2).all(|w| w[1] == w[0] + 1) && spelled.len() == digits;
        if spelled.len() >= 3 && !counting {
            let (_, before) = window_before(text, start, 48);
            let context = PHONE_WORD_RE.is_match(before) || SERVICES.regex.is_match(before);
            if (9..=15).contains(&digits) || ((7..=8).contains(&digits) && context) {
                found.push(hit(ContactKind::Phone, start, end));
            }
        }
    };
    for m in DIGIT_WORD_RE.find_iter(text) {
        let joins = digits > 0
            && text.get(end..m.start()).is_some_and(|gap| {
                gap.len() <= 6
                    && gap
                        .chars()
                        .all(|c| matches!(c, ' ' | '\t' | ',' | '.' | '-' | '–' | '/' | '*'))
            });
        if !joins {
            flush(start, end, digits, &spelled, found);
            start = m.start();
            digits = 0;
            spelled.clear();
        }
        end = m.end();
        match digit_word_value(m.as_str()) {
            Some(v) => {
                digits += 1;
                spelled.push(v);
            }
            None => digits = digits.saturating_add(m.as_str().len()),
        }
    }
    flush(start, end, digits, &spelled, found);
}
