//! Served like a production site: compressed answers, security headers, a
//! CSP whose nonce is the page's, and sockets only from allowed origins.

mod common;

use common::{Closed, TestServer, Ws};
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// A socket opened with `origin` (none: as a script would).
async fn ws_from(server: &TestServer, token: &str, origin: Option<&str>) -> Ws {
    let mut request = server.ws_url(Some(token)).into_client_request().expect("request");
    if let Some(origin) = origin {
        request.headers_mut().insert("origin", origin.parse().expect("header"));
    }
    let (stream, _) = tokio_tungstenite::connect_async(request).await.expect("upgrade");
    Ws::from_stream(stream)
}

#[tokio::test]
async fn sockets_from_pages_of_other_origins_are_closed_with_4003() {
    let server = TestServer::start_with(&["--allowed-origins", "https://partner.example"]).await;
    let token = server.session("alice").await;
    let mut foreign = ws_from(&server, &token, Some("https://evil.example")).await;
    assert_eq!(foreign.closed().await, Closed::Code(4003));
    let own = format!("http://127.0.0.1:{}", server.port);
    for origin in [Some(own.as_str()), Some("https://partner.example"), None] {
        let mut ws = ws_from(&server, &token, origin).await;
        common::assert_reply_ok(&ws.request("join:overview", json!({})).await);
    }
    let (_, stats) = server.api(None).get("/api/stats").await;
    assert_eq!(stats["limits"]["limitsHit"]["foreign_origin"], 1);
}

#[tokio::test]
async fn answers_are_compressed_and_carry_security_headers() {
    let server = TestServer::start().await;
    let api = server.api(Some(&server.session("alice").await));
    for i in 0..5 {
        api.create_room(json!({ "description": format!("room {i} with a description long enough to compress") })).await;
    }
    let http = reqwest::Client::new();
    for encoding in ["br", "gzip"] {
        let r = http.get(server.url("/api/rooms")).header("accept-encoding", encoding).send().await.expect("get");
        assert_eq!(r.headers().get("content-encoding").and_then(|v| v.to_str().ok()), Some(encoding));
    }
    let page = http.get(server.url("/rooms")).send().await.expect("page");
    let h = page.headers().clone();
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "strict-origin-when-cross-origin");
    let csp = h["content-security-policy"].to_str().expect("ascii").to_string();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("'wasm-unsafe-eval'"), "{csp}");
    let nonce = csp.split("'nonce-").nth(1).and_then(|rest| rest.split('\'').next()).expect("a nonce in the CSP");
    let html = page.text().await.expect("html");
    assert!(html.contains(&format!("nonce=\"{nonce}\"")), "the page's scripts carry the CSP's nonce");
}
