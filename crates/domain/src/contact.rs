//! Detects contact and payment details in message text (rule R-C1).
//!
//! R-C1 lets contact details (e-mail, phone, messenger handles and links) and payment
//! details (PayPal / Venmo / Cash App handles and links, IBANs, card numbers) through only
//! inside the room of an active contract, so that clients and freelancers cannot take the
//! work, and the fees, off the platform before a contract exists.
//!
//! The detector is a set of independent heuristics, each documented where it lives with
//! the reason for it. Three choices apply to all of them:
//!
//! - **Offsets into the original text.** We never build a normalised copy of the body
//!   (lower-cased, separators removed, …) because its offsets would have to be mapped back;
//!   every heuristic matches the original text, case-insensitively where it matters, and
//!   reports byte offsets the caller can highlight.
//! - **Corroborating evidence before firing.** A false positive blocks an ordinary send with
//!   `contact_info_outside_contract`, while a miss can still be reported by the other party
//!   (R-P1). So a shape that also occurs in ordinary prose only fires with extra evidence: a
//!   messenger or payment word next to a handle, a mail provider or a spelled-out "dot" next
//!   to an English "at", a checksum for IBANs and cards, enough digits for a phone.
//! - **Linear time, no panics.** Every regex is compiled once (`LazyLock`) and the `regex`
//!   crate matches in linear time; every look-around done by hand is bounded to a small
//!   window and only ever slices the text at char boundaries, so the scan is total and
//!   linear for any `&str`.
//!
//! The heuristics, in the order [`find_all_contact_info`] runs them:
//!
//! 1. Messenger and payment links (`wa.me/…`, `t.me/…`, `paypal.me/…`, `cash.app/$…`, …),
//!    also with a spelled-out or bracketed dot (`t dot me/…`).
//! 2. Plain e-mail addresses, minus look-alikes from developer chat (`icon@2x.png`,
//!    `git@github.com:org/repo`, `ssh deploy@host.com`, `user:pass@host` inside URLs).
//! 3. Obfuscated e-mail addresses: `[at]`, `(at)`, ` @ `, ` at ` combined with `[dot]`,
//!    ` dot `, ` . `, a known top-level domain or a known mail provider.
//! 4. IBANs (country length table and mod-97 checksum), SWIFT/BIC codes, UK sort codes and
//!    US routing numbers introduced by their names.
//! 5. Crypto wallet addresses (bech32 always, other shapes next to a wallet word).
//! 6. Messenger and payment handles introduced by a service word, also spelled out
//!    (`whats app`, `tele gram`, `s k y p e`): `telegram: @john`, `my skype is john.smith`,
//!    `@john on signal`, `venmo @John-Smith-12`, `$johnsmith on cash app`.
//! 7. Digit runs: phone numbers (digits split by spaces, dots, dashes, parentheses) and card
//!    numbers (Luhn), after excluding dates, times, versions, IP addresses, decimals,
//!    thousands, prices, quantities, years, order numbers and counting sequences.
//! 8. Phone numbers with spelled-out digits (`five five five one two three …`).
//!
//! Before any of them, [`might_contain_contact_info`] (one pass, no regex) clears the
//! ordinary ASCII text none of them could fire on, which is most messages.

use std::sync::LazyLock;

use regex::Regex;

/// What kind of contact or payment detail was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactKind {
    /// An e-mail address, plain or obfuscated (`name [at] mail [dot] com`).
    Email,
    /// A phone number, digits possibly split by spaces, dots or dashes.
    Phone,
    /// A messenger handle or link (Skype, WhatsApp, Telegram, Signal, …).
    Messenger,
    /// A payment handle or link (PayPal, Venmo, Cash App, …).
    Payment,
    /// An IBAN.
    Iban,
    /// A payment card number.
    CardNumber,
}

/// One detected contact detail: its kind and its byte range in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactMatch {
    /// What was found.
    pub kind: ContactKind,
    /// Byte offset where the match starts in the original text.
    pub start: usize,
    /// Byte offset just past the match in the original text.
    pub end: usize,
}

/// Returns the first contact or payment detail found in `text`, if any.
///
/// "First" means the one that starts earliest in the text. Total for any input.
pub fn find_contact_info(text: &str) -> Option<ContactMatch> {
    find_all_contact_info(text).into_iter().next()
}

/// Whether `text` contains any contact or payment detail (R-C1).
pub fn contains_contact_info(text: &str) -> bool {
    find_contact_info(text).is_some()
}

/// Returns every contact or payment detail found in `text`, in text order.
///
/// Matches never overlap: when two heuristics find overlapping ranges, the one that
/// starts first (and, on a tie, the longer one) is kept.
pub fn find_all_contact_info(text: &str) -> Vec<ContactMatch> {
    if !might_contain_contact_info(text) {
        return Vec::new();
    }
    find_all_contact_info_without_prefilter(text)
}

