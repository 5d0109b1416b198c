//! The built front end's file names and how long browsers may keep them.
//! `scripts/build-site.sh` names the JS, WASM and CSS `roomcast.<hash>.*`
//! after their content: such a name never changes meaning, so it is cached
//! for a year without revalidation. Everything else (pages, the API, a
//! `cargo leptos` dev build's plain `roomcast.*`) is revalidated each time.

use std::path::Path;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::http::header::CACHE_CONTROL;
use axum::middleware::Next;
use axum::response::Response;

const STEM: &str = "roomcast";
const HASH_LEN: usize = 16;

/// The name the site's assets are built under: `roomcast.<hash>` when the
/// site root holds a hashed build (the newest, should several be there),
/// else `roomcast`.
pub fn output_name(site_root: &Path) -> String {
    let pkg = site_root.join("pkg");
    let newest = std::fs::read_dir(&pkg)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let hash = name.strip_suffix(".wasm")?.strip_prefix("roomcast.")?;
            let modified = entry.metadata().and_then(|m| m.modified()).ok()?;
            is_hash(hash).then(|| (modified, hash.to_string()))
        })
        .max();
    match newest {
        Some((_, hash)) => format!("{STEM}.{hash}"),
        None => STEM.to_string(),
    }
}

fn is_hash(s: &str) -> bool {
    s.len() == HASH_LEN && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether `path` names a hashed asset, `/pkg/roomcast.<hash>.<ext>`.
pub fn is_immutable(path: &str) -> bool {
    let Some(name) = path.strip_prefix("/pkg/") else {
        return false;
    };
    let Some(rest) = name.strip_prefix("roomcast.") else {
        return false;
    };
    rest.split_once('.').is_some_and(|(hash, ext)| is_hash(hash) && !ext.contains('/'))
}

/// Marks successful answers for hashed assets cacheable for a year.
pub async fn cache_hashed(req: Request, next: Next) -> Response {
    let immutable = is_immutable(req.uri().path());
    let mut response = next.run(req).await;
    if immutable && response.status().is_success() {
        response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hashed_assets_are_immutable() {
        assert!(is_immutable("/pkg/roomcast.0123456789abcdef.wasm"));
        assert!(is_immutable("/pkg/roomcast.0123456789abcdef.css"));
        assert!(!is_immutable("/pkg/roomcast.wasm"));
        assert!(!is_immutable("/pkg/roomcast.0123456789abcde.js"));
        assert!(!is_immutable("/pkg/roomcast.0123456789abcdeg.js"));
        assert!(!is_immutable("/rooms/roomcast.0123456789abcdef.js"));
        assert!(!is_immutable("/favicon.png"));
    }

    #[test]
    fn the_newest_hashed_build_names_the_assets() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(output_name(dir.path()), "roomcast");
        let pkg = dir.path().join("pkg");
        std::fs::create_dir(&pkg).unwrap();
        std::fs::write(pkg.join("roomcast.wasm"), b"dev build").unwrap();
        assert_eq!(output_name(dir.path()), "roomcast");
        std::fs::write(pkg.join("roomcast.00000000000000aa.wasm"), b"old").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(pkg.join("roomcast.00000000000000bb.wasm"), b"new").unwrap();
        assert_eq!(output_name(dir.path()), "roomcast.00000000000000bb");
    }
}
