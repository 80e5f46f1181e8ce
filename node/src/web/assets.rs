//! The page and its scripts, compiled into the binary from node/web/ (no build step, nothing
//! fetched from elsewhere: docs/web.md says why plain ES modules).

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

/// (path, content type, body)
pub const FILES: &[(&str, &str, &str)] = &[
    (
        "/",
        "text/html; charset=utf-8",
        include_str!("../../web/index.html"),
    ),
    (
        "/style.css",
        "text/css; charset=utf-8",
        include_str!("../../web/style.css"),
    ),
    (
        "/app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/app.js"),
    ),
    (
        "/api.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/api.js"),
    ),
    (
        "/voice.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/voice.js"),
    ),
    (
        "/capture-worklet.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/capture-worklet.js"),
    ),
    (
        "/icon.svg",
        "image/svg+xml",
        include_str!("../../web/icon.svg"),
    ),
];

/// Total bytes of the page and everything it loads.
pub fn total_bytes() -> usize {
    FILES.iter().map(|(_, _, body)| body.len()).sum()
}

pub fn router() -> Router {
    let mut router = Router::new();
    for (path, kind, body) in FILES {
        let (kind, body) = (*kind, *body);
        router = router.route(
            path,
            get(move || async move {
                (
                    [
                        (header::CONTENT_TYPE, kind),
                        // Revalidate each load: a node upgrade shows at once.
                        (header::CACHE_CONTROL, "no-cache"),
                    ],
                    body,
                )
                    .into_response()
            }),
        );
    }
    router
}
