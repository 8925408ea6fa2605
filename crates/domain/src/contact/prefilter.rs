//! The prefilter of [`super::find_all_contact_info`]: a necessary condition of every
//! heuristic, checked in one pass.
//!
//! It only ever answers "clean" for text on which no heuristic can fire, so it never changes a
//! verdict (a property test over the corpus and random text holds it to that); it answers
//! "might" for everything it cannot rule out cheaply. Each condition below names the heuristics
//! it stands for. Text with any non-ASCII character always goes to the heuristics: the regexes
//! are Unicode-aware (case folding, `\s`, Cyrillic and CJK service names) and reasoning about
//! that here would be fragile.

use std::sync::LazyLock;

use super::obfuscated_emails::MAIL_PROVIDERS;

/// Service and provider names as they appear once every non-letter is removed and the text is
/// lower-cased: the interleaved spellings (`s k y p e`, `whats app`, `pay-pal`) and the
/// two-word ones (`cash app`, `google pay`, `we chat`) all collapse to these. Heuristic 6.
const PREFILTER_SERVICE_ROOTS: &[&str] = &[
    "watap",
    "watsap",
    "wattap",
    "wattsap",
    "whatap",
    "whatsap",
    "whattap",
    "whattsap",
    "telegram",
    "telega",
    "skype",
    "viber",
    "wechat",
    "weixin",
    "discord",
    "threema",
    "wickr",
    "keybase",
    "kakao",
    "imessage",
    "facetime",
    "snapchat",
    "messenger",
    "signal",
    "paypal",
    "venmo",
    "cashapp",
    "cashtag",
    "zelle",
    "revolut",
    "skrill",
    "payoneer",
    "paytm",
    "phonepe",
    "gpay",
    "googlepay",
    "applepay",
];

/// Whole words that are service names too short to look for inside other words (heuristic 6)
/// or that introduce bank codes without digits (`swift`, `bic`: heuristic 4).
const PREFILTER_WORDS: &[&str] = &[
    "tg", "wa", "kik", "upi", "vpa", "icq", "zalo", "swift", "bic",
];

/// The first host word of every messenger and payment link (heuristic 1). Every link also
/// needs a dot (`.`, `dot`) or a colon (`skype:`, `tg://`).
const PREFILTER_LINK_HOSTS: &[&str] = &[
    "wa",
    "whatsapp",
    "t",
    "telegram",
    "tg",
    "viber",
    "sgnl",
    "weixin",
    "wechat",
    "skype",
    "join",
    "signal",
    "discord",
    "discordapp",
    "m",
    "messenger",
    "u",
    "line",
    "lin",
    "invite",
    "threema",
    "kik",
    "snapchat",
    "paypal",
    "venmo",
    "cash",
    "revolut",
    "monzo",
    "wise",
    "buymeacoffee",
    "ko",
];

/// The spelled digits of heuristic 8, which needs three of them.
const PREFILTER_DIGIT_WORDS: &[&str] = &[
    "zero", "oh", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
];

/// Spelled digits heuristic 8 needs at least.
const PREFILTER_DIGIT_WORDS_MIN: usize = 3;

/// The shortest run of letters that could be a wallet address without digits (a Tron
/// address is `T` and 33 base-58 characters; heuristic 5 accepts 25 and more for others).
const PREFILTER_WALLET_LETTERS_MIN: usize = 25;

/// Letters in the table of root beginnings.
const PREFILTER_ROOT_PREFIX_LETTERS: usize = 3;
/// Entries of that table: every lower-case trigram.
const PREFILTER_TRIGRAMS: usize = 26 * 26 * 26;

