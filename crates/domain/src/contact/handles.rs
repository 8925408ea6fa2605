//! Heuristic 6: messenger and payment handles introduced by a service word.
//!
//! A bare mention of a service ("do you use Telegram?", "PayPal fees are high") carries no
//! contact detail and does not fire; R-C1 is about the handle. A handle fires when it sits
//! next to a service word: right after it (through a few filler words: "my telegram is
//! @john", "skype: live:.cid.123", "find me on skype as john.smith"), or right before it
//! ("@john on telegram", "$jsmith (cash app)"). What counts as a handle depends on the
//! evidence: `@name`, `$cashtag`, `live:…` and `name#1234` are handles anywhere; a word with
//! digits, `_` or an inner `.` is a handle after a service word; a plain word only after an
//! explicit "username:"-style connector, or as "my skype is johnsmith" at the end of a
//! clause, and never when it is a common English word ("my skype is broken").

use std::sync::LazyLock;

use regex::Regex;

use super::text::{char_before, compile, first_word, hit, last_words, window_after, window_before};
use super::{ContactKind, ContactMatch};

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

pub(super) struct ServiceTable {
    pub(super) regex: Regex,
    info: Vec<(ContactKind, bool)>,
}

pub(super) static SERVICES: LazyLock<ServiceTable> = LazyLock::new(|| {
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

pub(super) fn find_service_handles(text: &str, found: &mut Vec<ContactMatch>) {
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
