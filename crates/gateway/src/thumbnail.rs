//! Previews of uploaded images (R-F2): a PNG no larger than 256×256 px, aspect ratio kept,
//! stored in the blob store as a derived object of the image's blob.
//!
//! Decoding runs on the blocking pool, a few at a time ([`crate::GatewayConfig`]'s
//! `thumbnails_concurrent_max`), under image's [`Limits`]: a decompression bomb (a tiny file
//! declaring gigapixels) is refused before its pixels are allocated. Any failure only means the
//! file has no preview; the upload itself never fails because of it.

use std::io::{self, BufRead, BufReader, Cursor, Seek};
use std::path::Path;

use blobs::ContentHash;
use bytes::Bytes;
use futures::StreamExt;
use image::{DynamicImage, ImageFormat, ImageReader, Limits};

use crate::state::AppState;

/// The derived object's name in the blob store.
pub(crate) const THUMBNAIL_NAME: &str = "thumbnail-256.png";

/// A thumbnail's longest side, in pixels (R-F2).
pub(crate) const THUMBNAIL_SIDE_PIXELS_MAX: u32 = 256;

/// The widest or tallest image decoded, in pixels; larger ones get no preview.
pub(crate) const DECODE_SIDE_PIXELS_MAX: u32 = 16_384;

/// The memory one decode may allocate, in bytes (the decoded pixels included).
pub(crate) const DECODE_BYTES_MAX: u64 = 256 * 1024 * 1024;

/// The largest image read into memory when the blob store keeps no local file, in bytes.
pub(crate) const BUFFERED_SOURCE_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// The content types that get a preview.
const PREVIEW_CONTENT_TYPES: [&str; 5] = [
    "image/png",
    "image/jpeg",
    "image/jpg",
    "image/gif",
    "image/webp",
];

/// Why no thumbnail was made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ThumbnailError {
    /// Not a decodable image, or over the decoding limits.
    #[error("cannot decode the image: {0}")]
    Image(#[from] image::ImageError),
    /// The bytes could not be read.
    #[error("cannot read the image: {0}")]
    Io(#[from] io::Error),
    /// The image is too large to buffer (stores without local files only).
    #[error("the image is over the {BUFFERED_SOURCE_BYTES_MAX}-byte preview limit")]
    TooLarge,
    /// The decoding task failed.
    #[error("the decoding task failed: {0}")]
    Task(String),
}

/// Whether a declared content type gets a preview (png, jpeg, gif, webp).
pub(crate) fn is_previewable(content_type: &str) -> bool {
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    PREVIEW_CONTENT_TYPES
        .iter()
        .any(|previewable| previewable.eq_ignore_ascii_case(media_type))
}

/// The decoding limits.
fn limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_image_width = Some(DECODE_SIDE_PIXELS_MAX);
    limits.max_image_height = Some(DECODE_SIDE_PIXELS_MAX);
    limits.max_alloc = Some(DECODE_BYTES_MAX);
    limits
}

/// Decodes an image (its format guessed from its first bytes) and encodes its thumbnail as PNG.
pub(crate) fn render<R: BufRead + Seek>(source: R) -> Result<Vec<u8>, ThumbnailError> {
    let mut reader = ImageReader::new(source).with_guessed_format()?;
    reader.limits(limits());
    let image = reader.decode()?;
    let side = THUMBNAIL_SIDE_PIXELS_MAX;
    // `thumbnail` keeps the aspect ratio but would also enlarge a small image.
    let small = if image.width() > side || image.height() > side {
        image.thumbnail(side, side)
    } else {
        image
    };
    // PNG cannot hold every pixel layout (32-bit floats, say): use 8 bits per channel.
    let small = if small.color().has_alpha() {
        DynamicImage::ImageRgba8(small.to_rgba8())
    } else {
        DynamicImage::ImageRgb8(small.to_rgb8())
    };
    let mut png = Cursor::new(Vec::new());
    small.write_to(&mut png, ImageFormat::Png)?;
    Ok(png.into_inner())
}

/// Renders the thumbnail of the image file at `path`.
fn render_file(path: &Path) -> Result<Vec<u8>, ThumbnailError> {
    render(BufReader::new(std::fs::File::open(path)?))
}