/// The trigrams [`PREFILTER_SERVICE_ROOTS`] start with: the scan over a text's letters compares
/// roots only where such a trigram starts, which is rare in prose, so it costs about one table
/// look-up per letter (a regex, or a loop over the roots, cost more than the heuristics the
/// prefilter is meant to skip).
static PREFILTER_ROOT_TRIGRAMS: LazyLock<Vec<bool>> = LazyLock::new(|| {
    let mut trigrams = vec![false; PREFILTER_TRIGRAMS];
    for root in PREFILTER_SERVICE_ROOTS {
        if let Some(index) = letter_trigram(root.as_bytes()) {
            trigrams[index] = true;
        }
    }
    trigrams
});

/// The trigram index of the first three bytes of `letters`, when all are lower-case letters.
fn letter_trigram(letters: &[u8]) -> Option<usize> {
    match letters.get(..PREFILTER_ROOT_PREFIX_LETTERS)? {
        [a @ b'a'..=b'z', b @ b'a'..=b'z', c @ b'a'..=b'z'] => {
            Some((usize::from(a - b'a') * 26 + usize::from(b - b'a')) * 26 + usize::from(c - b'a'))
        }
        _ => None,
    }
}

/// Whether the lower-case `letters` contain one of [`PREFILTER_SERVICE_ROOTS`].
fn contains_service_root(letters: &[u8]) -> bool {
    let trigrams = &*PREFILTER_ROOT_TRIGRAMS;
    (0..letters.len()).any(|start| {
        let rest = &letters[start..];
        letter_trigram(rest).is_some_and(|trigram| trigrams.get(trigram) == Some(&true))
            && PREFILTER_SERVICE_ROOTS
                .iter()
                .any(|root| rest.starts_with(root.as_bytes()))
    })
}

/// For each first letter, the lengths (bit n: n bytes) of the listed words that start with
/// it: a word whose first letter and length match none is not looked up at all.
static PREFILTER_WORD_SHAPES: LazyLock<[u32; 26]> = LazyLock::new(|| {
    let mut shapes = [0u32; 26];
    for word in PREFILTER_WORD_TABLE.keys() {
        if let (Some(first @ b'a'..=b'z'), Some(bit)) = (
            word.bytes().next(),
            u32::try_from(word.len())
                .ok()
                .and_then(|len| 1u32.checked_shl(len)),
        ) {
            shapes[usize::from(first - b'a')] |= bit;
        }
    }
    shapes
});

/// The longest word the word lists hold (`buymeacoffee`); longer words are compared with none.
const PREFILTER_WORD_BYTES_MAX: usize = 16;

/// What a whole word (lower-cased) tells the prefilter.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PrefilterWord {
    /// Nothing.
    Plain,
    /// One of [`PREFILTER_WORDS`]: the text might hold a detail.
    Trigger,
    /// `at`.
    At,
    /// `dot`.
    Dot,
    /// One of [`PREFILTER_LINK_HOSTS`].
    LinkHost,
    /// One of [`MAIL_PROVIDERS`].
    Provider,
    /// One of [`PREFILTER_DIGIT_WORDS`].
    DigitWord,
}

