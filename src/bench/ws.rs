//! MQTT over WebSocket for the load generator (`--ws`, with `-S`: wss): the
//! opening handshake (subprotocol `mqtt`, path `--ws-path`, `/mqtt` by
//! default like emqtt_bench) and the framing of the client's byte stream.
//!
//! Why tungstenite's frame layer and not its `WebSocket`: tungstenite's
//! `WebSocket` drives a `std::io::Read + Write` stream, whereas a client here
//! is a monoio stream (owned buffers, io_uring) split into a reader task and
//! a writer task. Wrapping it would take a fake in-memory stream between the
//! two and two more copies of every frame. So the client keeps its own
//! buffers and uses tungstenite (well kept, the usual Rust WebSocket crate)
//! for what must be exactly right: frame headers ([`FrameHeader`] parse and
//! format, which validate lengths and opcodes), the `Sec-WebSocket-Key` and
//! its expected `Sec-WebSocket-Accept`; httparse (which tungstenite uses too)
//! parses the HTTP response. The sink, blocking std I/O, uses tungstenite's
//! full server side.
//!
//! MQTT is a byte stream inside binary frames (MQTT 5 section 6): a frame
//! boundary need not be a packet boundary, so the writer sends each flush of
//! its buffer (hundreds of PUBLISHes) as one frame, masked as RFC 6455
//! requires of a client, and the reader streams data frames into the MQTT
//! read buffer without waiting for a whole frame.

use super::stream::{ReadHalf, WriteHalf};
use bytes::{Buf, BufMut, BytesMut};
use std::hash::{BuildHasher, Hasher};
use std::io::Cursor;
use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};

/// Longest HTTP response head accepted during the handshake.
const RESPONSE_HEAD_MAX_BYTES: usize = 16 * 1024;
/// Control frames carry at most this much payload (RFC 6455 section 5.5).
const CONTROL_PAYLOAD_MAX: u64 = 125;

/// Sends the opening handshake and checks the server's answer. Returns the
/// bytes that followed the response head (the first frames).
pub async fn client_handshake<R: ReadHalf, W: WriteHalf>(
    reader: &mut R,
    writer: &mut W,
    host: &str,
    path: &str,
) -> Result<BytesMut, String> {
    let key = tungstenite::handshake::client::generate_key();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"
    );
    let (res, _) = writer.write_all(BytesMut::from(request.as_bytes())).await;
    res.map_err(|e| format!("WebSocket handshake: {e}"))?;
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        if let Some(head_len) = parse_response(&buf, &key)? {
            return Ok(buf.split_off(head_len));
        }
        if buf.len() > RESPONSE_HEAD_MAX_BYTES {
            return Err("WebSocket handshake: HTTP response head too long".into());
        }
        match reader.read_append(&mut buf, 4096).await {
            Ok(0) => return Err("WebSocket handshake: connection closed by the server".into()),
            Ok(_) => {}
            Err(e) => return Err(format!("WebSocket handshake: {e}")),
        }
    }
}

/// `Ok(None)`: the response head is not complete yet.
fn parse_response(buf: &[u8], key: &str) -> Result<Option<usize>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("WebSocket handshake: bad HTTP response: {e}")),
    };
    let code = response.code.unwrap_or(0);
    if code != 101 {
        let why = response.reason.unwrap_or("");
        return Err(format!(
            "WebSocket handshake: HTTP {code} {why} (expected 101 Switching Protocols)"
        ));
    }
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_string())
    };
    if !header("Upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket")) {
        return Err("WebSocket handshake: no `Upgrade: websocket` in the response".into());
    }
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    if header("Sec-WebSocket-Accept").as_deref() != Some(accept.as_str()) {
        return Err("WebSocket handshake: wrong or missing Sec-WebSocket-Accept".into());
    }
    // RFC 6455 4.1: a subprotocol the client did not offer fails the connection.
    if let Some(p) = header("Sec-WebSocket-Protocol")
        && p != "mqtt"
    {
        return Err(format!(
            "WebSocket handshake: server chose subprotocol {p:?}, not \"mqtt\""
        ));
    }
    Ok(Some(head_len))
}

/// XORs `buf` with `mask`, `buf[0]` taking mask byte `offset % 4`.
fn apply_mask(buf: &mut [u8], mask: [u8; 4], offset: usize) {
    let m = [0, 1, 2, 3].map(|i| mask[(offset + i) % 4]);
    let wide = u64::from_ne_bytes([m[0], m[1], m[2], m[3], m[0], m[1], m[2], m[3]]);
    let mut chunks = buf.chunks_exact_mut(8);
    for c in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(c);
        c.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    // A multiple of 8 bytes went before: the remainder starts at mask byte 0.
    for (b, k) in chunks.into_remainder().iter_mut().zip(m.iter().cycle()) {
        *b ^= k;
    }
}