/// [`find_all_contact_info`] without [`might_contain_contact_info`] in front: every heuristic
/// runs. The same verdicts, only slower; it exists so that tests and benchmarks can hold the
/// prefilter to that.
pub fn find_all_contact_info_without_prefilter(text: &str) -> Vec<ContactMatch> {
    let mut found = Vec::new();
    find_links(text, &mut found);
    find_plain_emails(text, &mut found);
    find_obfuscated_emails(text, &mut found);
    find_ibans(text, &mut found);
    find_bank_details(text, &mut found);
    find_crypto_addresses(text, &mut found);
    find_service_handles(text, &mut found);
    find_digit_runs(text, &mut found);
    find_spelled_digits(text, &mut found);

    // Stable sort: on identical ranges the heuristic that ran first wins, so a link is
    // reported as a link rather than as the handle inside it.
    found.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
    let mut out: Vec<ContactMatch> = Vec::with_capacity(found.len());
    for m in found {
        match out.last() {
            Some(last) if m.start < last.end => {}
            _ => out.push(m),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// The prefilter: a necessary condition of every heuristic, checked in one pass.
//
// It only ever answers "clean" for text on which no heuristic can fire, so it never changes a
// verdict (a property test over the corpus and random text holds it to that); it answers
// "might" for everything it cannot rule out cheaply. Each condition below names the heuristics
// it stands for. Text with any non-ASCII character always goes to the heuristics: the regexes
// are Unicode-aware (case folding, `\s`, Cyrillic and CJK service names) and reasoning about
// that here would be fragile.
// ---------------------------------------------------------------------------------------

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

/// Whether `text` might contain a contact or payment detail: `false` only when no heuristic of
/// [`find_all_contact_info`] could fire on it. Linear: one pass over the bytes and the words,
/// and one over the text's letters.
pub fn might_contain_contact_info(text: &str) -> bool {
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

// ---------------------------------------------------------------------------------------
// Small helpers. Everything that slices the text goes through these, so no slice can fall
// inside a multi-byte character whatever offsets the arithmetic produces.
// ---------------------------------------------------------------------------------------

fn compile(pattern: &str) -> Regex {
    Regex::new(pattern).expect("contact detector pattern is a valid regex")
}

fn hit(kind: ContactKind, start: usize, end: usize) -> ContactMatch {
    ContactMatch { kind, start, end }
}

/// The largest char boundary at or below `i`.
fn floor_boundary(text: &str, i: usize) -> usize {
    let mut i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The smallest char boundary at or above `i`.
fn ceil_boundary(text: &str, i: usize) -> usize {
    let mut i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// Up to `max` bytes of text ending at `end`, and the offset where that window starts.
fn window_before(text: &str, end: usize, max: usize) -> (usize, &str) {
    let end = floor_boundary(text, end);
    let start = ceil_boundary(text, end.saturating_sub(max));
    (start, text.get(start..end).unwrap_or(""))
}

/// Up to `max` bytes of text starting at `start`.
fn window_after(text: &str, start: usize, max: usize) -> &str {
    let start = ceil_boundary(text, start);
    let end = floor_boundary(text, start.saturating_add(max));
    text.get(start..end).unwrap_or("")
}

fn char_before(text: &str, i: usize) -> Option<char> {
    text.get(..i).and_then(|s| s.chars().next_back())
}

fn char_after(text: &str, i: usize) -> Option<char> {
    text.get(i..).and_then(|s| s.chars().next())
}

/// The last `n` words (ASCII letters and digits) of `s`, lower-cased.
fn last_words(s: &str, n: usize) -> Vec<String> {
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
fn first_word(s: &str) -> String {
    s.trim_start()
        .chars()
        .take_while(char::is_ascii_alphabetic)
        .take(24)
        .collect::<String>()
        .to_ascii_lowercase()
}

const CURRENCY_SYMBOLS: &[char] = &[
    '$', '€', '£', '¥', '₹', '₽', '₴', '₸', '₺', '₩', '₦', '¢', '₱', '฿', '₫', '₪',
];

// ---------------------------------------------------------------------------------------
// 1. Links to messengers and payment services.
// ---------------------------------------------------------------------------------------

/// A dot between host labels: literal (possibly spaced), bracketed (`[.]`, `(dot)`) or the
/// word `dot`, because `wa dot me/…` and `t . me / john` are the same links as `wa.me/…`.
const LINK_DOT: &str = r"(?:\s*[\[\(\{]\s*(?:\.|dot)\s*[\]\)\}]\s*|\s+dot\s+|\s*\.\s*)";
/// A slash, possibly spaced out or spelled (`t.me / john`, `wa dot me slash 1555…`).
const LINK_SLASH: &str = r"(?:\s*/\s*|\s+slash\s+)";
/// The path after the host: at least one word character, so `t.me/` alone does not fire.
const LINK_PATH: &str = r"[\w@$+~%.\-/#?=&]*\w";

fn link_regex(hosts: &[&str]) -> Regex {
    let alternatives: Vec<String> = hosts
        .iter()
        .map(|h| {
            h.replace("{D}", LINK_DOT)
                .replace("{S}", LINK_SLASH)
                .replace("{P}", LINK_PATH)
        })
        .collect();
    compile(&format!(
        r"(?i)\b(?:https?://)?(?:www\.)?(?:{})",
        alternatives.join("|")
    ))
}

/// Links that open a conversation in a messenger. Only hosts whose whole purpose is to
/// reach a person are listed: a link to a company's Instagram or LinkedIn page is a
/// portfolio as often as it is a contact, so those are left to reports (R-P1).
static MESSENGER_LINK_RE: LazyLock<Regex> = LazyLock::new(|| {
    link_regex(&[
        r"wa{D}me{S}{P}",
        r"(?:api|chat|web){D}whatsapp{D}com{S}{P}",
        r"whatsapp{D}com{S}(?:send|dl|channel|qr|message|catalog)\b\S*",
        r"(?:t|telegram){D}(?:me|dog){S}{P}",
        r"(?:tg|whatsapp|viber|sgnl|weixin|wechat)://\S+",
        r"skype:(?:live:)?[\w.\-:]+\?(?:call|chat|add|userinfo)\b",
        r"skype:live:[\w.\-:]+",
        r"join{D}skype{D}com{S}{P}",
        r"signal{D}(?:me|group){S}{P}",
        r"discord{D}gg{S}{P}",
        r"discord(?:app)?{D}com{S}(?:invite|users){S}{P}",
        r"m{D}me{S}{P}",
        r"messenger{D}com{S}t{S}{P}",
        r"u{D}wechat{D}com{S}{P}",
        r"line{D}me{S}{P}",
        r"lin{D}ee{S}{P}",
        r"viber{D}click{S}{P}",
        r"invite{D}viber{D}com\S*",
        r"threema{D}id{S}{P}",
        r"kik{D}me{S}{P}",
        r"snapchat{D}com{S}add{S}{P}",
    ])
});

/// Links that send money to a person outside the platform.
static PAYMENT_LINK_RE: LazyLock<Regex> = LazyLock::new(|| {
    link_regex(&[
        r"paypal{D}me{S}{P}",
        r"paypal{D}com{S}(?:paypalme|send|pools|donate|qrcodes)\S*",
        r"(?:account{D})?venmo{D}com{S}{P}",
        r"cash{D}(?:app|me){S}{P}",
        r"revolut{D}me{S}{P}",
        r"monzo{D}me{S}{P}",
        r"wise{D}com{S}pay{S}{P}",
        r"buymeacoffee{D}com{S}{P}",
        r"ko-fi{D}com{S}{P}",
    ])
});

fn find_links(text: &str, found: &mut Vec<ContactMatch>) {
    for m in MESSENGER_LINK_RE.find_iter(text) {
        found.push(hit(ContactKind::Messenger, m.start(), m.end()));
    }
    for m in PAYMENT_LINK_RE.find_iter(text) {
        found.push(hit(ContactKind::Payment, m.start(), m.end()));
    }
}

// ---------------------------------------------------------------------------------------
// 2. Plain e-mail addresses.
// ---------------------------------------------------------------------------------------

static EMAIL_RE: LazyLock<Regex> = LazyLock::new(|| {
    compile(
        r"(?i)[a-z0-9][a-z0-9._%+\-]{0,63}@[a-z0-9][a-z0-9\-]{0,62}(?:\.[a-z0-9][a-z0-9\-]{0,62})*\.[a-z]{2,24}\b",
    )
});

/// Retina asset suffixes (`icon@2x.png`): the part after `@` is a scale, not a domain.
static RETINA_RE: LazyLock<Regex> = LazyLock::new(|| compile(r"(?i)^[0-9]+(?:\.[0-9]+)?x$"));

/// "Top-level domains" that are really file extensions (`logo@2x.png`, `hero@large.jpg`).
const FILE_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "tif", "tiff", "pdf", "psd", "sketch",
    "fig", "xd", "js", "ts", "jsx", "tsx", "css", "scss", "html", "json", "xml", "yaml", "yml",
    "txt", "rar", "mp3", "mp4", "wav", "exe", "dmg", "apk", "heic", "avif", "ico", "woff", "woff2",
    "ttf", "otf", "csv", "xlsx", "docx", "pptx",
];

/// Commands whose argument looks like an e-mail but is a login on a server.
const SHELL_COMMANDS: &[&str] = &["ssh", "scp", "sftp", "rsync", "mosh", "telnet"];

fn find_plain_emails(text: &str, found: &mut Vec<ContactMatch>) {
    for m in EMAIL_RE.find_iter(text) {
        let s = m.as_str();
        let Some((local, domain)) = s.split_once('@') else {
            continue;
        };
        let first_label = domain.split('.').next().unwrap_or("");
        let tld = domain.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
        if RETINA_RE.is_match(first_label) || FILE_EXTENSIONS.contains(&tld.as_str()) {
            continue;
        }
        // `git@github.com:org/repo.git` is an SSH remote, not a mailbox.
        if local.eq_ignore_ascii_case("git")
            || (char_after(text, m.end()) == Some(':')
                && char_after(text, m.end() + 1).is_some_and(|c| !c.is_whitespace()))
        {
            continue;
        }
        // `user:pass@host.com` inside a URL is a credential of a web site, and
        // `ssh deploy@staging.example.com` is a server login: neither is a way to reach
        // the person.
        let (_, before) = window_before(text, m.start(), 200);
        let current_word = before.rsplit(char::is_whitespace).next().unwrap_or(before);
        if current_word.contains("://") {
            continue;
        }
        let previous = last_words(before, 1);
        if previous
            .first()
            .is_some_and(|w| SHELL_COMMANDS.contains(&w.as_str()))
            && before.ends_with(' ')
        {
            continue;
        }
        found.push(hit(ContactKind::Email, m.start(), m.end()));
    }
}

// ---------------------------------------------------------------------------------------
// 3. Obfuscated e-mail addresses.
//
// We find every "at" token (`@`, `[at]`, `(at)`, ` at `) and look left for a local part and
// right for a domain whose labels are joined by "dot" tokens (`.`, `[dot]`, ` dot `, ` . `).
// How much evidence we need depends on how unambiguous the "at" is:
// - a bracketed `[at]`/`(at)` or a spaced ` @ ` exists only to obfuscate an address, so a
//   known top-level domain, a known mail provider or (bracketed only) any domain word will do;
// - the English word ` at ` ("meet at noon", "look at example.com") needs a spelled-out or
//   bracketed dot *and* a known top-level domain, or a known mail provider, or a local part
//   that looks like a mailbox (`john.smith`, `j_smith`); and its local part must not be a
//   common English word ("look at the site dot com" names a web site, not a mailbox).
// ---------------------------------------------------------------------------------------

static AT_TOKEN_RE: LazyLock<Regex> = LazyLock::new(|| {
    compile(
        r"(?i)(?P<br>\s*[\[\(\{<]\s*(?:at|@)\s*[\]\)\}>]\s*)|(?P<sym>\s*[@＠]\s*)|(?P<word>\s+at\s+)",
    )
});

const LABEL: &str = r"[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?";
const DOT_SEP: &str = r"(?:\s*[\[\(\{<]\s*(?:dot|\.)\s*[\]\)\}>]\s*|\s+dot\s+|\s+\.\s+|\.|[ \t]+)";

static FIRST_LABEL_RE: LazyLock<Regex> = LazyLock::new(|| compile(&format!(r"(?i)^{LABEL}")));
static NEXT_LABEL_RE: LazyLock<Regex> =
    LazyLock::new(|| compile(&format!(r"(?i)^(?P<sep>{DOT_SEP})(?P<label>{LABEL})")));

/// Obfuscated local parts can themselves contain spelled-out dots (`john dot smith at …`);
/// this only widens the reported range to the start of the address.
static LOCAL_EXTENSION_RE: LazyLock<Regex> = LazyLock::new(|| {
    compile(
        r"(?i)(?:[a-z0-9][a-z0-9._%+\-]*(?:\s*[\[\(\{]\s*(?:dot|\.)\s*[\]\)\}]\s*|\s+dot\s+))+$",
    )
});

/// Top-level domains we accept after an obfuscated dot. A closed list, because after a
/// spelled-out " dot " any English word could otherwise pass for a TLD.
const KNOWN_TLDS: &[&str] = &[
    "com", "net", "org", "edu", "gov", "io", "co", "me", "info", "biz", "us", "uk", "ca", "au",
    "de", "fr", "es", "it", "nl", "pl", "ru", "ua", "by", "kz", "in", "br", "mx", "ar", "ch", "at",
    "se", "no", "fi", "dk", "be", "cz", "sk", "hu", "ro", "bg", "gr", "pt", "ie", "il", "tr", "jp",
    "cn", "kr", "sg", "hk", "nz", "za", "eu", "dev", "app", "ai", "xyz", "tech", "pro", "online",
    "site", "store", "studio", "design", "agency", "email", "mail", "cloud", "space", "live", "tv",
    "cc", "ly", "gg", "ng", "ke", "pk", "ph", "id", "my", "vn", "th", "lt", "lv", "ee", "rs", "hr",
    "si", "ae", "sa", "eg", "ma", "cl", "pe", "ve", "uy",
];

/// Mail providers. Seeing one right after an "at" is strong evidence of a mailbox even
/// when the dot is literal (`john at gmail.com`) or missing (`john [at] gmail`).
#[rustfmt::skip]
const MAIL_PROVIDERS: &[&str] = &[
    "gmail", "googlemail", "yahoo", "ymail", "hotmail", "outlook", "icloud", "aol", "proton",
    "protonmail", "yandex", "gmx", "zoho", "fastmail", "tutanota", "rediffmail", "qq", "mailru",
    "rambler", "ukr",
];

/// Providers whose name is also an ordinary word: only trusted when a TLD follows.
const WEAK_MAIL_PROVIDERS: &[&str] = &["live", "msn", "me", "mac", "mail", "pm", "inbox", "web"];

/// Words that precede an English "at" in ordinary sentences ("look at", "work at",
/// "available at", "me at"). When the local part is one of these, the "address" is prose.
#[rustfmt::skip]
const AT_STOPWORDS: &[&str] = &[
    "a", "an", "the", "look", "looks", "looking", "looked", "meet", "meeting", "met", "be",
    "is", "am", "are", "was", "were", "been", "being", "me", "us", "you", "him", "her", "them",
    "it", "this", "that", "these", "those", "here", "there", "work", "works", "worked",
    "working", "job", "live", "lives", "lived", "based", "located", "hosted", "host",
    "deployed", "available", "online", "site", "website", "page", "pages", "store", "shop",
    "blog", "portfolio", "posted", "published", "listed", "check", "visit", "see", "seen",
    "find", "found", "stay", "staying", "start", "starts", "started", "end", "ends", "arrive",
    "arrived", "call", "email", "mail", "write", "reach", "text", "message", "ping", "intern",
    "employed", "engineer", "designer", "developer", "manager", "lead", "head", "director",
    "founder", "cto", "ceo", "someone", "somebody", "anyone", "people", "team", "folks",
    "office", "home", "school", "university", "fine", "good", "great", "best", "price", "rate",
    "priced", "charged", "billed", "paid", "sold", "aim", "aimed", "hit", "stop", "stopped",
    "land", "landed", "up", "down", "out", "in", "on", "off", "only", "even", "just", "still",
    "both", "all", "what", "where", "or", "and", "but", "so", "then", "than", "time", "times",
    "once", "twice", "least", "most", "last", "first", "right", "left", "exactly", "around",
    "about", "directly", "help", "expert", "better", "bad", "worse", "not", "now", "today",
    "tomorrow", "tonight", "noon", "night", "morning", "evening", "lunch", "dinner", "stuff",
    "things", "files", "file", "link", "links", "design", "designs", "mockup", "mockups",
    "version", "build", "release", "staging", "production", "prod", "docs", "documentation",
    "guide", "hosting", "running", "runs", "run", "sits", "sit", "sitting", "pointed", "points",
    "point", "glance", "hello", "hi", "hey", "thanks", "thank", "we", "i", "they", "he", "she",
    "also", "already", "jobs", "interned", "studied", "study", "services", "stuck", "logged",
    "signed", "account", "accounts", "inbox", "support", "login", "signup", "registered",
    "reviewed", "tested", "shared", "saved",
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum AtKind {
    Bracketed,
    Symbol,
    Word,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum DotKind {
    /// A plain `.` as in any address.
    Literal,
    /// `[dot]`, `(.)`, ` dot `, ` . `: only ever written to hide an address.
    Obfuscated,
    /// Just a space (`gmail com`): only accepted right after a known provider.
    Space,
}

fn dot_kind(sep: &str) -> DotKind {
    if sep == "." {
        DotKind::Literal
    } else if sep.chars().all(char::is_whitespace) {
        DotKind::Space
    } else {
        DotKind::Obfuscated
    }
}

fn is_strong_provider(label: &str) -> bool {
    MAIL_PROVIDERS.contains(&label.to_ascii_lowercase().as_str())
}

fn is_provider(label: &str) -> bool {
    let l = label.to_ascii_lowercase();
    MAIL_PROVIDERS.contains(&l.as_str()) || WEAK_MAIL_PROVIDERS.contains(&l.as_str())
}

fn is_known_tld(label: &str) -> bool {
    KNOWN_TLDS.contains(&label.to_ascii_lowercase().as_str())
}

/// A local part that looks like a mailbox rather than an English word: `john.smith`,
/// `j_smith`, `chris92`. Digits count only after a name, because versions
/// (`v1.2 at acme.com`) have digits too.
fn local_looks_like_mailbox(local: &str) -> bool {
    static MAILBOX_RE: LazyLock<Regex> =
        LazyLock::new(|| compile(r"(?i)_|[a-z]{2,}\.[a-z]{2,}|[a-z]{3,}[0-9]{2,}$"));
    MAILBOX_RE.is_match(local)
}

fn find_obfuscated_emails(text: &str, found: &mut Vec<ContactMatch>) {
    for caps in AT_TOKEN_RE.captures_iter(text) {
        let Some(token) = caps.get(0) else {
            continue;
        };
        let at_kind = if caps.name("br").is_some() {
            AtKind::Bracketed
        } else if caps.name("sym").is_some() {
            AtKind::Symbol
        } else {
            AtKind::Word
        };
        let tok = token.as_str();
        let space_before = tok.starts_with(char::is_whitespace);
        let space_after = tok.ends_with(char::is_whitespace);
        // `thanks @maria.dev` is a mention: whitespace before the `@` and none after.
        if at_kind == AtKind::Symbol && space_before && !space_after {
            continue;
        }

        // Local part: the mailbox characters right before the token (bounded).
        let (win_start, win) = window_before(text, token.start(), 64);
        let local_len = win
            .bytes()
            .rev()
            .take_while(|b| b.is_ascii_alphanumeric() || b"._%+-".contains(b))
            .count();
        let mut local_start = win_start + win.len() - local_len;
        let mut local = text.get(local_start..token.start()).unwrap_or("");
        while let Some(c) = local.chars().next() {
            if c.is_ascii_alphanumeric() {
                break;
            }
            local_start += c.len_utf8();
            local = &local[c.len_utf8()..];
        }
        if local.is_empty() {
            continue;
        }
        if at_kind == AtKind::Word
            && (local.len() < 2 || AT_STOPWORDS.contains(&local.to_ascii_lowercase().as_str()))
        {
            continue;
        }

        // Domain: labels joined by dot tokens, right after the "at" token (bounded).
        let right = window_after(text, token.end(), 400);
        let Some(first) = FIRST_LABEL_RE.find(right) else {
            continue;
        };
        let first_label = first.as_str();
        let mut pos = first.end();
        let mut any_obfuscated = false;
        let mut best: Option<(usize, bool)> = None; // (end within `right`, obfuscated so far)
        for i in 0..6 {
            let Some(part) = right.get(pos..).and_then(|r| NEXT_LABEL_RE.captures(r)) else {
                break;
            };
            let (Some(sep), Some(label), Some(whole)) =
                (part.name("sep"), part.name("label"), part.get(0))
            else {
                break;
            };
            let kind = dot_kind(sep.as_str());
            match kind {
                DotKind::Space => {
                    // `gmail com`: a space only stands for a dot right after a provider.
                    if !(i == 0 && is_strong_provider(first_label) && is_known_tld(label.as_str()))
                    {
                        break;
                    }
                    any_obfuscated = true;
                }
                DotKind::Obfuscated => any_obfuscated = true,
                DotKind::Literal => {}
            }
            pos += whole.end();
            let tld_ok = is_known_tld(label.as_str())
                || (kind == DotKind::Literal
                    && at_kind != AtKind::Word
                    && (2..=6).contains(&label.as_str().len())
                    && label.as_str().bytes().all(|b| b.is_ascii_alphabetic()));
            if tld_ok {
                best = Some((pos, any_obfuscated));
            }
        }

        // A plain `john@acme.com` is the plain e-mail heuristic's business (it knows the
        // look-alikes to skip); here an unspaced `@` only adds the provider-without-TLD case.
        let plain_symbol = at_kind == AtKind::Symbol && !space_before && !space_after;
        let end_in_right = match (at_kind, best) {
            (AtKind::Symbol, Some((end, obfuscated))) if !plain_symbol || obfuscated => Some(end),
            (AtKind::Bracketed, Some((end, _))) => Some(end),
            (AtKind::Bracketed, None) if first_label.len() >= 2 => Some(first.end()),
            (AtKind::Bracketed | AtKind::Symbol, None) if is_strong_provider(first_label) => {
                Some(first.end())
            }
            (AtKind::Word, Some((end, obfuscated)))
                if obfuscated || is_provider(first_label) || local_looks_like_mailbox(local) =>
            {
                Some(end)
            }
            (AtKind::Word, None)
                if is_strong_provider(first_label) && local_looks_like_mailbox(local) =>
            {
                Some(first.end())
            }
            _ => None,
        };
        let Some(end_in_right) = end_in_right else {
            continue;
        };
        let (ext_start, ext_win) = window_before(text, local_start, 64);
        let start = LOCAL_EXTENSION_RE
            .find(ext_win)
            .map_or(local_start, |m| ext_start + m.start());
        found.push(hit(ContactKind::Email, start, token.end() + end_in_right));
    }
}

// ---------------------------------------------------------------------------------------
// 4. IBANs and other bank details.
// ---------------------------------------------------------------------------------------

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

fn find_ibans(text: &str, found: &mut Vec<ContactMatch>) {
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

fn find_bank_details(text: &str, found: &mut Vec<ContactMatch>) {
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

// ---------------------------------------------------------------------------------------
// 5. Crypto wallet addresses.
// ---------------------------------------------------------------------------------------

static BECH32_RE: LazyLock<Regex> = LazyLock::new(|| compile(r"\bbc1[02-9ac-hj-np-z]{25,62}\b"));
/// Ethereum / legacy Bitcoin / Tron shapes. A 40-hex-digit `0x…` string is also a smart
/// contract address in a developer's chat, so these need a word about paying or a wallet
/// nearby (and chain names like "ETH" do not count: "deploy on ETH mainnet" is dev talk).
static WALLET_RE: LazyLock<Regex> = LazyLock::new(|| {
    compile(r"\b(?:0x[0-9a-fA-F]{40}|[13][1-9A-HJ-NP-Za-km-z]{25,34}|T[1-9A-HJ-NP-Za-km-z]{33})\b")
});
static WALLET_WORD_RE: LazyLock<Regex> = LazyLock::new(|| {
    compile(
        r"(?i)\b(?:wallet|usdt|usdc|btc|bitcoin|crypto|trc-?20|bep-?20|binance|metamask|pay|paid|payment|send|tip|tips|donate|donations)\b",
    )
});

fn find_crypto_addresses(text: &str, found: &mut Vec<ContactMatch>) {
    for m in BECH32_RE.find_iter(text) {
        found.push(hit(ContactKind::Payment, m.start(), m.end()));
    }
    for m in WALLET_RE.find_iter(text) {
        let (_, before) = window_before(text, m.start(), 80);
        if WALLET_WORD_RE.is_match(before) {
            found.push(hit(ContactKind::Payment, m.start(), m.end()));
        }
    }
}

// ---------------------------------------------------------------------------------------
// 6. Messenger and payment handles introduced by a service word.
//
// A bare mention of a service ("do you use Telegram?", "PayPal fees are high") carries no
// contact detail and does not fire; R-C1 is about the handle. A handle fires when it sits
// next to a service word: right after it (through a few filler words: "my telegram is
// @john", "skype: live:.cid.123", "find me on skype as john.smith"), or right before it
// ("@john on telegram", "$jsmith (cash app)"). What counts as a handle depends on the
// evidence: `@name`, `$cashtag`, `live:…` and `name#1234` are handles anywhere; a word with
// digits, `_` or an inner `.` is a handle after a service word; a plain word only after an
// explicit "username:"-style connector, or as "my skype is johnsmith" at the end of a
// clause, and never when it is a common English word ("my skype is broken").
// ---------------------------------------------------------------------------------------

/// `w[sep]h[sep]a…`: one optional separator between letters catches `whats app`,
/// `tele-gram`, `s k y p e`, `w.h.a.t.s.a.p.p` without listing every spelling.
fn interleave(word: &str) -> String {
    let letters: Vec<String> = word.chars().map(|c| c.to_string()).collect();
    letters.join(r"[\s.*_'’\-]?")
}

struct Service {
    pattern: String,
    kind: ContactKind,
    /// Also an ordinary word or abbreviation ("signal", "tg", "wa"): needs stronger handles.
    weak: bool,
}

fn services() -> Vec<Service> {
    let strong = |pattern: String, kind| Service {
        pattern,
        kind,
        weak: false,
    };
    let weak = |pattern: String, kind| Service {
        pattern,
        kind,
        weak: true,
    };
    use ContactKind::{Messenger, Payment};
    vec![
        strong(
            format!(
                r"\b(?:{}|wh?at['’]?s[\s\-]?ap{{1,2}}|wh?att?s?ap{{1,2}})\b|(?:ватсап|вотсап|вацап)",
                interleave("whatsapp")
            ),
            Messenger,
        ),
        strong(
            format!(r"\b(?:{}|telegramm|telega)\b|(?:телеграмм?|телег[аеу])", interleave("telegram")),
            Messenger,
        ),
        strong(format!(r"\b(?:{})\b|скайп", interleave("skype")), Messenger),
        strong(format!(r"\b(?:{})\b|вайбер", interleave("viber")), Messenger),
        strong(r"\b(?:we[\-_.]?chat|weixin)\b|微信".to_string(), Messenger),
        strong(r"\bdiscord(?:app)?\b".to_string(), Messenger),
        strong(
            r"\b(?:threema|icq|wickr|keybase|zalo|kakao(?:\s?talk)?|imessage|facetime|snapchat|(?:fb|facebook)\s?messenger)\b"
                .to_string(),
            Messenger,
        ),
        weak(r"\b(?:signal|tg|wa|kik|messenger)\b".to_string(), Messenger),
        strong(format!(r"\b(?:{})\b", interleave("paypal")), Payment),
        strong(
            r"\b(?:venmo|cash\s?app|cashtag|zelle|revolut|skrill|payoneer|paytm|phonepe|upi|vpa)\b"
                .to_string(),
            Payment,
        ),
        weak(r"\b(?:gpay|google\s?pay|apple\s?pay)\b".to_string(), Payment),
    ]
}

struct ServiceTable {
    regex: Regex,
    info: Vec<(ContactKind, bool)>,
}

static SERVICES: LazyLock<ServiceTable> = LazyLock::new(|| {
    let list = services();
    let pattern = list
        .iter()
        .map(|s| format!("({})", s.pattern))
        .collect::<Vec<_>>()
        .join("|");
    ServiceTable {
        regex: compile(&format!("(?i){pattern}")),
        info: list.iter().map(|s| (s.kind, s.weak)).collect(),
    }
});

/// Words that may sit between a service word and the handle it introduces.
const HANDLE_FILLERS: &[&str] = &[
    "is", "are", "id", "name", "username", "user", "handle", "nick", "nickname", "account", "acc",
    "login", "me", "at", "as", "on", "via", "add", "here", "my", "its", "it's", "it’s", "number",
    "tag", "cashtag", "link", "profile", "contact", "details", "the", "i'm", "i’m", "im", "am",
    "i", "find", "search", "message", "msg", "dm", "ping", "text", "write", "reach", "under",
    "called", "named", "it", "just", "also", "to", "pls", "please", "send", "mine", "address",
    "email",
];

/// Fillers that announce a name: after these even a plain word is taken as a handle.
const HANDLE_CONNECTORS: &[&str] = &[
    "id", "name", "username", "user", "handle", "nick", "nickname", "login", "tag", "cashtag",
    "account", "acc", "address", "as", "under", "called", "named",
];

/// When the word right after a service word is one of these, the service is the topic of
/// the sentence ("telegram bot", "paypal fees", "skype call"), not a way to reach someone.
#[rustfmt::skip]
const SERVICE_TOPICS: &[&str] = &[
    "bot", "bots", "api", "apis", "integration", "integrations", "group", "groups", "channel",
    "channels", "app", "apps", "webhook", "webhooks", "sdk", "clone", "business", "desktop",
    "web", "client", "premium", "ads", "sticker", "stickers", "theme", "themes", "mini", "call",
    "calls", "meeting", "meetings", "status", "story", "stories", "notification",
    "notifications", "template", "templates", "widget", "button", "buttons", "icon", "icons",
    "logo", "logos", "plugin", "share", "sharing", "auth", "oauth", "checkout", "gateway",
    "fee", "fees", "invoice", "invoices", "payments", "payouts", "payout", "ui", "ux", "design",
    "redesign", "feature", "features", "support", "style", "export", "import",
];

/// Plain words that are never a handle, whatever connector precedes them: the states,
/// quantifiers and function words that follow "my skype is …", "telegram as …", "PayPal: …".
#[rustfmt::skip]
const HANDLE_STOPWORDS: &[&str] = &[
    "yes", "no", "not", "none", "nothing", "same", "fine", "ok", "okay", "good", "great",
    "better", "best", "bad", "worse", "worst", "down", "up", "broken", "blocked", "banned",
    "dead", "gone", "slow", "fast", "free", "busy", "available", "unavailable", "offline",
    "online", "active", "inactive", "deleted", "disabled", "suspended", "closed", "open",
    "private", "public", "ready", "new", "old", "above", "below", "the", "a", "an", "this",
    "that", "these", "those", "there", "here", "it", "its", "is", "are", "was", "were", "be",
    "been", "please", "pls", "thanks", "thank", "sorry", "later", "soon", "now", "today",
    "tomorrow", "tonight", "yesterday", "only", "also", "still", "just", "really", "very",
    "works", "working", "work", "preferred", "instead", "too", "either", "neither", "both",
    "all", "any", "some", "mine", "yours", "whatever", "and", "or", "but", "if", "then", "so",
    "because", "since", "for", "from", "with", "without", "to", "of", "on", "in", "at", "by",
    "as", "we", "you", "he", "she", "they", "i", "me", "my", "your", "our", "their", "his",
    "her", "us", "them", "what", "which", "who", "when", "where", "why", "how", "sure", "maybe",
    "probably", "definitely", "actually", "basically", "usually", "mostly", "currently",
    "again", "more", "less", "much", "many", "few", "already", "yet", "never", "always",
    "sometimes", "often", "call", "calls", "chat", "chats", "video", "voice", "message",
    "messages", "group", "groups", "app", "bot", "channel", "account", "number", "link", "id",
    "name", "username", "handle", "profile", "unknown", "tbd", "hidden", "secret", "default",
    "required", "optional", "needed", "necessary", "enough", "well", "usual", "before", "long",
    "backup", "fallback", "alternative", "option", "main", "primary", "secondary", "discussed",
    "agreed", "planned", "mentioned", "promised", "requested", "follows", "possible", "such",
    "normal", "standard", "expected", "intended", "fixed", "updated", "outdated", "installed",
    "uninstalled", "verified", "unverified", "limited", "restricted", "linked", "connected",
    "disconnected", "weird", "buggy", "glitchy", "laggy", "unstable", "hacked", "lost", "full",
    "empty", "set", "setup", "done", "pending", "paused", "muted", "silent", "off",
    "everything", "anything", "something", "nope", "yeah", "yep", "sounds", "perfect", "cool",
    "nice", "awesome", "easier", "faster", "cheaper", "simpler", "safer", "get", "got", "have",
    "has", "had", "do", "does", "did", "will", "would", "can", "could", "should", "must",
    "might", "may", "need", "needs", "want", "wants", "use", "used", "using", "send", "sent",
    "pay", "paid", "paying", "transfer", "transferred", "money", "payment", "payments", "fees",
    "fee", "invoice", "e2e", "ie", "eg", "etc", "asap", "monday", "tuesday", "wednesday",
    "thursday", "friday", "saturday", "sunday", "weekend", "january", "february", "march",
    "april", "june", "july", "august", "september", "october", "november", "december",
    "received", "confirmed", "approved", "declined", "rejected", "refunded", "cancelled",
    "canceled", "processing", "processed", "completed", "complete", "failed", "accepted",
    "supported", "unsupported", "allowed", "forbidden", "recommended", "noted", "correct",
    "right", "wrong", "true", "false", "null", "unchanged", "changed", "removed", "added",
    "ignored", "skipped", "blank",
];

/// Words ending a handle candidate at a common TLD are web sites (`skype or figma.com`).
static SITE_TOKEN_RE: LazyLock<Regex> =
    LazyLock::new(|| compile(r"(?i)\.(?:com|net|org|io|app|co)$"));
static AT_HANDLE_RE: LazyLock<Regex> =
    LazyLock::new(|| compile(r"^@[A-Za-z_][A-Za-z0-9_.\-]{2,31}$"));
static CASHTAG_RE: LazyLock<Regex> = LazyLock::new(|| compile(r"^\$[A-Za-z][A-Za-z0-9_]{0,19}$"));
static SKYPE_LIVE_RE: LazyLock<Regex> =
    LazyLock::new(|| compile(r"(?i)^live:[A-Za-z0-9._:\-]{3,}$"));
static DISCORD_TAG_RE: LazyLock<Regex> =
    LazyLock::new(|| compile(r"^[A-Za-z0-9_.]{2,32}#[0-9]{4}$"));
/// Indian UPI ids (`name@okaxis`): an `@` but no TLD, so the e-mail heuristics skip them.
static UPI_RE: LazyLock<Regex> = LazyLock::new(|| compile(r"^[A-Za-z0-9._\-]{2,}@[A-Za-z]{2,}$"));
static PLAIN_HANDLE_RE: LazyLock<Regex> =
    LazyLock::new(|| compile(r"^[A-Za-z][A-Za-z0-9._\-]{2,31}$"));
/// `v2.0`, `v1_2`: versions, not handles.
static VERSIONISH_RE: LazyLock<Regex> = LazyLock::new(|| compile(r"(?i)^v[0-9]"));
/// A handle written just before a service word: `@john on telegram`, `j_smith92 (skype)`.
static HANDLE_BEFORE_RE: LazyLock<Regex> = LazyLock::new(|| {
    compile(
        r"(?i)(?P<h>[@$]?[a-z0-9][a-z0-9_.\-:#@]*)[\s:(\[\-–—]*(?:(?:on|in|at|via|over|for|is|my|me|the|its|it's|it’s)[\s:(\[]+){0,3}$",
    )
});
static TOKEN_RE: LazyLock<Regex> = LazyLock::new(|| compile(r"\S+"));

/// How strongly a token reads as a handle.
#[derive(Clone, Copy, PartialEq, Eq)]
enum HandleShape {
    /// `@john`, `live:…`, `john#1234`, `john@okaxis`, `$john` (payment services only).
    Marked,
    /// A word with digits, `_` or an inner `.`: `john.smith`, `jsmith_92`.
    Handleish,
    /// A plain word: `johnsmith`.
    Plain,
}

fn handle_shape(token: &str, kind: ContactKind) -> Option<HandleShape> {
    if AT_HANDLE_RE.is_match(token)
        || SKYPE_LIVE_RE.is_match(token)
        || DISCORD_TAG_RE.is_match(token)
        || UPI_RE.is_match(token)
        || (kind == ContactKind::Payment && CASHTAG_RE.is_match(token))
    {
        return Some(HandleShape::Marked);
    }
    if !PLAIN_HANDLE_RE.is_match(token)
        || SITE_TOKEN_RE.is_match(token)
        || VERSIONISH_RE.is_match(token)
        || HANDLE_STOPWORDS.contains(&token.to_ascii_lowercase().as_str())
    {
        return None;
    }
    let inner_dot = token.trim_matches('.').contains('.');
    if token.bytes().any(|b| b.is_ascii_digit() || b == b'_') || inner_dot {
        Some(HandleShape::Handleish)
    } else {
        Some(HandleShape::Plain)
    }
}

fn find_service_handles(text: &str, found: &mut Vec<ContactMatch>) {
    let table = &*SERVICES;
    for caps in table.regex.captures_iter(text) {
        let Some(word) = caps.get(0) else {
            continue;
        };
        let Some(&(kind, weak)) = (1..caps.len())
            .find(|&i| caps.get(i).is_some())
            .and_then(|i| table.info.get(i - 1))
        else {
            continue;
        };
        let after = window_after(text, word.end(), 80);
        if SERVICE_TOPICS.contains(&first_word(after).as_str()) {
            continue;
        }
        if let Some(end) = handle_after(text, word.start(), after, kind, weak) {
            found.push(hit(kind, word.start(), word.end() + end));
        } else if let Some(start) = handle_before(text, word.start(), kind, weak) {
            found.push(hit(kind, start, word.end()));
        }
    }
}

/// Words that introduce the writer's own handle after a pause: "telegram, I'm @john",
/// "your Venmo? Mine is @jo-b".
const HANDLE_INTROS: &[&str] = &[
    "i'm", "i’m", "im", "am", "is", "mine", "my", "me", "as", "it's", "it’s", "its", "here",
];

/// Looks for a handle after a service word; returns its end relative to `after`.
///
/// Walks the tokens after the service word, skipping punctuation and filler words, and
/// judges the first other token. One clause boundary (`,`, `.`, `?`, …) may be crossed,
/// but then the handle needs a fresh introduction ("I'm", "mine is", "handle:"), so that
/// "we built it on Telegram, @john please review" stays a mention.
fn handle_after(
    text: &str,
    service_start: usize,
    after: &str,
    kind: ContactKind,
    weak: bool,
) -> Option<usize> {
    let mut connector = false;
    let mut saw_is = false;
    let mut crossed_boundary = false;
    let mut introduced = false;
    let mut fillers = 0;
    let mut previous_end = 0;
    for tok in TOKEN_RE.find_iter(after) {
        // The handle has to be on the same line as the service word.
        if after.get(previous_end..tok.start())?.contains('\n') {
            return None;
        }
        previous_end = tok.end();
        let raw = tok.as_str();
        let lead = raw.trim_start_matches(|c| ":=-–—>([\"'«“‘~→⇒*|•·/…".contains(c));
        let leading = &raw[..raw.len() - lead.len()];
        let core = lead.trim_end_matches(|c| ".,;!?)]\"'»”’:…".contains(c));
        let trailing = &lead[core.len()..];
        if leading.contains([':', '=']) || trailing.contains([':', '=']) {
            connector = true;
            introduced = true;
        }
        let ends_clause = trailing.contains(['.', ',', ';', '!', '?', '…'])
            || after.get(tok.end()..).is_none_or(|rest| {
                rest.trim_start_matches([' ', '\t']).is_empty() || rest.starts_with(['\n', '\r'])
            });
        let lower = core.to_lowercase();
        let is_filler = !core.is_empty()
            && HANDLE_FILLERS.contains(&lower.as_str())
            && handle_shape(core, kind).is_none_or(|s| s == HandleShape::Plain);
        if core.is_empty() || is_filler {
            if is_filler {
                fillers += 1;
                connector |= HANDLE_CONNECTORS.contains(&lower.as_str());
                introduced |= HANDLE_CONNECTORS.contains(&lower.as_str())
                    || HANDLE_INTROS.contains(&lower.as_str());
                saw_is |= lower == "is";
                if fillers > 4 {
                    return None;
                }
            }
            if trailing.contains(['.', ',', ';', '!', '?', '…']) {
                if crossed_boundary {
                    return None;
                }
                crossed_boundary = true;
                connector = false;
                introduced = false;
                saw_is = false;
            }
            continue;
        }
        if crossed_boundary && !introduced {
            return None;
        }
        let token_end = tok.start() + leading.len() + core.len();
        let accept = match handle_shape(core, kind)? {
            HandleShape::Marked => true,
            HandleShape::Handleish => !weak || connector,
            // A plain word is a handle only where a handle would stand: ending its clause
            // ("skype: johnsmith", "…: johnsmith, ping me"), not opening a sentence
            // ("Discord: Monday works").
            HandleShape::Plain => {
                let clause_end = ends_clause
                    || HANDLE_FOLLOWERS.contains(&first_word(&after[tok.end()..]).as_str());
                !weak
                    && clause_end
                    && (connector
                        || (saw_is && !crossed_boundary && possessive_before(text, service_start)))
            }
        };
        return accept.then_some(token_end);
    }
    None
}

/// Words that may follow a plain-word handle in the same clause: "skype: johnsmith and
/// whatsapp", "telegram: johnsmith if that's easier".
const HANDLE_FOLLOWERS: &[&str] = &[
    "and", "or", "if", "so", "then", "please", "pls", "thanks", "thx", "there", "too", "also",
];

/// "my skype", "our telegram": the writer is about to give their own handle.
fn possessive_before(text: &str, service_start: usize) -> bool {
    let (_, before) = window_before(text, service_start, 16);
    matches!(
        last_words(before, 1).first().map(String::as_str),
        Some("my" | "our")
    )
}

/// Looks for a handle right before a service word; returns its start in `text`.
fn handle_before(text: &str, service_start: usize, kind: ContactKind, weak: bool) -> Option<usize> {
    let (win_start, win) = window_before(text, service_start, 48);
    let caps = HANDLE_BEFORE_RE.captures(win)?;
    let h = caps.name("h")?;
    let start = win_start + h.start();
    if char_before(text, start).is_some_and(char::is_alphanumeric) {
        return None;
    }
    let token = h.as_str().trim_end_matches(['.', ':', '-']);
    let accept = match handle_shape(token, kind)? {
        HandleShape::Marked => true,
        // Before the service word there is no connector to lean on, so only digits or `_`
        // make a word a handle ("john.smith on skype" could be a file name).
        HandleShape::Handleish => !weak && token.bytes().any(|b| b.is_ascii_digit() || b == b'_'),
        HandleShape::Plain => false,
    };
    accept.then_some(start)
}

// ---------------------------------------------------------------------------------------
// 7. Digit runs: phone numbers and card numbers.
//
// A "segment" is a maximal stretch of digits and in-number separators (`.`, `-`, `/`,
// parentheses, a leading `+`). Segments separated only by spaces (or one spaced dash/dot)
// form a "run": that is how `555 123 4567`, `+44 20 7946 0958` and `0 7 7 0 0 9 0 0 1 2 3`
// are written. A segment that is glued to letters or symbols (`v1.2.3`, `1920x1080`, `4K`,
// `$1,500`, `30%`, `14:30`, `#12345`, URL paths) or shaped like a date, an IP address, a
// version, a decimal or a thousands-grouped amount is "tainted": it never joins a run and
// breaks the run it sits in. A run is then judged on its digit count and its context.
// ---------------------------------------------------------------------------------------

static SEGMENT_RE: LazyLock<Regex> = LazyLock::new(|| compile(r"[+(]{0,3}[0-9][0-9().\-/]*"));

/// Context words that make a 7–8 digit number (or an unseparated 9-digit one) a phone.
static PHONE_WORD_RE: LazyLock<Regex> = LazyLock::new(|| {
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

fn find_digit_runs(text: &str, found: &mut Vec<ContactMatch>) {
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
    sum % 10 == 0
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

// ---------------------------------------------------------------------------------------
// 8. Spelled-out digits: "five five five, one two three, four five six seven".
// ---------------------------------------------------------------------------------------

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

fn find_spelled_digits(text: &str, found: &mut Vec<ContactMatch>) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(text: &str) -> Option<ContactKind> {
        find_contact_info(text).map(|m| m.kind)
    }

    fn matched(text: &str) -> Option<&str> {
        find_contact_info(text).map(|m| &text[m.start..m.end])
    }

    #[test]
    fn contact_emails_plain_and_obfuscated() {
        assert_eq!(
            matched("write to anna.k@studio-north.io today"),
            Some("anna.k@studio-north.io")
        );
        assert_eq!(kind("name [at] mail [dot] com"), Some(ContactKind::Email));
        assert_eq!(kind("name (at) mail dot com"), Some(ContactKind::Email));
        assert_eq!(
            kind("reach me: name at gmail dot com"),
            Some(ContactKind::Email)
        );
        assert_eq!(
            kind("john.smith at gmail.com works"),
            Some(ContactKind::Email)
        );
        assert_eq!(kind("mike_d AT outlook DOT com"), Some(ContactKind::Email));
        assert_eq!(kind("jane @ protonmail . com"), Some(ContactKind::Email));
        assert_eq!(kind("jane{at}yahoo"), Some(ContactKind::Email));
        assert_eq!(
            matched("it's john dot smith at gmail dot com"),
            Some("john dot smith at gmail dot com")
        );
    }

    #[test]
    fn contact_email_look_alikes_do_not_fire() {
        assert_eq!(kind("export icon@2x.png and icon@3x.png"), None);
        assert_eq!(kind("git clone git@github.com:acme/site.git"), None);
        assert_eq!(kind("run ssh deploy@staging.acme.dev first"), None);
        assert_eq!(kind("npm i @angular/core@17.0.0"), None);
        assert_eq!(kind("let's meet at noon"), None);
        assert_eq!(kind("look at the design dot com mockup"), None);
        assert_eq!(kind("I worked at acme.com for years"), None);
        assert_eq!(kind("thanks @maria.dev for the review"), None);
    }

    #[test]
    fn contact_phones() {
        assert_eq!(matched("call 555 123 4567 tonight"), Some("555 123 4567"));
        assert_eq!(
            matched("UK office +44.20.7946.0958"),
            Some("+44.20.7946.0958")
        );
        assert_eq!(
            matched("0 7 7 0 0 9 0 0 1 2 3"),
            Some("0 7 7 0 0 9 0 0 1 2 3")
        );
        assert_eq!(matched("(555) 123-4567"), Some("(555) 123-4567"));
        assert_eq!(matched("+ 49 30 1234567"), Some("+ 49 30 1234567"));
        assert_eq!(kind("call me on 555-1234"), Some(ContactKind::Phone));
        assert_eq!(kind("5551234567"), Some(ContactKind::Phone));
        assert_eq!(
            kind("five five five one two three four five six seven"),
            Some(ContactKind::Phone)
        );
    }

    #[test]
    fn contact_numbers_that_are_not_phones() {
        for text in [
            "budget is $1,500 or 2500 USD, €30/hour",
            "on 2026-11-27 14:30, or 27.11.2026, or 11/27/2026",
            "v1.2.3 and 2.10.14 and 2.10.15",
            "1920x1080 and 4K, 99.9% uptime",
            "order 123456789 shipped",
            "invoice 2026-0042-17",
            "10-15 hours, maybe 20-25",
            "2019 2020 2021 2022",
            "1 2 3 4 5 6 7 8 9 10",
            "ip 192.168.100.200",
            "ISBN 978-3-16-148410-0",
            "pi is 3.14159265",
            "1 500 000 000 IDR",
            "one two three four five six seven eight nine",
        ] {
            assert_eq!(find_contact_info(text), None, "{text}");
        }
    }

    #[test]
    fn contact_messengers() {
        assert_eq!(kind("wa.me/15551234567"), Some(ContactKind::Messenger));
        assert_eq!(kind("https://t.me/johnsmith"), Some(ContactKind::Messenger));
        assert_eq!(kind("t dot me / johnsmith"), Some(ContactKind::Messenger));
        assert_eq!(
            matched("my telegram is @john_smith"),
            Some("telegram is @john_smith")
        );
        assert_eq!(kind("tele gram: @jsmith"), Some(ContactKind::Messenger));
        assert_eq!(
            kind("skype: live:.cid.3f8a1b2c"),
            Some(ContactKind::Messenger)
        );
        assert_eq!(
            kind("add me on skype, name is john.smith"),
            Some(ContactKind::Messenger)
        );
        assert_eq!(kind("my skype is johnsmith"), Some(ContactKind::Messenger));
        assert_eq!(kind("discord: nightowl#4821"), Some(ContactKind::Messenger));
        assert_eq!(kind("@jsmith92 on signal"), Some(ContactKind::Messenger));
        assert_eq!(kind("whats app me"), None);
        assert_eq!(kind("my skype is broken"), None);
        assert_eq!(kind("I built a Telegram bot, @john please review"), None);
        assert_eq!(kind("@anna can you check the layout?"), None);
    }

    #[test]
    fn contact_payments() {
        assert_eq!(kind("paypal.me/johnsmith"), Some(ContactKind::Payment));
        assert_eq!(kind("venmo @John-Smith-12"), Some(ContactKind::Payment));
        assert_eq!(kind("cash app $jsmith"), Some(ContactKind::Payment));
        assert_eq!(kind("$jsmith on cashapp"), Some(ContactKind::Payment));
        assert_eq!(kind("https://cash.app/$jsmith"), Some(ContactKind::Payment));
        assert_eq!(kind("PayPal fees are high"), None);
        assert_eq!(kind("echo $HOME"), None);
    }

    #[test]
    fn contact_iban_and_cards() {
        assert_eq!(
            kind("IBAN DE89 3704 0044 0532 0130 00 thanks"),
            Some(ContactKind::Iban)
        );
        assert_eq!(
            matched("GB82WEST12345698765432"),
            Some("GB82WEST12345698765432")
        );
        assert_eq!(
            kind("card 4111 1111 1111 1111"),
            Some(ContactKind::CardNumber)
        );
        assert_eq!(
            kind("amex 3782 822463 10005"),
            Some(ContactKind::CardNumber)
        );
        // Luhn fails: a 16-digit reference, not a card, and too long for a phone.
        assert_eq!(kind("ref 4111 1111 1111 1112"), None);
        assert_eq!(kind("DE12 is our team code"), None);
    }

    #[test]
    fn contact_all_matches_are_ordered_and_disjoint() {
        let text = "mail a@b.com or call +1 555 123 4567, skype: john.smith";
        let all = find_all_contact_info(text);
        let kinds: Vec<ContactKind> = all.iter().map(|m| m.kind).collect();
        assert_eq!(
            kinds,
            [
                ContactKind::Email,
                ContactKind::Phone,
                ContactKind::Messenger
            ]
        );
        assert!(all.windows(2).all(|w| w[0].end <= w[1].start));
    }

    #[test]
    fn contact_odd_inputs_do_not_panic() {
        let long_digits = "7".repeat(10_000);
        let spaced_digits = "1 ".repeat(5_000);
        let ats = "a@".repeat(5_000);
        let mixed = "Привет 你好 مرحبا 👋🏽 e\u{301} ＠ ５５５ १२३ ".repeat(200);
        let inputs: Vec<String> = vec![
            String::new(),
            " ".into(),
            "@".into(),
            "+".into(),
            "$".into(),
            "...,,,;;;!!!???".into(),
            "(((((((((()))))))))".into(),
            // Case-insensitive Unicode classes match these multi-byte letters as `k` and `s`.
            "\u{212A}\u{212A}89 3704 0044 0532 0130 00 \u{17F}kype: \u{212A}elvin_1".into(),
            "\u{17F}\u{17F}12345678901234 john [at] \u{212A}mail [dot] com".into(),
            "[at][dot][at][dot]".into(),
            " at  at  dot  dot ".into(),
            "@@@@@@@@@@".into(),
            long_digits,
            spaced_digits,
            ats,
            mixed,
            "telegram ".repeat(1_000),
            "skype: ".repeat(1_000),
            "DE89".repeat(1_000),
            "é1 2 3 4 5 6 7 8 9é".into(),
            "\u{0}\u{1}\u{7f}\u{feff}\u{200b}".into(),
            "+😀1 2 3 4 5 6 7 8 9".into(),
            "😀@😀.😀 [at] 😀 dot 😀".into(),
            "tele\u{301}gram @ü".into(),
        ];
        for input in &inputs {
            let all = find_all_contact_info(input);
            for m in &all {
                assert!(m.start <= m.end && m.end <= input.len());
                assert!(input.is_char_boundary(m.start) && input.is_char_boundary(m.end));
            }
            let _ = find_contact_info(input);
        }
    }
}
