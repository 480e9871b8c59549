//! Security headers on every answer: API, pages, errors and the API docs.

use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use crate::harness::TestApp;

const STRICT_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn assert_common(headers: &HeaderMap, path: &str) {
    assert_eq!(
        header(headers, "x-content-type-options"),
        Some("nosniff"),
        "{path}"
    );
    assert_eq!(header(headers, "referrer-policy"), Some("same-origin"), "{path}");
    assert_eq!(header(headers, "x-frame-options"), Some("DENY"), "{path}");
    let csp = header(headers, "content-security-policy").unwrap_or_else(|| panic!("no CSP on {path}"));
    assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
    assert!(csp.contains("script-src 'self';"), "{path}: {csp}");
    assert!(!csp.contains("unsafe-eval"), "{path}: {csp}");
    assert!(
        !csp.split(';')
            .any(|d| d.trim().starts_with("script-src") && d.contains("unsafe-inline"))
    );
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let app = TestApp::start().await;
    let (_, token, _) = app.customer("headers").await;
    for (path, token, status) in [
        ("/health", None, StatusCode::OK),
        ("/", None, StatusCode::OK),
        ("/api/v1/auth/me", Some(token.as_str()), StatusCode::OK),
        ("/api/v1/auth/me", None, StatusCode::UNAUTHORIZED),
        ("/api/v1/no-such-thing", None, StatusCode::NOT_FOUND),
        ("/api/openapi.json", None, StatusCode::OK),
    ] {
        let response = app.get(path, token).await;
        assert_eq!(response.status(), status, "{path}");
        let headers = response.headers();
        assert_common(headers, path);
        assert_eq!(
            header(headers, "content-security-policy"),
            Some(STRICT_CSP),
            "{path}"
        );
        assert!(header(headers, "strict-transport-security").is_none(), "{path}");
    }
}

#[tokio::test]
async fn the_api_docs_get_the_hash_of_their_one_inline_style_and_nothing_more() {
    let app = TestApp::start().await;
    for path in ["/api/docs/", "/api/docs/swagger-initializer.js"] {
        let response = app.get(path, None).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers().clone();
        assert_common(&headers, path);
        let csp = header(&headers, "content-security-policy").unwrap_or_default();
        assert!(csp.contains("style-src 'self' 'sha256-"), "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
        let page = response.text().await.unwrap();
        // The docs page loads nothing from another host and runs no inline script.
        if path.ends_with('/') {
            assert!(!page.contains("https://"), "{path} loads from another host");
            assert!(!page.contains("<script>"), "inline script in the docs page");
        }
    }
}

#[tokio::test]
async fn hsts_only_when_a_trusted_proxy_says_the_request_came_over_tls() {
    // Direct, the header is not believed.
    let app = TestApp::start().await;
    let response = app
        .request(reqwest::Method::GET, "/health", None)
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    assert!(response.headers().get("strict-transport-security").is_none());

    // Through a trusted proxy (the tests connect from 127.0.0.1).
    let app = TestApp::start_with(|c| c.trusted_proxies = vec!["127.0.0.1".into()]).await;
    let response = app
        .request(reqwest::Method::GET, "/health", None)
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    let hsts = header(response.headers(), "strict-transport-security").map(str::to_owned);
    assert_eq!(hsts.as_deref(), Some("max-age=31536000; includeSubDomains"));
    let plain = app
        .request(reqwest::Method::GET, "/health", None)
        .header("x-forwarded-proto", "http")
        .send()
        .await
        .unwrap();
    assert!(plain.headers().get("strict-transport-security").is_none());
}