/// The writer's side: frames client data, each frame with a fresh mask.
pub struct WsWriter {
    rng: u64,
}

impl Default for WsWriter {
    fn default() -> Self {
        // A per-process random seed from std (SipHash keys); masks need to be
        // unpredictable to intermediaries, not cryptographically strong.
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        WsWriter { rng: seed | 1 }
    }
}

impl WsWriter {
    fn next_mask(&mut self) -> [u8; 4] {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        ((self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32).to_ne_bytes()
    }

    /// Appends `payload` to `out` as one masked, final frame of `opcode`.
    fn frame(&mut self, opcode: OpCode, payload: &[u8], out: &mut BytesMut) -> Result<(), String> {
        let mask = self.next_mask();
        let header = FrameHeader {
            is_final: true,
            rsv1: false,
            rsv2: false,
            rsv3: false,
            opcode,
            mask: Some(mask),
        };
        out.reserve(header.len(payload.len() as u64) + payload.len());
        header
            .format(payload.len() as u64, &mut out.writer())
            .map_err(|e| format!("WebSocket frame: {e}"))?;
        let start = out.len();
        out.extend_from_slice(payload);
        if let Some(body) = out.get_mut(start..) {
            apply_mask(body, mask, 0);
        }
        Ok(())
    }

    /// MQTT bytes as one binary frame.
    pub fn binary(&mut self, payload: &[u8], out: &mut BytesMut) -> Result<(), String> {
        self.frame(OpCode::Data(Data::Binary), payload, out)
    }

    /// The answer to a ping with `payload`.
    pub fn pong(&mut self, payload: &[u8], out: &mut BytesMut) -> Result<(), String> {
        self.frame(OpCode::Control(Control::Pong), payload, out)
    }

    /// A close frame with status 1000 (normal closure).
    pub fn close(&mut self, out: &mut BytesMut) -> Result<(), String> {
        self.frame(OpCode::Control(Control::Close), &1000u16.to_be_bytes(), out)
    }
}

/// The reader's side: socket bytes in `raw`, MQTT bytes out.
#[derive(Default)]
pub struct WsReader {
    /// Bytes read from the socket, not yet unframed.
    pub raw: BytesMut,
    /// Payload bytes of the current data frame still to come.
    left: u64,
    mask: Option<[u8; 4]>,
    /// Payload bytes of the current data frame already unmasked.
    done: usize,
}

impl WsReader {
    /// A reader that starts with `raw` (what followed the handshake response).
    pub fn new(raw: BytesMut) -> Self {
        WsReader {
            raw,
            ..Default::default()
        }
    }

