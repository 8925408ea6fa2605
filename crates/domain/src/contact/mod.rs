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
//!
//! One module per heuristic (named in the list above), `prefilter`, and `text` (the helpers
//! that slice the text only at char boundaries).

mod bank;
mod crypto;
mod digit_runs;
mod emails;
mod handles;
mod links;
mod obfuscated_emails;
mod prefilter;
mod spelled_digits;
#[cfg(test)]
mod tests;
mod text;

pub use prefilter::might_contain_contact_info;

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
    links::find_links(text, &mut found);
    emails::find_plain_emails(text, &mut found);
    obfuscated_emails::find_obfuscated_emails(text, &mut found);
    bank::find_ibans(text, &mut found);
    bank::find_bank_details(text, &mut found);
    crypto::find_crypto_addresses(text, &mut found);
    handles::find_service_handles(text, &mut found);
    digit_runs::find_digit_runs(text, &mut found);
    spelled_digits::find_spelled_digits(text, &mut found);

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
