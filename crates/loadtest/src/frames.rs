//! The client side of the notification socket, as lean as a load generator
//! needs it: the generator shares the cores with the server it measures.

use std::ops::ControlFlow;
use std::time::SystemTime;

use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Opens `/ws` at `url` (token in the query), waits for the greeting, sends
/// `first` if given, and hands back the raw TCP stream for [`FrameReader`].
pub async fn open(url: &str, first: Option<String>) -> anyhow::Result<TcpStream> {
    // Small buffers: the generator holds as many sockets as the server.
    let config = WebSocketConfig::default()
        .read_buffer_size(512)
        .write_buffer_size(0);
    let (mut socket, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), false).await?;
    // The greeting comes through the library; after it the server sends
    // nothing until something changes, so the raw stream starts at a frame
    // boundary.
    match socket.next().await {
        Some(Ok(Frame::Text(text))) if text.contains("\"ready\"") => {}
        _ => anyhow::bail!("no greeting"),
    }
    if let Some(first) = first {
        socket.send(Frame::text(first)).await?;
    }
    match socket.into_inner() {
        MaybeTlsStream::Plain(stream) => Ok(stream),
        _ => anyhow::bail!("plain ws:// only"),
    }
}

/// Reads the server's text frames off `stream`, handing each to `on_text`
/// with when it arrived (ms since the epoch), until `on_text` breaks or the
/// socket ends. Pings are answered on the way.
pub async fn read_texts(stream: &TcpStream, mut on_text: impl FnMut(&str, f64) -> ControlFlow<()>) {
    let mut reader = FrameReader::default();
    loop {
        let Ok(arrived) = reader.fill(stream).await else {
            return;
        };
        while let Some(frame) = reader.next_frame() {
            match frame {
                ServerFrame::Text(text) => {
                    if on_text(&String::from_utf8_lossy(text), arrived).is_break() {
                        return;
                    }
                }
                ServerFrame::Ping => pong(stream),
                ServerFrame::Other => {}
            }
        }
        reader.consume();
    }
}

/// Answers a ping: an empty pong, masked as every client frame must be.
pub fn pong(stream: &TcpStream) {
    let _ = stream.try_write(&[0x8A, 0x80, 0, 0, 0, 0]);
}

pub fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as f64
        / 1000.0
}

/// A frame from the server, as the reader needs it.
enum ServerFrame<'a> {
    Text(&'a [u8]),
    Ping,
    Other,
}

/// Reads the server's frames off the raw socket with as little work as
/// possible (no per-socket codec, no waker juggling): the generator shares
/// the cores with the server it measures, so every cycle it spends shows up
/// as delivery latency. Server frames are unmasked, which keeps this short.
#[derive(Default)]
struct FrameReader {
    buffer: Vec<u8>,
    /// Where the next unparsed frame starts.
    at: usize,
}

impl FrameReader {
    /// Waits for bytes and reads them; returns when they arrived (ms).
    async fn fill(&mut self, stream: &TcpStream) -> std::io::Result<f64> {
        loop {
            stream.readable().await?;
            self.buffer.reserve(1024);
            match stream.try_read_buf(&mut self.buffer) {
                Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                Ok(_) => return Ok(now_ms()),
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(err) => return Err(err),
            }
        }
    }

    /// The next complete frame in the buffer, if there is one.
    fn next_frame(&mut self) -> Option<ServerFrame<'_>> {
        let bytes = &self.buffer[self.at..];
        let (&first, &second) = (bytes.first()?, bytes.get(1)?);
        let (length, header) = match second & 0x7F {
            126 => (
                usize::from(u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?)),
                4,
            ),
            127 => (
                usize::try_from(u64::from_be_bytes(bytes.get(2..10)?.try_into().ok()?)).ok()?,
                10,
            ),
            short => (usize::from(short), 2),
        };
        // A forged 64-bit length must not overflow the end of the range.
        let payload = bytes.get(header..length.checked_add(header)?)?;
        self.at += header + length;
        Some(match first & 0x0F {
            0x1 => ServerFrame::Text(payload),
            0x9 => ServerFrame::Ping,
            _ => ServerFrame::Other,
        })
    }

    /// Drops the frames already parsed.
    fn consume(&mut self) {
        self.buffer.drain(..self.at);
        self.at = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(reader: &mut FrameReader) -> Vec<String> {
        let mut seen = Vec::new();
        while let Some(frame) = reader.next_frame() {
            seen.push(match frame {
                ServerFrame::Text(text) => String::from_utf8_lossy(text).into_owned(),
                ServerFrame::Ping => "ping".to_owned(),
                ServerFrame::Other => "other".to_owned(),
            });
        }
        reader.consume();
        seen
    }

    #[test]
    fn frames_split_across_reads_come_out_whole() {
        let long = "x".repeat(300);
        let mut wire = vec![0x81, 2, b'h', b'i', 0x89, 0];
        wire.extend([0x81, 126, 0x01, 0x2C]);
        wire.extend(long.as_bytes());
        wire.extend([0x88, 0]);
        let mut reader = FrameReader::default();
        let (first, rest) = wire.split_at(10);
        reader.buffer.extend_from_slice(first);
        assert_eq!(frames(&mut reader), ["hi", "ping"]);
        reader.buffer.extend_from_slice(rest);
        assert_eq!(frames(&mut reader), [long.as_str(), "other"]);
        assert!(reader.buffer.is_empty());
    }

    #[test]
    fn a_length_near_the_top_of_the_range_is_just_incomplete() {
        let mut reader = FrameReader::default();
        reader.buffer.extend([0x81, 127]);
        reader.buffer.extend(u64::MAX.to_be_bytes());
        reader.buffer.extend(b"tail");
        assert!(reader.next_frame().is_none());
    }

    /// A server frame as the hub writes it: unmasked, unfragmented.
    fn encode(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0x80 | opcode];
        match payload.len() {
            len @ 0..=125 => out.push(len as u8),
            len @ 126..=0xFFFF => {
                out.push(126);
                out.extend((len as u16).to_be_bytes());
            }
            len => {
                out.push(127);
                out.extend((len as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(payload);
        out
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn arbitrary_bytes_never_panic(chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..8)) {
                let mut reader = FrameReader::default();
                for chunk in chunks {
                    reader.buffer.extend_from_slice(&chunk);
                    let _ = frames(&mut reader);
                }
            }

            #[test]
            fn frames_come_out_whole_however_the_stream_is_cut(
                texts in prop::collection::vec(
                    prop_oneof![".{0,40}", ".{120,130}", "[a-z]{65530,65540}"],
                    1..5,
                ),
                cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
            ) {
                let mut wire = Vec::new();
                for text in &texts {
                    wire.extend(encode(0x1, text.as_bytes()));
                    wire.extend(encode(0x9, b""));
                }
                let mut points: Vec<usize> = cuts.iter().map(|c| c.index(wire.len())).collect();
                points.push(wire.len());
                points.sort_unstable();
                let mut reader = FrameReader::default();
                let mut seen = Vec::new();
                let mut from = 0;
                for to in points {
                    reader.buffer.extend_from_slice(&wire[from..to]);
                    from = to;
                    seen.extend(frames(&mut reader));
                }
                let expected: Vec<String> = texts
                    .iter()
                    .flat_map(|t| [t.clone(), "ping".to_owned()])
                    .collect();
                prop_assert_eq!(seen, expected);
                prop_assert!(reader.buffer.is_empty());
            }
        }
    }
}
