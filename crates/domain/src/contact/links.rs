//! Heuristic 1: links to messengers and payment services.

use std::sync::LazyLock;

use regex::Regex;

use super::text::{compile, hit};
use super::{ContactKind, ContactMatch};

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

pub(super) fn find_links(text: &str, found: &mut Vec<ContactMatch>) {
    for m in MESSENGER_LINK_RE.find_iter(text) {
        found.push(hit(ContactKind::Messenger, m.start(), m.end()));
    }
    for m in PAYMENT_LINK_RE.find_iter(text) {
        found.push(hit(ContactKind::Payment, m.start(), m.end()));
    }
}
