//! Heuristic 7: digit runs, phone numbers and card numbers.
//!
//! A "segment" is a maximal stretch of digits and in-number separators (`.`, `-`, `/`,
//! parentheses, a leading `+`). Segments separated only by spaces (or one spaced dash/dot)
//! form a "run": that is how `555 123 4567`, `+44 20 7946 0958` and `0 7 7 0 0 9 0 0 1 2 3`
//! are written. A segment that is glued to letters or symbols (`v1.2.3`, `1920x1080`, `4K`,
//! `$1,500`, `30%`, `14:30`, `#12345`, URL paths) or shaped like a date, an IP address, a
//! version, a decimal or a thousands-grouped amount is "tainted": it never joins a run and
//! breaks the run it sits in. A run is then judged on its digit count and its context.

use std::sync::LazyLock;

use regex::Regex;

use super::handles::SERVICES;
use super::text::{
    char_after, char_before, compile, first_word, hit, last_words, window_after, window_before,
    CURRENCY_SYMBOLS,
};
use super::{ContactKind, ContactMatch};

static SEGMENT_RE: LazyLock<Regex> = LazyLock::new(|| compile(r"[+(]{0,3}[0-9][0-9().\-/]*"));

/// Context words that make a 7–8 digit number (or an unseparated 9-digit one) a phone.
pub(super) static PHONE_WORD_RE: LazyLock<Regex> = LazyLock::new(|| {
    compile(
        r"(?i)\b(?:call|calls|phone|phones|tel|telephone|mob|mobile|cell|cellphone|ring|dial|text|sms|number|whats\s?app|viber|telegram|signal|zelle|reach|contact)\b",
    )
});

/// Words right before a number that make it an identifier: "order 123456789",
/// "invoice 2026-0042-17", "timestamp 1732700000". Words that also name people or phone
/// things ("client", "line", "code") are left out: "call the client 555 123 4567".
#[rustfmt::skip]
const ID_WORDS: &[&str] = &[
    "order", "orders", "invoice", "inv", "ticket", "ref", "reference", "id", "tracking",
    "transaction", "txn", "receipt", "po", "sku", "isbn", "issn", "ean", "upc", "gtin", "job",
    "contract", "project", "case", "issue", "build", "commit", "pr", "item", "serial", "sn",
    "timestamp", "ts", "epoch", "unix", "batch", "lot", "model", "part", "tx", "hash",
    "version", "release", "milestone", "task", "bug", "jira", "confirmation", "booking",
    "shipment", "parcel", "license", "licence", "key", "pin", "otp", "vat", "tax", "ein", "ssn",
    "registration", "reg", "certificate", "cert", "policy", "claim", "account", "acct", "uid",
    "nr", "ids", "prs", "issues", "tickets", "invoices", "jobs", "builds", "commits", "cases",
];

/// Words right after (or before) a number that make it a quantity or an amount.
#[rustfmt::skip]
const UNIT_WORDS: &[&str] = &[
    "usd", "eur", "gbp", "rub", "uah", "inr", "cad", "aud", "chf", "pln", "jpy", "cny", "brl",
    "try", "idr", "ngn", "pkr", "php", "vnd", "krw", "sek", "nok", "dkk", "czk", "huf", "mxn",
    "zar", "aed", "usdt", "btc", "eth", "dollars", "dollar", "euros", "euro", "pounds", "bucks",
    "rupees", "rupiah", "rubles", "roubles", "hryvnia", "yen", "yuan", "naira", "k", "m", "mln",
    "million", "millions", "billion", "billions", "bn", "hours", "hrs", "hr", "h", "hour",
    "days", "day", "weeks", "week", "months", "month", "years", "year", "minutes", "mins",
    "min", "sec", "seconds", "words", "word", "pages", "page", "px", "pixels", "pt", "dpi",
    "views", "followers", "users", "downloads", "installs", "subscribers", "rows", "records",
    "lines", "items", "units", "pcs", "pieces", "times", "characters", "chars", "tokens",
    "bytes", "kb", "mb", "gb", "tb", "percent", "people", "employees", "visitors",
    "impressions", "clicks", "leads", "sqft", "km", "kg", "miles", "likes", "members", "orders",
    "requests", "calls", "emails", "products", "skus", "listings", "entries", "cells", "points",
    "steps", "frames", "fps", "ms",
];

