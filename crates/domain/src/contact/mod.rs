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
//! - **Text as a person reads it, offsets into the original (H-C1).** Text that is not plain
//!   ASCII, or that has letters spaced out, is first normalised ([`normalise`]: NFKC, invisible
//!   characters removed, Unicode separators and digits made ASCII, single characters joined,
//!   look-alike letters spelled in Latin), keeping for each character the range of the original
//!   it came from; the heuristics match that text (case-insensitively where it matters) and
//!   their byte offsets are mapped back, so the caller can highlight the original. Plain ASCII
//!   text, most messages, is read as it is, without a copy.
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
//! ordinary ASCII text none of them could fire on, which is most messages; it reads the same
//! normalised text as the heuristics.
//!
//! One module per heuristic (named in the list above), `normalise` (H-C1), `prefilter`, and
//! `text` (the helpers that slice the text only at char boundaries).

mod bank;
mod crypto;
mod digit_runs;
mod emails;
mod handles;
mod links;
mod normalise;
mod obfuscated_emails;
mod prefilter;
mod spelled_digits;
#[cfg(test)]
mod tests;
mod text;

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
    find_all(text, Prefilter::First)
}

/// [`find_all_contact_info`] without [`might_contain_contact_info`] in front: every heuristic
/// runs. The same verdicts, only slower; it exists so that tests and benchmarks can hold the
/// prefilter to that.
pub fn find_all_contact_info_without_prefilter(text: &str) -> Vec<ContactMatch> {
    find_all(text, Prefilter::Skipped)
}

/// Whether `text` might contain a contact or payment detail: `false` only when no heuristic of
/// [`find_all_contact_info`] could fire on it, read as the heuristics read it (normalised when
/// it is not plain ASCII). Linear in the text.
pub fn might_contain_contact_info(text: &str) -> bool {
    if normalise::is_plain(text) {
        return prefilter::might_contain(text);
    }
    normalise::views(text)
        .iter()
        .any(|view| prefilter::might_contain(&view.text))
}

/// Whether [`find_all`] asks the prefilter first.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Prefilter {
    First,
    Skipped,
}

fn find_all(text: &str, prefilter: Prefilter) -> Vec<ContactMatch> {
    let read = |view: &str| prefilter == Prefilter::Skipped || prefilter::might_contain(view);
    let mut found = Vec::new();
    if normalise::is_plain(text) {
        if read(text) {
            run_heuristics(text, &mut found);
        }
    } else {
        for view in normalise::views(text) {
            if !read(&view.text) {
                continue;
            }
            let first = found.len();
            run_heuristics(&view.text, &mut found);
            for found in found.iter_mut().skip(first) {
                (found.start, found.end) = view.original_range(found.start, found.end);
            }
        }
    }
    if found.is_empty() {
        return found;
    }
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

/// Every heuristic over `text`, in order, each pushing what it finds (offsets into `text`).
fn run_heuristics(text: &str, found: &mut Vec<ContactMatch>) {
    links::find_links(text, found);
    emails::find_plain_emails(text, found);
    obfuscated_emails::find_obfuscated_emails(text, found);
    bank::find_ibans(text, found);
    bank::find_bank_details(text, found);
    crypto::find_crypto_addresses(text, found);
    handles::find_service_handles(text, found);
    digit_runs::find_digit_runs(text, found);
    spelled_digits::find_spelled_digits(text, found);
}