    /// Moves the payload of every data frame in `raw` (including the start
    /// of an incomplete one) to `mqtt`, and the payload of each ping to
    /// `pings`. `Ok(false)`: the server sent a close frame.
    pub fn decode(
        &mut self,
        mqtt: &mut BytesMut,
        pings: &mut Vec<Vec<u8>>,
    ) -> Result<bool, String> {
        loop {
            if self.left > 0 {
                let n = self.left.min(self.raw.len() as u64) as usize;
                if n == 0 {
                    return Ok(true);
                }
                let chunk = self.raw.split_to(n);
                let start = mqtt.len();
                mqtt.extend_from_slice(&chunk);
                if let (Some(mask), Some(body)) = (self.mask, mqtt.get_mut(start..)) {
                    apply_mask(body, mask, self.done);
                }
                self.done += n;
                self.left -= n as u64;
                continue;
            }
            let (header, len, head_len) = {
                let mut cursor = Cursor::new(&self.raw[..]);
                match FrameHeader::parse(&mut cursor) {
                    Ok(Some((h, len))) => (h, len, cursor.position() as usize),
                    Ok(None) => return Ok(true),
                    Err(e) => return Err(format!("bad WebSocket frame: {e}")),
                }
            };
            if header.rsv1 || header.rsv2 || header.rsv3 {
                return Err(
                    "WebSocket frame with reserved bits set (no extension was agreed)".into(),
                );
            }
            match header.opcode {
                OpCode::Data(Data::Binary | Data::Continue) => {
                    self.raw.advance(head_len);
                    self.left = len;
                    self.mask = header.mask;
                    self.done = 0;
                }
                OpCode::Data(Data::Text) => {
                    return Err("WebSocket text frame: MQTT travels in binary frames".into());
                }
                OpCode::Control(c @ (Control::Ping | Control::Pong | Control::Close)) => {
                    if len > CONTROL_PAYLOAD_MAX {
                        return Err("WebSocket control frame over 125 bytes".into());
                    }
                    if self.raw.len() < head_len + len as usize {
                        return Ok(true);
                    }
                    self.raw.advance(head_len);
                    let mut payload = self.raw.split_to(len as usize).to_vec();
                    if let Some(mask) = header.mask {
                        apply_mask(&mut payload, mask, 0);
                    }
                    match c {
                        Control::Ping => pings.push(payload),
                        Control::Close => return Ok(false),
                        _ => {}
                    }
                }
                _ => return Err("WebSocket frame with a reserved opcode".into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_matches_the_bytewise_definition() {
        let mask = [0x12, 0x34, 0x56, 0x78];
        for len in [0, 1, 3, 7, 8, 9, 17, 64, 65] {
            for offset in 0..4 {
                let data: Vec<u8> = (0..len as u8).collect();
                let mut fast = data.clone();
                apply_mask(&mut fast, mask, offset);
                let slow: Vec<u8> = data
                    .iter()
                    .enumerate()
                    .map(|(i, b)| b ^ mask[(i + offset) % 4])
                    .collect();
                assert_eq!(fast, slow, "len {len} offset {offset}");
            }
        }
    }

    #[test]
    fn client_frames_are_masked_and_decode_back_in_any_split() {
        let mut w = WsWriter::default();
        let mut wire = BytesMut::new();
        let big: Vec<u8> = (0..70_000u32).map(|i| i as u8).collect();
        w.binary(b"\x30\x05\x00\x01ahi", &mut wire).unwrap();
        w.binary(&big, &mut wire).unwrap();
        w.pong(b"p", &mut wire).unwrap();
        // Masked: the MASK bit of the first frame is set and the payload differs.
        assert_eq!(wire[0], 0x82);
        assert_eq!(wire[1] & 0x80, 0x80);
        assert_ne!(&wire[6..13], b"\x30\x05\x00\x01ahi");
        let mut want = b"\x30\x05\x00\x01ahi".to_vec();
        want.extend_from_slice(&big);
        for step in [1, 5, 4096, wire.len()] {
            let mut r = WsReader::default();
            let (mut mqtt, mut pings) = (BytesMut::new(), Vec::new());
            for piece in wire.chunks(step) {
                r.raw.extend_from_slice(piece);
                assert!(r.decode(&mut mqtt, &mut pings).unwrap());
            }
            assert_eq!(&mqtt[..], &want[..], "step {step}");
            assert!(pings.is_empty(), "a pong is not a ping");
        }
    }

    #[test]
    fn server_frames_ping_close_and_errors() {
        // Unmasked binary "ab", ping "x", binary "c", close.
        let wire = b"\x82\x02ab\x89\x01x\x82\x01c\x88\x02\x03\xe8";
        let mut r = WsReader::new(BytesMut::from(&wire[..]));
        let (mut mqtt, mut pings) = (BytesMut::new(), Vec::new());
        assert!(!r.decode(&mut mqtt, &mut pings).unwrap(), "close seen");
        assert_eq!(&mqtt[..], b"abc");
        assert_eq!(pings, vec![b"x".to_vec()]);
        for (bad, why) in [
            (&b"\x81\x01a"[..], "text"),
            (&b"\xc2\x01a"[..], "reserved bits"),
            (&b"\x83\x01a"[..], "opcode"),
            (&b"\x89\x7e\x00\x7e"[..], "125"),
        ] {
            let mut r = WsReader::new(BytesMut::from(bad));
            let e = r.decode(&mut mqtt, &mut pings).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
    }

    #[test]
    fn handshake_response_checks() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let ok = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                  Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n\x02";
        assert_eq!(
            parse_response(ok.as_bytes(), key).unwrap(),
            Some(ok.len() - 1)
        );
        assert_eq!(parse_response(&ok.as_bytes()[..40], key).unwrap(), None);
        let e = parse_response(b"HTTP/1.1 404 Not Found\r\n\r\n", key).unwrap_err();
        assert!(e.contains("404"), "{e}");
        let wrong = ok.replace("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "AAAA");
        let e = parse_response(wrong.as_bytes(), key).unwrap_err();
        assert!(e.contains("Sec-WebSocket-Accept"), "{e}");
        let other = ok.replace("Protocol: mqtt", "Protocol: chat");
        let e = parse_response(other.as_bytes(), key).unwrap_err();
        assert!(e.contains("chat"), "{e}");
    }
}
