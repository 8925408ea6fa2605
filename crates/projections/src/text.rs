//! Small text rules shared by the read models: message previews and which files have a preview
//! image.

use domain::Attachment;

/// The most characters (Unicode scalar values) of a body a preview shows.
pub const PREVIEW_CHARS_MAX: usize = 100;

/// The content types whose files get a thumbnail (protocol.md §3 `has_preview`).
const PREVIEW_CONTENT_TYPES: [&str; 4] = ["image/png", "image/jpeg", "image/gif", "image/webp"];

/// The first [`PREVIEW_CHARS_MAX`] characters of `body`; for a message of attachments only,
/// the first attachment's file name or URL, so a list never shows an empty line for it.
pub fn preview(body: &str, attachments: &[Attachment]) -> String {
    let text = if body.is_empty() {
        match attachments.first() {
            Some(Attachment::File { name, .. }) => name.as_str(),
            Some(Attachment::Link { url, .. }) => url.as_str(),
            None => "",
        }
    } else {
        body
    };
    text.chars().take(PREVIEW_CHARS_MAX).collect()
}

/// Whether a file of this content type has a preview image (png, jpeg, gif, webp; parameters
/// and letter case ignored).
pub fn has_preview(content_type: &str) -> bool {
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    PREVIEW_CONTENT_TYPES
        .iter()
        .any(|known| media_type.eq_ignore_ascii_case(known))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_are_bounded_in_characters() {
        let body = "é".repeat(150);
        assert_eq!(preview(&body, &[]).chars().count(), PREVIEW_CHARS_MAX);
        assert_eq!(preview("hi", &[]), "hi");
        let link = Attachment::Link {
            url: "https://example.com".into(),
            provider: None,
        };
        assert_eq!(preview("", &[link]), "https://example.com");
    }

    #[test]
    fn images_have_previews() {
        assert!(has_preview("image/PNG"));
        assert!(has_preview("image/jpeg; q=1"));
        assert!(!has_preview("image/svg+xml"));
        assert!(!has_preview("application/pdf"));
    }
}
