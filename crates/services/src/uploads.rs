//! Uploaded images and PDFs, kept in an object store (local disk by
//! default, S3-compatible storage when configured) and served back like a
//! CDN would.

use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use store::Store;
use store::catalog::NewUpload;
use uuid::Uuid;

use crate::{Error, Result};

pub const MAX_UPLOAD_BYTES: usize = 10 * 1024 * 1024;

/// The kinds of file accepted, recognised by their first bytes (never by
/// the name or the declared type, which the client controls).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Png,
    Jpeg,
    Gif,
    Webp,
    Pdf,
}

impl FileKind {
    pub fn sniff(bytes: &[u8]) -> Option<FileKind> {
        match bytes {
            [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, ..] => Some(FileKind::Png),
            [0xFF, 0xD8, 0xFF, ..] => Some(FileKind::Jpeg),
            [b'G', b'I', b'F', b'8', b'7' | b'9', b'a', ..] => Some(FileKind::Gif),
            [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => Some(FileKind::Webp),
            [b'%', b'P', b'D', b'F', b'-', ..] => Some(FileKind::Pdf),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            FileKind::Png => "image/png",
            FileKind::Jpeg => "image/jpeg",
            FileKind::Gif => "image/gif",
            FileKind::Webp => "image/webp",
            FileKind::Pdf => "application/pdf",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            FileKind::Png => "png",
            FileKind::Jpeg => "jpg",
            FileKind::Gif => "gif",
            FileKind::Webp => "webp",
            FileKind::Pdf => "pdf",
        }
    }

    fn from_extension(extension: &str) -> Option<FileKind> {
        [
            FileKind::Png,
            FileKind::Jpeg,
            FileKind::Gif,
            FileKind::Webp,
            FileKind::Pdf,
        ]
        .into_iter()
        .find(|kind| kind.extension() == extension)
    }
}

#[derive(Debug, Clone)]
pub struct Uploaded {
    pub url: String,
    pub key: String,
    pub content_type: &'static str,
    pub size_bytes: usize,
}

pub struct UploadService {
    store: Arc<dyn Store>,
    objects: Arc<dyn ObjectStore>,
}

/// The URL path files are served under.
pub const PUBLIC_PREFIX: &str = "/uploads/";

impl UploadService {
    pub fn new(store: Arc<dyn Store>, objects: Arc<dyn ObjectStore>) -> Self {
        UploadService { store, objects }
    }

    pub async fn upload(&self, user_id: Uuid, bytes: Bytes) -> Result<Uploaded> {
        if bytes.is_empty() {
            return Err(Error::invalid("file", "is empty"));
        }
        if bytes.len() > MAX_UPLOAD_BYTES {
            return Err(Error::TooLarge("uploads are limited to 10 MiB"));
        }
        let kind = FileKind::sniff(&bytes)
            .ok_or_else(|| Error::invalid("file", "must be a PNG, JPEG, GIF or WebP image, or a PDF"))?;
        let key = format!("{}.{}", Uuid::now_v7().simple(), kind.extension());
        let size_bytes = bytes.len();
        self.objects
            .put(&ObjectPath::from(key.as_str()), bytes.into())
            .await
            .map_err(|e| Error::Internal(e.into()))?;
        self.store
            .record_upload(NewUpload {
                key: key.clone(),
                content_type: kind.content_type().to_owned(),
                size_bytes: size_bytes as i64,
                user_id,
            })
            .await?;
        Ok(Uploaded {
            url: format!("{PUBLIC_PREFIX}{key}"),
            key,
            content_type: kind.content_type(),
            size_bytes,
        })
    }

    /// The stored file and its content type. Keys are exactly what
    /// `upload` makes (hex id, dot, known extension), so no other path of
    /// the store can be named.
    pub async fn fetch(&self, key: &str) -> Result<(Bytes, &'static str)> {
        let (stem, extension) = key.split_once('.').ok_or(Error::NotFound)?;
        let kind = FileKind::from_extension(extension).ok_or(Error::NotFound)?;
        if stem.len() != 32 || !stem.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::NotFound);
        }
        let object = match self.objects.get(&ObjectPath::from(key)).await {
            Ok(object) => object,
            Err(object_store::Error::NotFound { .. }) => return Err(Error::NotFound),
            Err(e) => return Err(Error::Internal(e.into())),
        };
        let bytes = object.bytes().await.map_err(|e| Error::Internal(e.into()))?;
        Ok((bytes, kind.content_type()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_by_content() {
        assert_eq!(FileKind::sniff(b"\x89PNG\r\n\x1a\nrest"), Some(FileKind::Png));
        assert_eq!(FileKind::sniff(b"\xff\xd8\xff\xe0"), Some(FileKind::Jpeg));
        assert_eq!(FileKind::sniff(b"GIF89a..."), Some(FileKind::Gif));
        assert_eq!(FileKind::sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some(FileKind::Webp));
        assert_eq!(FileKind::sniff(b"%PDF-1.7\n"), Some(FileKind::Pdf));
        assert_eq!(FileKind::sniff(b"<html><script>"), None);
        assert_eq!(FileKind::sniff(b"MZ\x90\0"), None);
        assert_eq!(FileKind::sniff(b""), None);
    }
}