struct Segment {
    /// Start of the segment, or of the `+` written before it with a space (`+ 44 …`).
    start: usize,
    end: usize,
    groups: Vec<String>,
    plus: bool,
    paren: bool,
    tainted: bool,
}

impl Segment {
    fn digit_count(&self) -> usize {
        self.groups.iter().map(String::len).sum()
    }
}

fn make_segment(text: &str, start: usize, raw_end: usize) -> Segment {
    // Trailing separators belong to the sentence, not the number ("call 555-1234.").
    let mut end = raw_end;
    while let Some(last) = text.get(start..end).and_then(|s| s.bytes().last()) {
        let open = text.get(start..end).is_some_and(|s| s.contains('('));
        if matches!(last, b'.' | b'-' | b'/' | b'(') || (last == b')' && !open) {
            end -= 1;
        } else {
            break;
        }
    }
    let raw = text.get(start..end).unwrap_or("");
    let mut groups: Vec<String> = Vec::new();
    let mut seps: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut sep = String::new();
    for c in raw.chars() {
        if c.is_ascii_digit() {
            if !sep.is_empty() && !groups.is_empty() {
                seps.push(std::mem::take(&mut sep));
            }
            sep.clear();
            current.push(c);
        } else {
            if !current.is_empty() {
                groups.push(std::mem::take(&mut current));
            }
            sep.push(c);
        }
    }
    if !current.is_empty() {
        groups.push(current);
    }
    let bytes = text.as_bytes();
    // `+ 44 20 …`: a lone plus written before the number, with one space.
    let spaced_plus = start >= 2
        && bytes[start - 1] == b' '
        && bytes[start - 2] == b'+'
        && char_before(text, start - 2).is_none_or(char::is_whitespace);
    let plus = raw.contains('+') || spaced_plus;
    let tainted = context_taints(text, start, end) || shape_taints(&groups, &seps, plus);
    Segment {
        start: if spaced_plus && !raw.contains('+') {
            start - 2
        } else {
            start
        },
        end,
        groups,
        plus,
        paren: raw.contains('('),
        tainted,
    }
}

/// Whether the characters around a segment make it part of something else.
fn context_taints(text: &str, start: usize, end: usize) -> bool {
    let before = char_before(text, start);
    let before2 = before.and_then(|c| char_before(text, start - c.len_utf8()));
    let after = char_after(text, end);
    let after2 = after.and_then(|c| char_after(text, end + c.len_utf8()));
    let digit = |c: Option<char>| c.is_some_and(|c| c.is_ascii_digit());
    let alnum = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    let tainted_before = match before {
        None => false,
        // `v1.2.3`, `A4`, `x1080`, `id123`, `GMT+1`: part of a word or an identifier.
        Some(c) if c.is_alphanumeric() => true,
        // Prices, hashtags and order numbers, URL paths and query strings, `@2x`.
        Some(c) if CURRENCY_SYMBOLS.contains(&c) => true,
        Some(c) if "#№/\\=&?@%^`".contains(c) => true,
        // `14:30` (minutes), `1,500` (thousands).
        Some(':' | ',') => digit(before2),
        // `ABC-123`, `file_2026…`, `item*3`: glued to an identifier.
        Some('-' | '_' | '–' | '*' | '~' | '|') => alnum(before2),
        Some(_) => false,
    };
    let tainted_after = match after {
        None => false,
        // `30am`, `4K`, `1920x1080`, `5th`, `10k`, `2500USD`.
        Some(c) if c.is_alphanumeric() => true,
        Some(c) if CURRENCY_SYMBOLS.contains(&c) => true,
        Some(c) if "%‰°#/\\=&_@^`×′″".contains(c) => true,
        Some(':' | ',') => digit(after2),
        Some('-' | '–') => alnum(after2),
        Some(_) => false,
    };
    tainted_before || tainted_after
}

