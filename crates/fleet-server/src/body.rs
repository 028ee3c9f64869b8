//! Response bodies made of parts built once and reused, and their gzip.
//!
//! Browsers (and most HTTP clients) send `Accept-Encoding: gzip`; a 30 KB
//! decision page then takes about 8 KB on the wire. Compressing it per
//! request would cost more than the rest of the request, so each reused
//! part is compressed once, when it is built: kept as raw deflate ending in a
//! sync flush (byte-aligned, not final), so that parts can be joined into one
//! deflate stream (RFC 1951). The bytes made for one request (the approver,
//! their token, the form's CSRF values) go in as stored, uncompressed blocks;
//! the gzip trailer's CRC-32 is combined from the parts' (RFC 1952).

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::io::Write;

/// Below this, gzip's header and trailer eat most of the gain.
const MIN_GZIP: usize = 512;

/// A part of a response reused between requests: its bytes, the same as raw
/// deflate blocks ending on a byte boundary, and their CRC-32.
pub struct Packed {
    plain: Bytes,
    deflate: Bytes,
    crc: crc32fast::Hasher,
}

impl Packed {
    pub fn new(plain: impl Into<Bytes>) -> Packed {
        let plain: Bytes = plain.into();
        let mut crc = crc32fast::Hasher::new();
        crc.update(&plain);
        Packed {
            deflate: Bytes::from(sync_flushed_deflate(&plain).unwrap_or_else(|_| {
                // Cannot happen (it writes to memory); stored blocks are valid too.
                let mut stored = Vec::new();
                stored_blocks(&mut stored, &plain);
                stored
            })),
            plain,
            crc,
        }
    }

    pub fn len(&self) -> usize {
        self.plain.len()
    }

    /// Roughly the memory it holds.
    pub fn weight(&self) -> usize {
        64 + self.plain.len() + self.deflate.len()
    }
}

/// Raw deflate of `plain`, ending with a sync flush (an empty stored block),
/// so that more blocks may follow.
fn sync_flushed_deflate(plain: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::write::DeflateEncoder::new(
        Vec::with_capacity(plain.len() / 3 + 64),
        flate2::Compression::default(),
    );
    encoder.write_all(plain)?;
    // The sync flush; not `finish`, which would end the stream.
    encoder.flush()?;
    Ok(encoder.get_ref().clone())
}

/// One part of a response body.
pub enum Part<'a> {
    /// Built once, compressed once.
    Packed(&'a Packed),
    /// Made for this request.
    Fresh(&'a [u8]),
}

impl Part<'_> {
    fn len(&self) -> usize {
        match self {
            Part::Packed(p) => p.len(),
            Part::Fresh(b) => b.len(),
        }
    }
}

/// The parts one after another, uncompressed.
fn concat(parts: &[Part<'_>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(Part::len).sum());
    for p in parts {
        match p {
            Part::Packed(p) => out.extend_from_slice(&p.plain),
            Part::Fresh(b) => out.extend_from_slice(b),
        }
    }
    out
}

/// The parts as one gzip member.
pub fn gzip(parts: &[Part<'_>]) -> Vec<u8> {
    let capacity = 32
        + parts
            .iter()
            .map(|p| match p {
                Part::Packed(p) => p.deflate.len(),
                Part::Fresh(b) => b.len() + 5 * (b.len() / 0xFFFF + 1),
            })
            .sum::<usize>();
    let mut out = Vec::with_capacity(capacity);
    // Magic, deflate, no flags, no mtime, no extra flags, OS unknown.
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
    let mut crc = crc32fast::Hasher::new();
    let mut size: u64 = 0;
    for p in parts {
        match p {
            Part::Packed(p) => {
                out.extend_from_slice(&p.deflate);
                crc.combine(&p.crc);
            }
            Part::Fresh(bytes) => {
                stored_blocks(&mut out, bytes);
                crc.update(bytes);
            }
        }
        size += p.len() as u64;
    }
    // The final block: empty, fixed Huffman codes (BFINAL 1, BTYPE 01, end of block).
    out.extend_from_slice(&[0x03, 0x00]);
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    // ISIZE is the length modulo 2^32.
    out.extend_from_slice(&(size as u32).to_le_bytes());
    out
}

/// `bytes` as non-final stored blocks; the stream is on a byte boundary
/// before and after (every part ends on one).
fn stored_blocks(out: &mut Vec<u8>, bytes: &[u8]) {
    for chunk in bytes.chunks(0xFFFF) {
        let len = chunk.len() as u16;
        // BFINAL 0, BTYPE 00, then padding to the byte boundary.
        out.push(0);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
}

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

/// A response of `parts`, gzipped when the request accepts it and it is
/// large enough to gain.
pub fn response(
    status: StatusCode,
    content_type: &'static str,
    request: &HeaderMap,
    parts: &[Part<'_>],
) -> Response {
    let size: usize = parts.iter().map(Part::len).sum();
    if size >= MIN_GZIP && accepts_gzip(request) {
        respond(status, content_type, gzip(parts), true)
    } else {
        respond(status, content_type, concat(parts), false)
    }
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

    /// The parts joined, and their gzip joined from the parts' own (see
    /// `gzip`), so nothing is compressed again.
    pub fn from_parts(parts: &[Part<'_>]) -> Cached {
        let plain = concat(parts);
        let gzip = (plain.len() >= MIN_GZIP).then(|| Bytes::from(gzip(parts)));
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
    fn joined_parts_are_one_valid_gzip_of_their_concatenation() {
        let page = "<article><p>The same paragraph, again and again.</p></article>\n".repeat(500);
        let shared = Packed::new(page.clone());
        let small = Packed::new("</aside></main>");
        let empty = Packed::new("");
        // Larger than one stored block holds, and not compressible.
        let big: Vec<u8> = (0..70_000u32).map(|i| (i * 7919 % 251) as u8).collect();
        let cases: Vec<Vec<Part<'_>>> = vec![
            vec![Part::Packed(&shared)],
            vec![Part::Fresh(b"<p>for you</p>")],
            vec![],
            vec![
                Part::Fresh(b"<html><p>approver@example.com</p>"),
                Part::Packed(&shared),
                Part::Fresh(b""),
                Part::Packed(&empty),
                Part::Fresh(&big),
                Part::Packed(&small),
            ],
        ];
        for parts in &cases {
            let gz = gzip(parts);
            assert_eq!(gunzip(&gz), concat(parts));
        }
        let once = gzip(&[Part::Packed(&shared)]);
        assert!(once.len() * 10 < page.len(), "compressed: {}", once.len());
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
