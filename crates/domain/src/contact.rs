//! Detects contact and payment details in message text (rule R-C1). Placeholder: being written.

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
pub fn find_contact_info(_text: &str) -> Option<ContactMatch> {
    None
}