/// Whether a segment's own shape says it is not (part of) a phone number.
fn shape_taints(groups: &[String], seps: &[String], plus: bool) -> bool {
    let n = groups.len();
    let all_seps = |c: char| seps.iter().all(|s| s.len() == 1 && s.starts_with(c));
    let g = |i: usize| groups.get(i).map_or("", String::as_str);
    let len = |i: usize| g(i).len();
    // A date: three groups with one consistent separator and valid day / month / year.
    if n == 3 && ['.', '-', '/'].iter().any(|&c| all_seps(c)) && is_date(g(0), g(1), g(2)) {
        return true;
    }
    // An IPv4 address.
    if n == 4
        && all_seps('.')
        && groups
            .iter()
            .all(|x| x.len() <= 3 && x.parse::<u16>().is_ok_and(|v| v <= 255))
    {
        return true;
    }
    if plus {
        return false;
    }
    // A version: `2.10.14`, `10.15.7.1`, `120.0.6099.109`. Versions have no leading zero
    // (phone trunk prefixes do: `07.700.900.123`) and either only short groups or a
    // one-digit group among longer ones, which dotted phone numbers never have (except the
    // fully split `0.7.7.0.0.9…`, which has more groups than any version).
    let version_start = g(0) == "0" || !g(0).starts_with('0');
    let short_groups = len(0) <= 2 && groups.iter().all(|x| x.len() <= 3);
    let mixed_groups = groups.iter().any(|x| x.len() == 1) && groups.iter().any(|x| x.len() > 1);
    if (3..=5).contains(&n)
        && all_seps('.')
        && version_start
        && ((n <= 4 && short_groups) || mixed_groups)
    {
        return true;
    }
    // A decimal: `3.14159265`, `55.755826`. Phones are not written `555.1234` often enough to
    // make up for every coordinate and measurement.
    if n == 2 && all_seps('.') && (len(0) <= 2 || len(1) >= 5 || len(0) >= 5) {
        return true;
    }
    // A dotted thousands amount: `1.500.000.000`.
    if n >= 3
        && all_seps('.')
        && (1..=3).contains(&len(0))
        && !g(0).starts_with('0')
        && groups[1..].iter().all(|x| x.len() == 3)
        && g(n - 1).ends_with("00")
    {
        return true;
    }
    false
}

fn is_date(a: &str, b: &str, c: &str) -> bool {
    let num = |s: &str| {
        if s.len() <= 4 {
            s.parse::<u32>().ok()
        } else {
            None
        }
    };
    let (Some(x), Some(y), Some(z)) = (num(a), num(b), num(c)) else {
        return false;
    };
    let year4 = |s: &str, v: u32| s.len() == 4 && (1900..=2099).contains(&v);
    let day = |v: u32| (1..=31).contains(&v);
    let month = |v: u32| (1..=12).contains(&v);
    let ymd = year4(a, x) && b.len() <= 2 && c.len() <= 2 && month(y) && day(z);
    let dmy_or_mdy = a.len() <= 2
        && b.len() <= 2
        && (c.len() == 2 || year4(c, z))
        && ((day(x) && month(y)) || (month(x) && day(y)));
    ymd || dmy_or_mdy
}

/// Whether the text between two segments keeps them in one number: spaces, and at most
/// one dash-like or dot-like separator (a dot only when spaced, so that a sentence end
/// "… 4567. 12 people" does not glue the next number on).
fn gap_joins(gap: &str) -> bool {
    if gap.len() > 12 {
        return false;
    }
    let mut separators = 0;
    for c in gap.chars() {
        match c {
            ' ' | '\t' | '\u{a0}' | '\u{2009}' | '\u{202f}' => {}
            '-' | '–' | '—' | '·' | '•' | '*' | '|' | '_' | '~' | '/' | '.' => {
                separators += 1;
                if separators > 1 || (c == '.' && !gap.starts_with(char::is_whitespace)) {
                    return false;
                }
            }
            _ => return false,
        }
    }
    true
}

