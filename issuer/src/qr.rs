//! QR codes of a voucher's token, as SVG and PNG, large enough to scan from a phone screen.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};
use uuid::Uuid;
use voucher_core::auth::FirmSession;
use voucher_core::extract::Path;
use voucher_core::{ApiError, AppState, ErrorCode};

use crate::vouchers;

/// Pixels per module in the PNG.
const PNG_SCALE: usize = 8;
/// Light modules around the code, as the standard asks.
const QUIET_ZONE: usize = 4;

fn code_for(token: &str) -> Result<QrCode, ApiError> {
    QrCode::with_error_correction_level(token.as_bytes(), EcLevel::L)
        .map_err(|e| ApiError::internal(anyhow::anyhow!("QR encoding failed: {e}")))
}

/// The token's QR as SVG.
pub fn svg_of(token: &str) -> Result<String, ApiError> {
    Ok(code_for(token)?
        .render::<svg::Color<'_>>()
        .min_dimensions(320, 320)
        .quiet_zone(true)
        .build())
}

/// The token's QR as an 8-bit greyscale PNG.
pub fn png_of(token: &str) -> Result<Vec<u8>, ApiError> {
    let code = code_for(token)?;
    let modules = code.width();
    let colors = code.to_colors();
    let side = (modules + 2 * QUIET_ZONE) * PNG_SCALE;
    let mut pixels = vec![255u8; side * side];
    for (i, color) in colors.iter().enumerate() {
        if *color == qrcode::Color::Dark {
            let (mx, my) = (i % modules + QUIET_ZONE, i / modules + QUIET_ZONE);
            for dy in 0..PNG_SCALE {
                let row = (my * PNG_SCALE + dy) * side;
                let start = row + mx * PNG_SCALE;
                pixels[start..start + PNG_SCALE].fill(0);
            }
        }
    }
    let mut out = Vec::new();
    {
        let side =
            u32::try_from(side).map_err(|_| ApiError::internal(anyhow::anyhow!("QR too large")))?;
        let mut encoder = png::Encoder::new(&mut out, side, side);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder
            .write_header()
            .map_err(|e| ApiError::internal(anyhow::anyhow!("PNG: {e}")))?;
        writer
            .write_image_data(&pixels)
            .map_err(|e| ApiError::internal(anyhow::anyhow!("PNG: {e}")))?;
    }
    Ok(out)
}

fn image(content_type: &'static str, body: impl IntoResponse) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response()
}

/// Only a voucher that can be redeemed now has a QR code to show: a cancelled, lapsed, expired
/// or used-up one has none (its token would still carry a valid signature).
fn showable(voucher: vouchers::Voucher) -> Result<vouchers::Voucher, ApiError> {
    match voucher.status.as_str() {
        "active" => Ok(voucher),
        "exhausted" => Err(ApiError::new(
            ErrorCode::VoucherExhausted,
            "this voucher has no balance left; it has no QR code to show",
        )),
        _ => Err(ApiError::new(
            ErrorCode::VoucherNotActive,
            format!(
                "this voucher is {}; it has no QR code to show",
                voucher.status
            ),
        )),
    }
}

/// The voucher's QR code as SVG.
#[utoipa::path(get, path = "/api/portal/vouchers/{id}/qr.svg", tag = "portal", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, content_type = "image/svg+xml", body = String),
        (status = 404, body = voucher_core::error::Problem),
        (status = 409, body = voucher_core::error::Problem, description = "`voucher_not_active`, `voucher_exhausted`: nothing to show at the till")))]
pub async fn qr_svg(
    State(state): State<AppState>,
    session: FirmSession,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    let voucher = showable(vouchers::fetch(&state, session.firm_id, id).await?)?;
    Ok(image("image/svg+xml", svg_of(&voucher.token)?))
}

/// The voucher's QR code as PNG.
#[utoipa::path(get, path = "/api/portal/vouchers/{id}/qr.png", tag = "portal", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, content_type = "image/png", body = Vec<u8>),
        (status = 404, body = voucher_core::error::Problem),
        (status = 409, body = voucher_core::error::Problem, description = "`voucher_not_active`, `voucher_exhausted`: nothing to show at the till")))]
pub async fn qr_png(
    State(state): State<AppState>,
    session: FirmSession,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    let voucher = showable(vouchers::fetch(&state, session.firm_id, id).await?)?;
    Ok(image("image/png", png_of(&voucher.token)?))
}
