//! The two on-disk log formats, encoder and decoder side by side.
//!
//! # json-file (Docker's, byte for byte)
//! One JSON object per line: `{"log":"hello\n","stream":"stdout","time":"2024-01-02T03:04:05.123456789Z"}`.
//! `log` ends in `\n` unless the record is a partial line (a line longer than 16 KiB is cut into
//! 16 KiB records, the last carrying the newline). Strings are escaped as Go's `encoding/json`
//! does (`<`, `>`, `&`, U+2028/2029 as `\u00XX`; invalid UTF-8 as U+FFFD).
//!
//! # local (Wharf's compact binary format)
//! A sequence of records, each framed so the file can be read forwards and backwards:
//! ```text
//! u32 LE  n            length of the body
//! u8      stream       1 = stdout, 2 = stderr
//! u8      flags        bit 0: partial (the line continues in the next record)
//! i64 LE  time         nanoseconds since the Unix epoch, UTC
//! [n-10]  bytes        the line without its trailing newline
//! u32 LE  n            the same length again (for reading from the end)
//! ```

use bytes::Bytes;

use super::time;

/// Which output stream a log record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamKind {
    Stdout,
    Stderr,
}

impl StreamKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
        }
    }
}

/// One log record as the reader yields it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub stream: StreamKind,
    /// Nanoseconds since the Unix epoch.
    pub timestamp: i64,
    /// The bytes, including the trailing `\n` of a complete line in json-file (as Docker
    /// returns them); local records get their `\n` back on read.
    pub bytes: Bytes,
    /// The line continues in the next entry.
    pub partial: bool,
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `s` JSON-escaped the way Go's encoding/json does (HTML-safe, invalid UTF-8 → U+FFFD).
pub fn escape_json_go(s: &[u8], out: &mut Vec<u8>) {
    let mut chunks = s.utf8_chunks();
    for chunk in chunks.by_ref() {
        let valid = chunk.valid().as_bytes();
        let mut start = 0;
        let mut i = 0;
        while i < valid.len() {
            let c = valid[i];
            let esc: Option<&[u8]> = match c {
                b'"' => Some(b"\\\""),
                b'\\' => Some(b"\\\\"),
                b'\n' => Some(b"\\n"),
                b'\r' => Some(b"\\r"),
                b'\t' => Some(b"\\t"),
                _ => None,
            };
            if let Some(e) = esc {
                out.extend_from_slice(&valid[start..i]);
                out.extend_from_slice(e);
                i += 1;
                start = i;
            } else if c < 0x20 || c == b'<' || c == b'>' || c == b'&' {
                out.extend_from_slice(&valid[start..i]);
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(c >> 4) as usize]);
                out.push(HEX[(c & 0xf) as usize]);
                i += 1;
                start = i;
            } else if c == 0xE2 && i + 2 < valid.len() && valid[i + 1] == 0x80 && (valid[i + 2] & 0xFE) == 0xA8 {
                out.extend_from_slice(&valid[start..i]);
                out.extend_from_slice(if valid[i + 2] == 0xA8 { b"\\u2028" } else { b"\\u2029" });
                i += 3;
                start = i;
            } else {
                i += 1;
            }
        }
        out.extend_from_slice(&valid[start..]);
        if !chunk.invalid().is_empty() {
            out.extend_from_slice(b"\\ufffd");
        }
    }
}

/// Appends one json-file record (with its newline) to `out`.
pub fn encode_json_file(stream: StreamKind, line: &[u8], partial: bool, nanos: i64, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"log\":\"");
    escape_json_go(line, out);
    if !partial {
        out.extend_from_slice(b"\\n");
    }
    out.extend_from_slice(b"\",\"stream\":\"");
    out.extend_from_slice(stream.as_str().as_bytes());
    out.extend_from_slice(b"\",\"time\":\"");
    time::format_rfc3339_nano(nanos, out);
    out.extend_from_slice(b"\"}\n");
}

/// Appends one local record to `out`.
pub fn encode_local(stream: StreamKind, line: &[u8], partial: bool, nanos: i64, out: &mut Vec<u8>) {
    let n = (line.len() + 10) as u32;
    out.extend_from_slice(&n.to_le_bytes());
    out.push(match stream {
        StreamKind::Stdout => 1,
        StreamKind::Stderr => 2,
    });
    out.push(u8::from(partial));
    out.extend_from_slice(&nanos.to_le_bytes());
    out.extend_from_slice(line);
    out.extend_from_slice(&n.to_le_bytes());
}

/// Decodes the body of a local record (without the two length words).
pub fn decode_local_body(body: &[u8]) -> Option<LogEntry> {
    if body.len() < 10 {
        return None;
    }
    let stream = match body[0] {
        1 => StreamKind::Stdout,
        2 => StreamKind::Stderr,
        _ => return None,
    };
    let partial = body[1] & 1 != 0;
    let timestamp = i64::from_le_bytes(body[2..10].try_into().ok()?);
    let mut bytes = Vec::with_capacity(body.len() - 9);
    bytes.extend_from_slice(&body[10..]);
    if !partial {
        bytes.push(b'\n');
    }
    Some(LogEntry { stream, timestamp, bytes: Bytes::from(bytes), partial })
}

fn hex4(b: &[u8]) -> Option<u32> {
    let mut v = 0;
    for &c in b.get(..4)? {
        v = v * 16 + (c as char).to_digit(16)?;
    }
    Some(v)
}

