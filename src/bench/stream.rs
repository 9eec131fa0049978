//! The two halves of a client's stream, as the reader task and the writer
//! task use them: plain TCP (monoio's split halves, straight through), or
//! rustls over TCP ([`tls_connect`]).
//!
//! Why not monoio-rustls: its split TLS stream lets the read half write a
//! TLS alert when a record fails to decrypt or the peer sends an alert, while
//! the write half may hold the shared write buffer in an io_uring write; that
//! panics ("buffer ref expected", seen with a server that refuses a missing
//! client certificate). Here both halves share one `rustls::ClientConnection`
//! in a `RefCell` borrowed only between awaits, never across one: the reader
//! feeds it ciphertext and takes plaintext, the writer gives it plaintext and
//! writes the records it produces. Each half owns its own socket buffer.

use bytes::{Buf, BytesMut};
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf};
use monoio::net::TcpStream;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};
use std::cell::RefCell;
use std::io::{self, BufRead};
use std::rc::Rc;
use std::sync::Arc;

/// Ciphertext read per syscall (a few TLS records).
const TLS_READ_CHUNK_BYTES: usize = 64 * 1024;

/// What the client's reader needs from its half of the stream.
pub trait ReadHalf {
    /// Appends what one read returns to `buf`. `Ok(0)`: end of stream.
    async fn read_append(&mut self, buf: &mut BytesMut, chunk: usize) -> io::Result<usize>;
}

/// What the client's writer needs from its half of the stream.
pub trait WriteHalf {
    /// Writes all of `buf` and hands it back.
    async fn write_all(&mut self, buf: BytesMut) -> (io::Result<()>, BytesMut);
    /// Ends the stream in the transport's way (TLS: close_notify).
    async fn shutdown(&mut self);
}

/// Appends what one read returns to `buf` (growing it by `chunk` when less
/// than a quarter of that is free). `Ok(0)`: end of stream.
pub async fn read_append<R: AsyncReadRent>(
    reader: &mut R,
    buf: &mut BytesMut,
    chunk: usize,
) -> io::Result<usize> {
    if buf.capacity() - buf.len() < chunk / 4 {
        buf.reserve(chunk);
    }
    // monoio reads into the start of a BytesMut: read into the spare part.
    let len = buf.len();
    let (res, slice) = reader.read(std::mem::take(buf).slice_mut(len..)).await;
    *buf = slice.into_inner();
    res
}

impl ReadHalf for OwnedReadHalf<TcpStream> {
    #[inline]
    async fn read_append(&mut self, buf: &mut BytesMut, chunk: usize) -> io::Result<usize> {
        read_append(self, buf, chunk).await
    }
}

impl WriteHalf for OwnedWriteHalf<TcpStream> {
    #[inline]
    async fn write_all(&mut self, buf: BytesMut) -> (io::Result<()>, BytesMut) {
        let (res, buf) = AsyncWriteRentExt::write_all(self, buf).await;
        (res.map(|_| ()), buf)
    }

    async fn shutdown(&mut self) {
        let _ = AsyncWriteRent::shutdown(self).await;
    }
}

type Conn = Rc<RefCell<ClientConnection>>;

/// The reading half of a TLS stream.
pub struct TlsReader {
    io: OwnedReadHalf<TcpStream>,
    conn: Conn,
    /// Ciphertext read but not yet given to rustls.
    raw: BytesMut,
}