pub(super) fn find_digit_runs(text: &str, found: &mut Vec<ContactMatch>) {
    let mut run: Vec<Segment> = Vec::new();
    for m in SEGMENT_RE.find_iter(text) {
        let seg = make_segment(text, m.start(), m.end());
        if seg.tainted {
            classify_run(text, &run, found);
            run.clear();
            continue;
        }
        if let Some(last) = run.last() {
            if !gap_joins(text.get(last.end..seg.start).unwrap_or("x")) {
                classify_run(text, &run, found);
                run.clear();
            }
        }
        run.push(seg);
    }
    classify_run(text, &run, found);
}

fn luhn_ok(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d - b'0');
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

fn isbn13_ok(digits: &[u8]) -> bool {
    digits.len() == 13
        && (digits.starts_with(b"978") || digits.starts_with(b"979"))
        && digits
            .iter()
            .enumerate()
            .map(|(i, d)| u32::from(d - b'0') * if i % 2 == 0 { 1 } else { 3 })
            .sum::<u32>()
            % 10
            == 0
}

/// Card numbers are printed 4-4-4-4(-3), Amex 4-6-5, or in one block.
fn card_grouping(group_lens: &[usize], total: usize) -> bool {
    let n = group_lens.len();
    group_lens == [total]
        || group_lens == [4, 6, 5]
        || group_lens == [4, 6, 4]
        || (n >= 3
            && group_lens[..n - 1].iter().all(|&l| l == 4)
            && (1..=4).contains(&group_lens[n - 1]))
}

fn classify_run(text: &str, run: &[Segment], found: &mut Vec<ContactMatch>) {
    let (Some(first), Some(last)) = (run.first(), run.last()) else {
        return;
    };
    let total: usize = run.iter().map(Segment::digit_count).sum();
    if !(7..=19).contains(&total) {
        return;
    }
    let digits: Vec<u8> = run
        .iter()
        .flat_map(|s| s.groups.iter())
        .flat_map(|g| g.bytes())
        .collect();
    let group_lens: Vec<usize> = run
        .iter()
        .flat_map(|s| s.groups.iter().map(String::len))
        .collect();
    let (start, end) = (first.start, last.end);
    let plus = first.plus;
    let paren = run.iter().any(|s| s.paren);
    let (_, before) = window_before(text, start, 48);
    let after = window_after(text, end, 32);
    let identifier = !plus
        && last_words(before, 3)
            .iter()
            .any(|w| ID_WORDS.contains(&w.as_str()));

    // Card numbers: 13–19 digits passing Luhn with an issuer's first digit (2–6). Past 15
    // digits nothing else fits (E.164 phones stop at 15), so any grouping will do.
    if !plus
        && !paren
        && !identifier
        && (13..=19).contains(&total)
        && matches!(digits.first(), Some(b'2'..=b'6'))
        && luhn_ok(&digits)
        && (total >= 16 || card_grouping(&group_lens, total))
    {
        found.push(hit(ContactKind::CardNumber, start, end));
        return;
    }
    if total > 15 {
        return;
    }
    if looks_like_quantities(run, before, after, plus)
        || (!plus && (identifier || isbn13_ok(&digits)))
    {
        return;
    }
    let context = PHONE_WORD_RE.is_match(before)
        || PHONE_WORD_RE.is_match(after)
        || SERVICES.regex.is_match(before);
    let separated = group_lens.len() > 1;
    let phone = if plus {
        total >= 8 || context
    } else if total == 10 && !separated && digits.first() == Some(&b'1') {
        // `1732700000`: ten unseparated digits starting with 1 read as a Unix timestamp or
        // an id; North American and Indian numbers never start with 1 at that length.
        context
    } else if total >= 10 {
        true
    } else if total == 9 {
        // An unseparated 9-digit number is as likely an order or account number.
        separated || digits.first() == Some(&b'0') || context
    } else {
        context
    };
    if phone {
        found.push(hit(ContactKind::Phone, start, end));
    }
}