/// Unescapes a JSON string body (between the quotes) into `out`; returns the index just past the
/// closing quote.
fn unescape_json_string(s: &[u8], out: &mut Vec<u8>) -> Option<usize> {
    let mut i = 0;
    loop {
        let rel = memchr::memchr2(b'"', b'\\', &s[i..])?;
        out.extend_from_slice(&s[i..i + rel]);
        i += rel;
        if s[i] == b'"' {
            return Some(i + 1);
        }
        let e = *s.get(i + 1)?;
        i += 2;
        match e {
            b'"' => out.push(b'"'),
            b'\\' => out.push(b'\\'),
            b'/' => out.push(b'/'),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'u' => {
                let mut cp = hex4(&s[i..])?;
                i += 4;
                if (0xD800..0xDC00).contains(&cp) && s.get(i..i + 2) == Some(b"\\u") {
                    let lo = hex4(&s[i + 2..])?;
                    if (0xDC00..0xE000).contains(&lo) {
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                        i += 6;
                    }
                }
                let ch = char::from_u32(cp).unwrap_or('\u{FFFD}');
                let mut b = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut b).as_bytes());
            }
            _ => return None,
        }
    }
}

/// Decodes one json-file line (without its newline). Fast path for the layout Docker and the
/// shim write; any other valid JSON object with the same fields is accepted through serde.
pub fn decode_json_file(line: &[u8]) -> Option<LogEntry> {
    decode_json_fast(line).or_else(|| decode_json_slow(line))
}

fn decode_json_fast(line: &[u8]) -> Option<LogEntry> {
    let rest = line.strip_prefix(b"{\"log\":\"")?;
    let mut bytes = Vec::with_capacity(rest.len());
    let end = unescape_json_string(rest, &mut bytes)?;
    let rest = &rest[end..];
    let (stream, rest) = if let Some(r) = rest.strip_prefix(b",\"stream\":\"stdout\"") {
        (StreamKind::Stdout, r)
    } else if let Some(r) = rest.strip_prefix(b",\"stream\":\"stderr\"") {
        (StreamKind::Stderr, r)
    } else {
        return None;
    };
    // Optional `"attrs":{...}` sits between stream and time; leave that to the slow path.
    let rest = rest.strip_prefix(b",\"time\":\"")?;
    let q = memchr::memchr(b'"', rest)?;
    let timestamp = time::parse_rfc3339(&rest[..q])?;
    let partial = bytes.last() != Some(&b'\n');
    Some(LogEntry { stream, timestamp, bytes: Bytes::from(bytes), partial })
}

fn decode_json_slow(line: &[u8]) -> Option<LogEntry> {
    #[derive(serde::Deserialize)]
    struct Rec {
        log: String,
        stream: String,
        time: String,
    }
    let r: Rec = serde_json::from_slice(line).ok()?;
    let stream = match r.stream.as_str() {
        "stderr" => StreamKind::Stderr,
        _ => StreamKind::Stdout,
    };
    let timestamp = time::parse_rfc3339(r.time.as_bytes())?;
    let partial = !r.log.ends_with('\n');
    Some(LogEntry { stream, timestamp, bytes: Bytes::from(r.log.into_bytes()), partial })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_file_matches_docker_bytes() {
        let mut out = Vec::new();
        encode_json_file(StreamKind::Stdout, b"a \"b\" <c>\t\x01", false, 1_700_000_000_123_000_000, &mut out);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "{\"log\":\"a \\\"b\\\" \\u003cc\\u003e\\t\\u0001\\n\",\"stream\":\"stdout\",\"time\":\"2023-11-14T22:13:20.123Z\"}\n"
        );
        let e = decode_json_file(&out[..out.len() - 1]).unwrap();
        assert_eq!(&e.bytes[..], b"a \"b\" <c>\t\x01\n");
        assert!(!e.partial);
        assert_eq!(e.timestamp, 1_700_000_000_123_000_000);
    }

    #[test]
    fn invalid_utf8_becomes_replacement_and_agrees_with_serde() {
        let mut out = Vec::new();
        encode_json_file(StreamKind::Stderr, b"x\xffy \xe2\x80\xa8 \xf0\x9f\x98\x80", true, 0, &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["log"], "x\u{FFFD}y \u{2028} \u{1F600}");
        let e = decode_json_file(&out[..out.len() - 1]).unwrap();
        assert_eq!(e.bytes, v["log"].as_str().unwrap().as_bytes());
        assert!(e.partial);
        assert_eq!(e.stream, StreamKind::Stderr);
        let slow = decode_json_slow(&out[..out.len() - 1]).unwrap();
        assert_eq!(slow, e);
    }

    #[test]
    fn local_round_trip() {
        let mut out = Vec::new();
        encode_local(StreamKind::Stderr, b"hello", false, 42, &mut out);
        let n = u32::from_le_bytes(out[0..4].try_into().unwrap()) as usize;
        assert_eq!(out.len(), n + 8);
        let e = decode_local_body(&out[4..4 + n]).unwrap();
        assert_eq!(
            e,
            LogEntry {
                stream: StreamKind::Stderr,
                timestamp: 42,
                bytes: Bytes::from_static(b"hello\n"),
                partial: false
            }
        );
    }
}