/// The writing half of a TLS stream.
pub struct TlsWriter {
    io: OwnedWriteHalf<TcpStream>,
    conn: Conn,
    /// TLS records to write.
    out: Vec<u8>,
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// Moves every TLS record rustls has queued into `out`.
fn queue_records(conn: &mut ClientConnection, out: &mut Vec<u8>) -> io::Result<()> {
    while conn.wants_write() {
        conn.write_tls(out)?;
    }
    Ok(())
}

/// Gives rustls the ciphertext in `raw` (all of it, unless a record fails),
/// moving the plaintext it yields to `plain`. On a TLS error rustls has queued
/// an alert: it goes out with the next write.
fn feed(conn: &mut ClientConnection, raw: &mut BytesMut, plain: &mut BytesMut) -> io::Result<()> {
    while !raw.is_empty() {
        // Drain first: rustls refuses more input while its plaintext buffer is full.
        take_plaintext(conn, plain)?;
        let mut slice = &raw[..];
        let n = conn.read_tls(&mut slice)?;
        raw.advance(n);
        conn.process_new_packets().map_err(tls_error)?;
        if n == 0 {
            break;
        }
    }
    take_plaintext(conn, plain)?;
    Ok(())
}

/// Appends the plaintext rustls holds to `plain`. `Ok(true)`: the peer ended
/// the TLS session cleanly (close_notify).
fn take_plaintext(conn: &mut ClientConnection, plain: &mut BytesMut) -> io::Result<bool> {
    let mut reader = conn.reader();
    loop {
        match reader.fill_buf() {
            Ok([]) => return Ok(true),
            Ok(chunk) => {
                let n = chunk.len();
                plain.extend_from_slice(chunk);
                reader.consume(n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        }
    }
}

/// TLS handshake on `tcp` as a client of `name`, then the stream's halves.
/// Bytes read past the handshake stay in the reader.
pub async fn tls_connect(
    mut tcp: TcpStream,
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
) -> io::Result<(TlsReader, TlsWriter)> {
    let mut conn = ClientConnection::new(config, name).map_err(tls_error)?;
    // The writer hands over whole buffers (hundreds of PUBLISHes): no limit.
    conn.set_buffer_limit(None);
    let mut raw = BytesMut::new();
    let mut out = Vec::new();
    let mut failed = None;
    while conn.is_handshaking() && failed.is_none() {
        queue_records(&mut conn, &mut out)?;
        if !out.is_empty() {
            let (res, buf) = AsyncWriteRentExt::write_all(&mut tcp, out).await;
            res?;
            out = buf;
            out.clear();
        }
        if !conn.is_handshaking() {
            break;
        }
        if raw.is_empty() && read_append(&mut tcp, &mut raw, TLS_READ_CHUNK_BYTES).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed during the TLS handshake",
            ));
        }
        let mut slice = &raw[..];
        let n = conn.read_tls(&mut slice)?;
        raw.advance(n);
        if let Err(e) = conn.process_new_packets() {
            failed = Some(e);
        } else if n == 0 {
            // close_notify before the handshake ended: rustls takes no more.
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "TLS session closed during the handshake",
            ));
        }
    }
    // The last flight (or the alert that says why the handshake failed).
    queue_records(&mut conn, &mut out)?;
    if !out.is_empty() {
        let (res, buf) = AsyncWriteRentExt::write_all(&mut tcp, out).await;
        out = buf;
        out.clear();
        if failed.is_none() {
            res?;
        }
    }
    if let Some(e) = failed {
        return Err(tls_error(e));
    }
    let conn = Rc::new(RefCell::new(conn));
    let (r, w) = monoio::io::Splitable::into_split(tcp);
    Ok((
        TlsReader {
            io: r,
            conn: conn.clone(),
            raw,
        },
        TlsWriter { io: w, conn, out },
    ))
}

impl ReadHalf for TlsReader {
    async fn read_append(&mut self, buf: &mut BytesMut, _chunk: usize) -> io::Result<usize> {
        let start = buf.len();
        loop {
            let closed = {
                let mut conn = self.conn.borrow_mut();
                feed(&mut conn, &mut self.raw, buf)?;
                take_plaintext(&mut conn, buf)?
            };
            if buf.len() > start || closed {
                return Ok(buf.len() - start);
            }
            if read_append(&mut self.io, &mut self.raw, TLS_READ_CHUNK_BYTES).await? == 0 {
                // End of TCP: rustls says whether that was clean.
                let mut conn = self.conn.borrow_mut();
                conn.read_tls(&mut io::empty())?;
                conn.process_new_packets().map_err(tls_error)?;
                take_plaintext(&mut conn, buf)?;
                return Ok(buf.len() - start);
            }
        }
    }
}

impl WriteHalf for TlsWriter {
    async fn write_all(&mut self, buf: BytesMut) -> (io::Result<()>, BytesMut) {
        let queued = {
            let mut conn = self.conn.borrow_mut();
            io::Write::write_all(&mut conn.writer(), &buf)
                .and_then(|_| queue_records(&mut conn, &mut self.out))
        };
        if let Err(e) = queued {
            return (Err(e), buf);
        }
        let (res, mut out) =
            AsyncWriteRentExt::write_all(&mut self.io, std::mem::take(&mut self.out)).await;
        out.clear();
        self.out = out;
        (res.map(|_| ()), buf)
    }

    async fn shutdown(&mut self) {
        let queued = {
            let mut conn = self.conn.borrow_mut();
            conn.send_close_notify();
            queue_records(&mut conn, &mut self.out)
        };
        if queued.is_ok() && !self.out.is_empty() {
            let (_, out) =
                AsyncWriteRentExt::write_all(&mut self.io, std::mem::take(&mut self.out)).await;
            self.out = out;
        }
        let _ = AsyncWriteRent::shutdown(&mut self.io).await;
    }
}
