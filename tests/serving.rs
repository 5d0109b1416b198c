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

/// A client that shows redirects instead of following them.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

async fn post_form(server: &TestServer, body: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = no_redirects()
        .post(server.url("/create"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_string());
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await.expect("post")
}

fn location(r: &reqwest::Response) -> String {
    assert_eq!(r.status(), 303);
    r.headers()["location"].to_str().expect("ascii").to_string()
}

#[tokio::test]
async fn the_lobby_forms_work_as_plain_posts_and_redirects() {
    let server = TestServer::start().await;
    let api = server.api(Some(&server.session("script").await));

    // A first visit without a session: the post makes one and opens the room.
    let made = post_form(&server, "id=plain-form&description=made+by+a+form&hidden=on", &[]).await;
    assert_eq!(location(&made), "/rooms/plain-form");
    let cookie = made.headers()["set-cookie"].to_str().expect("ascii").split(';').next().expect("pair").to_string();
    assert!(cookie.starts_with("roomcast_session="), "{cookie}");
    let (_, room) = api.get("/api/rooms/plain-form").await;
    assert_eq!(room["description"], "made by a form");
    assert_eq!(room["hidden"], true);
    let host = room["hostName"].as_str().expect("a host").to_string();
    assert!(host.starts_with("guest-"), "{host}");

    // Refused: back to the lobby with the reason, its code and what was typed.
    let again = post_form(&server, "id=plain-form&description=twice", &[("cookie", &cookie)]).await;
    assert!(again.headers().get("set-cookie").is_none(), "the visitor has a session already");
    let back = location(&again);
    assert!(back.starts_with("/?create_error=") && back.contains("create_code=conflict"), "{back}");
    assert!(back.contains("id=plain-form") && back.contains("description=twice"), "{back}");

    // A post from a page of another site changes nothing.
    let foreign =
        post_form(&server, "id=from-elsewhere", &[("cookie", &cookie), ("origin", "https://evil.example")]).await;
    assert!(location(&foreign).starts_with("/?create_error="));
    assert_eq!(api.get("/api/rooms/from-elsewhere").await.0, 404);

    let coded = api.create_room(json!({})).await;
    let id = coded["id"].as_str().expect("id");
    let bare = id.trim_start_matches("ROOM-").to_ascii_lowercase();
    let join = no_redirects().get(server.url(&format!("/join?code={bare}"))).send().await.expect("join");
    assert_eq!(location(&join), format!("/rooms/{id}"));
    let missing = no_redirects().get(server.url("/join?code=nope")).send().await.expect("join");
    let back = location(&missing);
    assert!(back.starts_with("/?join_error=") && back.ends_with("&code=nope"), "{back}");
}

#[tokio::test]
async fn hashed_assets_are_cached_for_a_year_and_pages_are_not() {
    let site = tempfile::tempdir().expect("dir");
    let pkg = site.path().join("pkg");
    std::fs::create_dir(&pkg).expect("pkg");
    for ext in ["js", "wasm", "css"] {
        std::fs::write(pkg.join(format!("roomcast.0123456789abcdef.{ext}")), format!("/* {ext} */")).expect("asset");
    }
    let root = site.path().to_str().expect("utf-8");
    let server = TestServer::start_with(&["--site-root", root]).await;
    let http = reqwest::Client::new();
    let page = http.get(server.url("/")).send().await.expect("page");
    assert_eq!(page.headers()["cache-control"], "no-cache");
    let html = page.text().await.expect("html");
    for ext in ["js", "wasm", "css"] {
        let path = format!("/pkg/roomcast.0123456789abcdef.{ext}");
        assert!(html.contains(&path), "the page names {path}");
        let asset = http.get(server.url(&path)).send().await.expect("asset");
        assert_eq!(asset.status(), 200);
        assert_eq!(asset.headers()["cache-control"], "public, max-age=31536000, immutable");
    }
    let missing = http.get(server.url("/pkg/roomcast.fedcba9876543210.js")).send().await.expect("missing");
    assert_eq!(missing.status(), 404);
    assert_ne!(
        missing.headers().get("cache-control").map(|v| v.to_str().unwrap_or("")),
        Some("public, max-age=31536000, immutable")
    );
}