/// Every listed word and what it tells, for one hash lookup per word of a text. Where a word
/// is in several lists, the earlier (stronger) meaning is kept: a trigger, `at`, `dot`, a link
/// host, a provider, a spelled digit.
static PREFILTER_WORD_TABLE: LazyLock<std::collections::HashMap<&'static str, PrefilterWord>> =
    LazyLock::new(|| {
        let mut table = std::collections::HashMap::new();
        let lists: [(&[&'static str], PrefilterWord); 6] = [
            (PREFILTER_WORDS, PrefilterWord::Trigger),
            (&["at"], PrefilterWord::At),
            (&["dot"], PrefilterWord::Dot),
            (PREFILTER_LINK_HOSTS, PrefilterWord::LinkHost),
            (MAIL_PROVIDERS, PrefilterWord::Provider),
            (PREFILTER_DIGIT_WORDS, PrefilterWord::DigitWord),
        ];
        for (list, meaning) in lists {
            for &word in list {
                table.entry(word).or_insert(meaning);
            }
        }
        table
    });

fn prefilter_word(lower: &str) -> PrefilterWord {
    let listed_shape = match (lower.bytes().next(), u32::try_from(lower.len())) {
        (Some(first @ b'a'..=b'z'), Ok(len)) => 1u32
            .checked_shl(len)
            .is_some_and(|bit| PREFILTER_WORD_SHAPES[usize::from(first - b'a')] & bit != 0),
        _ => true,
    };
    if !listed_shape {
        return PrefilterWord::Plain;
    }
    PREFILTER_WORD_TABLE
        .get(lower)
        .copied()
        .unwrap_or(PrefilterWord::Plain)
}

/// Whether the letters of `word` begin with `swift` or `bic`: heuristic 4 takes a SWIFT/BIC
/// code glued to its name (`BICDEUTDEFF`, `swiftcodeDEUTDEFFXXX`), so the whole-word lists do
/// not cover it, and such a word may be longer than any listed word.
fn starts_bank_code_word(word: &str) -> bool {
    ["swift", "bic"].iter().any(|name| {
        word.get(..name.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(name))
    })
}

/// Whether `text`, as the heuristics read it, might contain a contact or payment detail: `false`
/// only when no heuristic could fire on it. Linear: one pass over the bytes and the words, and
/// one over the text's letters.
pub(super) fn might_contain(text: &str) -> bool {
    if !text.is_ascii() {
        return true;
    }
    let bytes = text.as_bytes();
    let mut has_dot = false;
    let mut has_colon = false;
    let mut has_bracket = false;
    for &byte in bytes {
        match byte {
            // Digits: digit runs, IBANs, sort codes, routing numbers, wallets (7, 4, 5). `@`:
            // e-mails and marked handles (2, 3, 6). `$`: cash tags (6).
            b'0'..=b'9' | b'@' | b'$' => return true,
            b'.' => has_dot = true,
            b':' => has_colon = true,
            b'[' | b'(' | b'{' | b'<' => has_bracket = true,
            _ => {}
        }
    }
    let mut word_at = false;
    let mut word_dot = false;
    let mut link_host = false;
    let mut provider = false;
    let mut digit_words = 0usize;
    let mut letters: Vec<u8> = Vec::with_capacity(text.len());
    let mut lower = [0u8; PREFILTER_WORD_BYTES_MAX];
    for word in text.split(|c: char| !c.is_ascii_alphabetic()) {
        if word.is_empty() {
            continue;
        }
        if word.len() >= PREFILTER_WALLET_LETTERS_MIN || starts_bank_code_word(word) {
            return true;
        }
        letters.extend(word.bytes().map(|byte| byte.to_ascii_lowercase()));
        let Some(buffer) = lower.get_mut(..word.len()) else {
            continue;
        };
        for (to, from) in buffer.iter_mut().zip(word.bytes()) {
            *to = from.to_ascii_lowercase();
        }
        let Ok(lowered) = std::str::from_utf8(buffer) else {
            continue;
        };
        match prefilter_word(lowered) {
            PrefilterWord::Trigger => return true,
            PrefilterWord::At => word_at = true,
            PrefilterWord::Dot => word_dot = true,
            PrefilterWord::LinkHost => link_host = true,
            PrefilterWord::Provider => provider = true,
            PrefilterWord::DigitWord => digit_words += 1,
            PrefilterWord::Plain => {}
        }
    }
    let dotted = has_dot || word_dot;
    // Obfuscated e-mails (3): an "at" and then a dot, a bracket (`[at] acme`) or a provider.
    if word_at && (dotted || has_bracket || provider) {
        return true;
    }
    // Links (1): a host word and a dot or a colon.
    if link_host && (dotted || has_colon) {
        return true;
    }
    // Spelled phone numbers (8).
    if digit_words >= PREFILTER_DIGIT_WORDS_MIN {
        return true;
    }
    // Service words (6), however spelled out.
    contains_service_root(&letters)
}
