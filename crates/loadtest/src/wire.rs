//! A lean HTTP/1.1 client for the hot loops: one keep-alive connection at
//! a time per worker, bound to a loopback source address that rotates so
//! no address exceeds the server's per-address limits.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpSocket;

/// Source addresses 127.2.0.1 onwards, handed out round-robin.
pub struct AddressPool {
    size: usize,
    next: AtomicUsize,
}

impl AddressPool {
    pub fn new(size: usize) -> Arc<AddressPool> {
        Arc::new(AddressPool {
            size: size.clamp(1, 60_000),
            next: AtomicUsize::new(0),
        })
    }

    pub fn next(&self) -> IpAddr {
        let n = self.next.fetch_add(1, Ordering::Relaxed) % self.size;
        let base = u32::from(Ipv4Addr::new(127, 2, 0, 1));
        IpAddr::V4(Ipv4Addr::from(base + n as u32))
    }
}

/// One worker's connection, replaced after `uses_per_address` requests.
pub struct Connection {
    server: SocketAddr,
    host: String,
    pool: Arc<AddressPool>,
    uses_per_address: usize,
    sender: Option<SendRequest<Full<Bytes>>>,
    uses: usize,
}

/// What one request came back with.
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
    pub latency: Duration,
}

impl Connection {
    pub fn new(server: SocketAddr, pool: Arc<AddressPool>, uses_per_address: usize) -> Connection {
        Connection {
            server,
            host: server.to_string(),
            pool,
            uses_per_address: uses_per_address.max(1),
            sender: None,
            uses: 0,
        }
    }

    async fn connect(&mut self) -> anyhow::Result<()> {
        let socket = TcpSocket::new_v4()?;
        socket
            .bind(SocketAddr::new(self.pool.next(), 0))
            .context("bind a loopback source address")?;
        let stream = socket.connect(self.server).await.context("connect")?;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        self.sender = Some(sender);
        self.uses = 0;
        Ok(())
    }

    /// Sends one request and reads the whole answer.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Bytes>,
    ) -> anyhow::Result<Answer> {
        if self.sender.is_none() || self.uses >= self.uses_per_address {
            self.sender = None;
            self.connect().await?;
        }
        self.uses += 1;
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = match body {
            Some(body) => request
                .header("content-type", "application/json")
                .body(Full::new(body))?,
            None => request.body(Full::new(Bytes::new()))?,
        };
        let started = Instant::now();
        let sender = self.sender.as_mut().context("connected above")?;
        let outcome = async {
            sender.ready().await?;
            let response = sender.send_request(request).await?;
            let status = response.status().as_u16();
            let body = response.into_body().collect().await?.to_bytes();
            anyhow::Ok((status, body))
        }
        .await;
        match outcome {
            Ok((status, body)) => Ok(Answer {
                status,
                body,
                latency: started.elapsed(),
            }),
            Err(err) => {
                // A broken connection is replaced on the next request.
                self.sender = None;
                Err(err)
            }
        }
    }
}
