//! Heuristic 5: crypto wallet addresses.

use std::sync::LazyLock;

use regex::Regex;

use super::text::{compile, hit, window_before};
use super::{ContactKind, ContactMatch};

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

pub(super) fn find_crypto_addresses(text: &str, found: &mut Vec<ContactMatch>) {
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
