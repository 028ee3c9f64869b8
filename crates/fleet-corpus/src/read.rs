//! Reading one file (or one command's output): hash and count the whole
//! stream, keep at most the per-file cap, decide text vs binary.

use std::io::Read;

/// Bytes inspected for a NUL byte, like git and ripgrep.
const BINARY_PROBE_BYTES: usize = 8 * 1024;

/// What one stream turned out to be.
#[derive(Debug)]
pub(crate) struct Snapshot {
    /// Size of the whole stream.
    pub size: u64,
    /// blake3 of the whole stream, hex.
    pub blake3: String,
    /// Lines in the whole stream (a last line without `\n` counts).
    pub lines: u64,
    pub content: Content,
}

#[derive(Debug)]
pub(crate) enum Content {
    /// Whole lines of text; `truncated` when the stream went on past the cap.
    Text { text: String, truncated: bool },
    /// Not text; the reason goes into the manifest note.
    Binary { reason: &'static str },
}

/// A stream read to the end, before deciding what it is.
#[derive(Debug)]
pub(crate) struct Raw {
    pub size: u64,
    pub blake3: String,
    pub lines: u64,
    /// The first `max_keep` bytes.
    pub kept: Vec<u8>,
    /// The stream went on past `kept`.
    pub truncated: bool,
}

/// Reads `reader` to the end. Only the first `max_keep` bytes are kept in
/// memory; the rest is streamed through the hasher and line counter, so the
/// manifest describes the whole file however large it is.
pub(crate) fn read_capped(
    mut reader: impl Read,
    size_hint: u64,
    max_keep: u64,
) -> std::io::Result<Raw> {
    let keep_capacity = size_hint.min(max_keep).saturating_add(1);
    let mut kept = Vec::with_capacity(usize::try_from(keep_capacity).unwrap_or(usize::MAX));
    (&mut reader).take(max_keep).read_to_end(&mut kept)?;

    let mut hasher = blake3::Hasher::new();
    hasher.update(&kept);
    let mut size = kept.len() as u64;
    let mut newlines = memchr::memchr_iter(b'\n', &kept).count() as u64;
    let mut last_byte = kept.last().copied();
    let mut truncated = false;
    // A short read below the cap means EOF was reached: skip the extra read.
    if size == max_keep {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let chunk = &buf[..n];
            truncated = true;
            hasher.update(chunk);
            size += n as u64;
            newlines += memchr::memchr_iter(b'\n', chunk).count() as u64;
            last_byte = chunk.last().copied();
        }
    }
    let lines = match last_byte {
        None => 0,
        Some(b'\n') => newlines,
        Some(_) => newlines + 1,
    };
    Ok(Raw {
        size,
        blake3: hasher.finalize().to_hex().to_string(),
        lines,
        kept,
        truncated,
    })
}

/// Decides text vs binary for a file: NUL in the first 8 KiB or invalid
/// UTF-8 means binary. Invalid UTF-8 is skipped rather than decoded lossily
/// because replacement characters would put text in front of the model that
/// is not in the file, while the manifest hash claims it is.
pub(crate) fn classify_file(raw: Raw) -> Snapshot {
    let Raw {
        size,
        blake3,
        lines,
        kept,
        truncated,
    } = raw;
    let binary = |reason| Snapshot {
        size,
        blake3: blake3.clone(),
        lines: 0,
        content: Content::Binary { reason },
    };
    let probe = &kept[..kept.len().min(BINARY_PROBE_BYTES)];
    if memchr::memchr(0, probe).is_some() {
        return binary("binary (NUL byte in the first 8 KiB)");
    }
    let kept = if truncated {
        whole_lines_prefix(kept)
    } else {
        kept
    };
    match String::from_utf8(kept) {
        Ok(text) => Snapshot {
            size,
            blake3,
            lines,
            content: Content::Text { text, truncated },
        },
        Err(_) => binary("not valid UTF-8"),
    }
}

/// Source output is decoded lossily: the step asked for this command by
/// name, so dropping it would hide more than a replacement character does.
/// Returns the snapshot and whether decoding was lossy.
pub(crate) fn classify_output(raw: Raw) -> (Snapshot, bool) {
    let kept = if raw.truncated {
        whole_lines_prefix(raw.kept)
    } else {
        raw.kept
    };
    let (text, lossy) = match String::from_utf8(kept) {
        Ok(text) => (text, false),
        Err(e) => (String::from_utf8_lossy(e.as_bytes()).into_owned(), true),
    };
    let snap = Snapshot {
        size: raw.size,
        blake3: raw.blake3,
        lines: raw.lines,
        content: Content::Text {
            text,
            truncated: raw.truncated,
        },
    };
    (snap, lossy)
}

/// The longest prefix that ends with `\n` (empty when the first line alone is
/// longer than what was kept).
pub(crate) fn whole_lines_prefix(mut bytes: Vec<u8>) -> Vec<u8> {
    let keep = memchr::memrchr(b'\n', &bytes).map_or(0, |i| i + 1);
    bytes.truncate(keep);
    bytes
}

/// The prefix of `text` made of whole lines that fits in `max_bytes`.
pub(crate) fn whole_lines_within(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let head = &text.as_bytes()[..max_bytes];
    let end = memchr::memrchr(b'\n', head).map_or(0, |i| i + 1);
    // `end` is just past an ASCII `\n`, so it is a char boundary.
    &text[..end]
}

pub(crate) fn count_lines(text: &str) -> u64 {
    let newlines = memchr::memchr_iter(b'\n', text.as_bytes()).count() as u64;
    match text.as_bytes().last() {
        None => 0,
        Some(b'\n') => newlines,
        Some(_) => newlines + 1,
    }
}
