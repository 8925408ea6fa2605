//! Heuristic 3: obfuscated e-mail addresses.
//!
//! We find every "at" token (`@`, `[at]`, `(at)`, ` at `) and look left for a local part and
//! right for a domain whose labels are joined by "dot" tokens (`.`, `[dot]`, ` dot `, ` . `).
//! How much evidence we need depends on how unambiguous the "at" is:
//! - a bracketed `[at]`/`(at)` or a spaced ` @ ` exists only to obfuscate an address, so a
//!   known top-level domain, a known mail provider or (bracketed only) any domain word will do;
//! - the English word ` at ` ("meet at noon", "look at example.com") needs a spelled-out or
//!   bracketed dot *and* a known top-level domain, or a known mail provider, or a local part
//!   that looks like a mailbox (`john.smith`, `j_smith`); and its local part must not be a
//!   common English word ("look at the site dot com" names a web site, not a mailbox).

use std::sync::LazyLock;

use regex::Regex;

use super::text::{compile, hit, window_after, window_before};
use super::{ContactKind, ContactMatch};

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
pub(super) const MAIL_PROVIDERS: &[&str] = &[
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

pub(super) fn is_known_tld(label: &str) -> bool {
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

pub(super) fn find_obfuscated_emails(text: &str, found: &mut Vec<ContactMatch>) {
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
