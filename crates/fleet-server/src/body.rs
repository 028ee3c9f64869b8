//! Response bodies built once and served many times, with their gzip.
//!
//! Browsers (and most HTTP clients) send `Accept-Encoding: gzip`; a 30 KB
//! decision page then takes about 5 KB on the wire. Compressing per request
//! would cost more than the rest of the request, so a cached body is
//! compressed once, when it is built, and both forms are kept.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::io::Write;

/// Below this, gzip's header and trailer eat most of the gain.
const MIN_GZIP: usize = 512;

/// Whether the request's `Accept-Encoding` accepts gzip (a `q` of 0 refuses it).
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut params = coding.split(';');
            let name = params.next().unwrap_or_default().trim();
            let q = params
                .filter_map(|p| p.trim().strip_prefix("q="))
                .map(|q| q.trim().parse::<f32>().unwrap_or(0.0))
                .next()
                .unwrap_or(1.0);
            q > 0.0 && (name.eq_ignore_ascii_case("gzip") || name == "*")
        })
}

/// Says `Vary: Accept-Encoding` either way, since the same URL may answer
/// either encoding.
fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Body>,
    gzipped: bool,
) -> Response {
    let mut r = (status, body.into()).into_response();
    let headers = r.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if gzipped {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    r
}

/// A response body built once and served as is (no copy), with its gzip
/// made once too.
#[derive(Clone)]
pub struct Cached {
    plain: Bytes,
    gzip: Option<Bytes>,
}

impl Cached {
    pub fn new(plain: Vec<u8>) -> Cached {
        let gzip = (plain.len() >= MIN_GZIP)
            .then(|| {
                let mut encoder = flate2::write::GzEncoder::new(
                    Vec::with_capacity(plain.len() / 4 + 64),
                    flate2::Compression::default(),
                );
                encoder.write_all(&plain)?;
                encoder.finish()
            })
            // Writing to memory cannot fail; if it did, serve it uncompressed.
            .and_then(Result::ok)
            .map(Bytes::from);
        Cached {
            plain: Bytes::from(plain),
            gzip,
        }
    }

    /// Roughly the memory it holds.
    pub fn weight(&self) -> usize {
        64 + self.plain.len() + self.gzip.as_ref().map_or(0, Bytes::len)
    }

    pub fn response(
        &self,
        status: StatusCode,
        content_type: &'static str,
        request: &HeaderMap,
    ) -> Response {
        match &self.gzip {
            Some(gz) if accepts_gzip(request) => respond(status, content_type, gz.clone(), true),
            _ => respond(status, content_type, self.plain.clone(), false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gunzip(gz: &[u8]) -> Vec<u8> {
        // GzDecoder checks the CRC-32 and the length in the trailer.
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_end(&mut out)
            .unwrap_or_else(|e| panic!("not valid gzip: {e}"));
        out
    }

    #[test]
    fn gzip_only_when_accepted() {
        let accepts = |value: Option<&str>| {
            let mut h = HeaderMap::new();
            if let Some(v) = value {
                h.insert(
                    header::ACCEPT_ENCODING,
                    HeaderValue::from_str(v).unwrap_or_else(|e| panic!("{e}")),
                );
            }
            accepts_gzip(&h)
        };
        assert!(accepts(Some("gzip, deflate, br")));
        assert!(accepts(Some("br;q=1.0, GZIP;q=0.5")));
        assert!(accepts(Some("*")));
        assert!(!accepts(None));
        assert!(!accepts(Some("br, deflate")));
        assert!(!accepts(Some("gzip;q=0, br")));
        assert!(!accepts(Some("gzip; q=0.0")));
        assert!(!accepts(Some("identity")));
    }

    #[test]
    fn cached_bodies_answer_in_the_encoding_asked_for() {
        let json = format!(
            "[{}]",
            vec!["{\"id\":\"0190\",\"status\":\"waiting\"}"; 100].join(",")
        );
        let cached = Cached::new(json.clone().into_bytes());
        let mut browser = HeaderMap::new();
        browser.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip, deflate, br"),
        );
        let zipped = cached.response(StatusCode::OK, "application/json", &browser);
        let plain = cached.response(StatusCode::OK, "application/json", &HeaderMap::new());
        assert_eq!(zipped.headers()[header::CONTENT_ENCODING], "gzip");
        assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
        for r in [&zipped, &plain] {
            assert_eq!(r.headers()[header::VARY], "accept-encoding");
            assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        }
        let gz = cached.gzip.clone().unwrap_or_default();
        assert_eq!(gunzip(&gz), json.as_bytes());
        assert_eq!(cached.plain, json.as_bytes());
        // Too small to gain: never compressed.
        let tiny = Cached::new(b"[]".to_vec());
        let r = tiny.response(StatusCode::OK, "application/json", &browser);
        assert!(r.headers().get(header::CONTENT_ENCODING).is_none());
    }
}