/// Runs of numbers that are amounts or quantities rather than one phone number. Applies
/// with a leading `+` too ("+30 000 000 views"); lists only without one.
fn looks_like_quantities(run: &[Segment], before: &str, after: &str, plus: bool) -> bool {
    let singles: Option<Vec<&str>> = run
        .iter()
        .map(|s| match s.groups.as_slice() {
            [only] => Some(only.as_str()),
            _ => None,
        })
        .collect();
    if let Some(values) = singles.as_deref().filter(|v| v.len() >= 2) {
        if !plus && looks_like_list(values) {
            return true;
        }
        // `1 500 000 000`: thousands separated by spaces.
        if values.len() >= 3
            && (1..=3).contains(&values[0].len())
            && !values[0].starts_with('0')
            && values[1..].iter().all(|v| v.len() == 3)
            && values.last().is_some_and(|v| v.ends_with("00"))
        {
            return true;
        }
    }
    // `1 500 000 000 IDR`, `€ 1 500 000`, `120 000 000 users`.
    let next = after.trim_start();
    if next.starts_with(CURRENCY_SYMBOLS) || next.starts_with('%') {
        return true;
    }
    if UNIT_WORDS.contains(&first_word(after).as_str()) {
        return true;
    }
    let previous = before.trim_end();
    if previous.ends_with(CURRENCY_SYMBOLS) {
        return true;
    }
    last_words(previous, 1)
        .first()
        .is_some_and(|w| UNIT_WORDS.contains(&w.as_str()) && w.len() == 3)
}

/// Space-separated numbers (at least two) that read as a list: years, round amounts,
/// counting or monotonic sequences, scores.
fn looks_like_list(values: &[&str]) -> bool {
    let Some(first) = values.first() else {
        return false;
    };
    // `2019 2020 2021`: years.
    if values
        .iter()
        .all(|v| v.len() == 4 && v.parse::<u32>().is_ok_and(|y| (1900..=2099).contains(&y)))
    {
        return true;
    }
    // `1000 1500 2000`, `250 500 750`: round numbers, a list of amounts.
    if values.iter().all(|v| v.len() >= 3 && v.ends_with('0')) {
        return true;
    }
    let nums: Vec<u32> = values.iter().filter_map(|v| v.parse().ok()).collect();
    // `01 02 03 04 05`: consecutive numbers are a list whatever their padding.
    if nums.len() == values.len()
        && values.len() >= 3
        && nums.windows(2).all(|w| w[0].checked_add(1) == Some(w[1]))
    {
        return true;
    }
    // Not when it starts with a trunk zero: `06 12 34 56 78` is a French mobile.
    if first.starts_with('0') || values.iter().any(|v| v.len() > 6) {
        return false;
    }
    // `1 2 3 4 5 6 7 8 9`, `10 12 14 16 18`, `255 128 64 32`: a monotonic list. Four values
    // at least, because three phone groups are increasing by chance (`555 867 5309`), or
    // three of one length (`10115 10117 10119`: phone groups differ in length).
    let increasing = nums.windows(2).all(|w| w[0] < w[1]);
    let decreasing = nums.windows(2).all(|w| w[0] > w[1]);
    let same_length = values.iter().all(|v| v.len() == first.len());
    if (values.len() >= 4 && (increasing || decreasing))
        || (values.len() >= 3 && same_length && first.len() >= 2 && increasing)
    {
        return true;
    }
    // `87 92 78 95 88`: scores or sizes. Phones split into pairs start with a trunk zero or
    // a `+`; fully split single digits are the obfuscation we must catch.
    values.len() >= 4 && values.iter().all(|v| v.len() == 2)
}