/// Makes and stores the thumbnail of the blob `hash`, unless it exists; true when there is one.
pub(crate) async fn make_thumbnail(state: &AppState, hash: ContentHash) -> bool {
    if let Ok(Some(_)) = state.blobs.open_derived(hash, THUMBNAIL_NAME).await {
        return true;
    }
    let Ok(_permit) = state.thumbnail_permits.acquire().await else {
        return false;
    };
    let rendered = match state.blobs.local_path(hash) {
        Some(path) => tokio::task::spawn_blocking(move || render_file(&path)).await,
        None => match buffer_blob(state, hash).await {
            Ok(bytes) => tokio::task::spawn_blocking(move || render(Cursor::new(bytes))).await,
            Err(error) => Ok(Err(error)),
        },
    };
    let rendered = rendered.unwrap_or_else(|error| Err(ThumbnailError::Task(error.to_string())));
    match rendered {
        Ok(png) => match state
            .blobs
            .put_derived(hash, THUMBNAIL_NAME, Bytes::from(png))
            .await
        {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(%hash, %error, "cannot store a thumbnail");
                false
            }
        },
        Err(error) => {
            tracing::info!(%hash, %error, "no preview for an uploaded image");
            false
        }
    }
}

/// Reads a blob into memory, up to [`BUFFERED_SOURCE_BYTES_MAX`].
async fn buffer_blob(state: &AppState, hash: ContentHash) -> Result<Vec<u8>, ThumbnailError> {
    let reader = state
        .blobs
        .open(hash)
        .await
        .map_err(|error| io::Error::other(error.to_string()))?
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the blob is gone"))?;
    if reader.size > BUFFERED_SOURCE_BYTES_MAX {
        return Err(ThumbnailError::TooLarge);
    }
    let mut bytes = Vec::with_capacity(usize::try_from(reader.size).unwrap_or(0));
    let mut stream = reader.stream;
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk?);
        if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > BUFFERED_SOURCE_BYTES_MAX {
            return Err(ThumbnailError::TooLarge);
        }
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let image = image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
        });
        let mut bytes = Cursor::new(Vec::new());
        let written = DynamicImage::ImageRgb8(image).write_to(&mut bytes, ImageFormat::Png);
        assert!(written.is_ok());
        bytes.into_inner()
    }

    fn dimensions(png: &[u8]) -> Option<(u32, u32)> {
        let image = image::load_from_memory_with_format(png, ImageFormat::Png).ok()?;
        Some((image.width(), image.height()))
    }

    #[test]
    fn large_images_shrink_keeping_their_aspect_ratio() {
        let thumbnail = render(Cursor::new(png(1024, 512))).ok();
        assert_eq!(thumbnail.as_deref().and_then(dimensions), Some((256, 128)));
        let thumbnail = render(Cursor::new(png(300, 900))).ok();
        assert_eq!(thumbnail.as_deref().and_then(dimensions), Some((85, 256)));
    }

    #[test]
    fn small_images_are_not_enlarged() {
        let thumbnail = render(Cursor::new(png(40, 30))).ok();
        assert_eq!(thumbnail.as_deref().and_then(dimensions), Some((40, 30)));
    }

    #[test]
    fn garbage_is_no_preview() {
        assert!(render(Cursor::new(b"not an image at all".to_vec())).is_err());
    }

    #[test]
    fn a_decompression_bomb_is_refused_before_allocating() {
        // A valid PNG header declaring 100,000 × 100,000 pixels (40 GB decoded), and nothing
        // else: the limits refuse it from the header alone.
        let mut bomb = Vec::new();
        bomb.extend_from_slice(b"\x89PNG\r\n\x1a\n");
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(b"IHDR");
        ihdr.extend_from_slice(&100_000u32.to_be_bytes());
        ihdr.extend_from_slice(&100_000u32.to_be_bytes());
        ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
        bomb.extend_from_slice(&13u32.to_be_bytes());
        bomb.extend_from_slice(&ihdr);
        bomb.extend_from_slice(&crc32(&ihdr).to_be_bytes());
        let error = render(Cursor::new(bomb));
        assert!(
            matches!(
                error,
                Err(ThumbnailError::Image(image::ImageError::Limits(_)))
            ),
            "{error:?}"
        );
    }

    #[test]
    fn previewable_types() {
        assert!(is_previewable("image/png"));
        assert!(is_previewable("Image/JPEG; charset=binary"));
        assert!(is_previewable("image/webp"));
        assert!(!is_previewable("image/svg+xml"));
        assert!(!is_previewable("application/pdf"));
    }

    /// The CRC-32 of PNG chunks (IEEE, reflected), bit by bit: only for building test input.
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for byte in bytes {
            crc ^= u32::from(*byte);
            for _ in 0..8 {
                let mask = (crc & 1).wrapping_neg();
                crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
            }
        }
        !crc
    }
}
