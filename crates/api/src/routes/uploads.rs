//! File uploads, and serving them back without a token (like a CDN).

use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Auth, Path};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(upload))
}

#[derive(Serialize, ToSchema)]
pub struct UploadView {
    /// Where the file is served, without a token.
    url: String,
    content_type: &'static str,
    size_bytes: usize,
}

#[derive(ToSchema)]
#[allow(dead_code)] // documents the multipart body for OpenAPI
struct UploadForm {
    /// An image (PNG, JPEG, GIF, WebP) or a PDF, at most 10 MiB.
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    file: String,
}

fn multipart_error(status: StatusCode, detail: String) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(status, "payload_too_large", "uploads are limited to 10 MiB")
    } else {
        ApiError::new(StatusCode::BAD_REQUEST, "malformed_multipart", detail)
    }
}

/// Uploads an image or a PDF (its type is read from its bytes, not its name).
#[utoipa::path(post, path = "/api/v1/uploads", tag = "uploads",
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 201, body = UploadView), (status = 413, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn upload(
    State(state): State<AppState>,
    Auth(principal): Auth,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, axum::Json<UploadView>)> {
    let mut multipart = multipart.map_err(|rejection| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("send the file as multipart/form-data: {}", rejection.body_text()),
        )
    })?;
    let mut file = None;
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| multipart_error(e.status(), e.body_text()))?
    {
        if field.name() == Some("file") {
            let bytes = field
                .bytes()
                .await
                .map_err(|e| multipart_error(e.status(), e.body_text()))?;
            file = Some(bytes);
            break;
        }
    }
    let bytes =
        file.ok_or_else(|| ApiError::invalid("file", "a multipart field named `file` is required"))?;
    let uploaded = state.uploads.upload(principal.user_id, bytes).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(UploadView {
            url: uploaded.url,
            content_type: uploaded.content_type,
            size_bytes: uploaded.size_bytes,
        }),
    ))
}

/// Serves an uploaded file. Keys are immutable, so clients may cache forever.
pub async fn serve_upload(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let (bytes, content_type) = state.uploads.fetch(&key).await?;
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CONTENT_SECURITY_POLICY, "default-src 'none'; sandbox"),
        ],
        bytes,
    ))
}
