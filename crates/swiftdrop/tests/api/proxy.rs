//! A TCP proxy the tests can cut: it stands between the app and the
//! broker, so a test can take the broker away and bring it back.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

pub struct Proxy {
    pub addr: SocketAddr,
    target: SocketAddr,
    cut: CancellationToken,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let cut = CancellationToken::new();
        tokio::spawn(forward(listener, target, cut.clone()));
        Proxy { addr, target, cut }
    }

    /// Refuses new connections and breaks the open ones.
    pub fn cut(&mut self) {
        self.cut.cancel();
    }

    /// Accepts connections again, on the same address.
    pub async fn restore(&mut self) {
        let listener = TcpListener::bind(self.addr).await.expect("rebind proxy");
        self.cut = CancellationToken::new();
        tokio::spawn(forward(listener, self.target, self.cut.clone()));
    }
}

async fn forward(listener: TcpListener, target: SocketAddr, cut: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = cut.cancelled() => return,
        };
        let Ok((mut inbound, _)) = accepted else { continue };
        let cut = cut.clone();
        tokio::spawn(async move {
            let Ok(mut outbound) = TcpStream::connect(target).await else {
                return;
            };
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                () = cut.cancelled() => {}
            }
        });
    }
}
