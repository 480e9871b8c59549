//! The WebSocket hub: routes each pushed message to the sockets of its
//! recipients. A message is serialized and framed once; the frame is
//! written to every socket straight from the pushing side (see
//! [`crate::outlet`]), a broadcast split across the machine's cores. A
//! socket that cannot keep up is let go rather than allowed to slow the
//! hub or anyone else.
//!
//! Heartbeats come from the hub too: one ticker for the process pings every
//! socket and stops the silent ones, so an idle socket holds no timer.
//! It takes the sockets a slice at a time across its period.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::outlet::{self, Outlet, Pushed, Stop};

/// Below this many sockets a broadcast is written on the calling task;
/// above it, it is split across the cores.
const INLINE_BROADCAST: usize = 128;

/// Heartbeat slices per period (see [`Hub::run_heartbeat`]).
const HEARTBEAT_SLICES: u64 = 20;

struct Client {
    id: u64,
    outlet: Arc<Outlet>,
}

pub struct Hub {
    users: DashMap<Uuid, Vec<Client>>,
    /// Sockets following a topic (an open event page): (user, socket id).
    topics: DashMap<Uuid, Vec<(Uuid, u64)>>,
    next_id: AtomicU64,
    connections: AtomicUsize,
    dropped_slow: Arc<AtomicU64>,
    /// How many pieces a large broadcast is written in, at once.
    writers: usize,
    /// Cancelled when the server shuts down: every socket says goodbye.
    going_away: CancellationToken,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            users: DashMap::new(),
            topics: DashMap::new(),
            next_id: AtomicU64::new(0),
            connections: AtomicUsize::new(0),
            dropped_slow: Arc::default(),
            writers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            going_away: CancellationToken::new(),
        }
    }
}

/// The user id under which sockets without a signed-in user are kept: they
/// follow public topics (stock, status, leaderboards) and hear no
/// notification, broadcasts included.
pub const VISITOR: Uuid = Uuid::nil();

/// A registered socket; dropping it unregisters the socket.
pub struct Subscription {
    hub: Arc<Hub>,
    user_id: Uuid,
    id: u64,
}

impl Subscription {
    /// Follows the live data of `topic` (an event: stock, status).
    pub fn follow(&self, topic: Uuid) {
        let mut followers = self.hub.topics.entry(topic).or_default();
        if !followers.contains(&(self.user_id, self.id)) {
            followers.push((self.user_id, self.id));
        }
    }

    pub fn unfollow(&self, topic: Uuid) {
        if let Some(mut followers) = self.hub.topics.get_mut(&topic) {
            followers.retain(|f| *f != (self.user_id, self.id));
        }
        self.hub.topics.remove_if(&topic, |_, f| f.is_empty());
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.remove(self.user_id, self.id);
        let (user, id) = (self.user_id, self.id);
        self.hub.topics.retain(|_, followers| {
            followers.retain(|f| *f != (user, id));
            !followers.is_empty()
        });
    }
}

/// Writes `frame` to each outlet; returns how many overflowed.
fn write_all(outlets: &[Arc<Outlet>], frame: &Bytes) -> u64 {
    outlets
        .iter()
        .filter(|outlet| outlet.push(frame) == Pushed::Overflowed)
        .count() as u64
}

impl Hub {
    pub fn new() -> Arc<Hub> {
        Arc::new(Hub::default())
    }

    /// Registers a socket of `user_id`. `greeting` is written first, before
    /// the socket can be pushed anything: every message routed after the
    /// greeting reaches the socket.
    pub fn connect(self: &Arc<Self>, user_id: Uuid, outlet: Arc<Outlet>, greeting: &[u8]) -> Subscription {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut clients = self.users.entry(user_id).or_default();
            outlet.push(&outlet::text_frame(greeting));
            clients.push(Client {
                id,
                outlet: outlet.clone(),
            });
        }
        // A socket that arrives during shutdown is let go like the others.
        if self.going_away.is_cancelled() {
            outlet.stop(Stop::GoingAway);
        }
        self.connections.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!("swiftdrop_websocket_connections").increment(1.0);
        Subscription {
            hub: self.clone(),
            user_id,
            id,
        }
    }

    fn remove(&self, user_id: Uuid, id: u64) {
        let mut removed = false;
        if let Some(mut clients) = self.users.get_mut(&user_id) {
            let before = clients.len();
            clients.retain(|c| c.id != id);
            removed = clients.len() < before;
        }
        self.users.remove_if(&user_id, |_, clients| clients.is_empty());
        if removed {
            self.connections.fetch_sub(1, Ordering::Relaxed);
            metrics::gauge!("swiftdrop_websocket_connections").decrement(1.0);
        }
    }

    /// At shutdown: stops every socket's pushes with [`Stop::GoingAway`], so
    /// each connection task closes with 1001 and a close frame, and those
    /// still authenticating can follow [`Hub::going_away`].
    pub fn close_all(&self) {
        self.going_away.cancel();
        for outlet in self.outlets_where(|_, _| true) {
            outlet.stop(Stop::GoingAway);
        }
    }

    /// Resolves once [`Hub::close_all`] was called.
    pub async fn going_away(&self) {
        self.going_away.cancelled().await;
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Sockets let go for falling behind, since start.
    pub fn dropped_slow(&self) -> u64 {
        self.dropped_slow.load(Ordering::Relaxed)
    }

    fn count_slow(&self, overflowed: u64) {
        if overflowed > 0 {
            self.dropped_slow.fetch_add(overflowed, Ordering::Relaxed);
            metrics::counter!("swiftdrop_websocket_dropped_slow_total").increment(overflowed);
        }
    }

    /// Pushes to every socket of `user_id`.
    pub fn send_to(&self, user_id: Uuid, message: &[u8]) {
        let outlets = self.outlets_of(user_id);
        self.count_slow(write_all(&outlets, &outlet::text_frame(message)));
    }

    fn outlets_of(&self, user_id: Uuid) -> Vec<Arc<Outlet>> {
        self.users
            .get(&user_id)
            .map(|clients| clients.iter().map(|c| c.outlet.clone()).collect())
            .unwrap_or_default()
    }

    /// Whether any socket of this process follows `topic`.
    pub fn has_followers(&self, topic: Uuid) -> bool {
        self.topics.get(&topic).is_some_and(|f| !f.is_empty())
    }

    /// Every topic some socket of this process follows.
    pub fn followed_topics(&self) -> Vec<Uuid> {
        self.topics.iter().map(|entry| *entry.key()).collect()
    }

    /// Pushes to every socket following `topic`.
    pub async fn send_topic(&self, topic: Uuid, message: &[u8]) {
        let Some(followers) = self.topics.get(&topic).map(|f| f.clone()) else {
            return;
        };
        let outlets: Vec<Arc<Outlet>> = followers
            .into_iter()
            .filter_map(|(user_id, id)| {
                let clients = self.users.get(&user_id)?;
                clients.iter().find(|c| c.id == id).map(|c| c.outlet.clone())
            })
            .collect();
        self.write_split(outlets, outlet::text_frame(message)).await;
    }

    /// Pushes to every socket of a signed-in user.
    pub async fn broadcast(&self, message: &[u8]) {
        let outlets = self.outlets_where(|user, _| user != VISITOR);
        self.write_split(outlets, outlet::text_frame(message)).await;
    }

    /// The sockets whose user and socket id `wanted` accepts.
    fn outlets_where(&self, wanted: impl Fn(Uuid, u64) -> bool) -> Vec<Arc<Outlet>> {
        let mut outlets = Vec::with_capacity(self.connections());
        for clients in self.users.iter() {
            let user = *clients.key();
            outlets.extend(
                clients
                    .iter()
                    .filter(|c| wanted(user, c.id))
                    .map(|c| c.outlet.clone()),
            );
        }
        outlets
    }

    /// Writes one frame to many sockets, in as many pieces as there are
    /// cores, on blocking threads (thousands of writes would otherwise
    /// hold up every other task on a runtime thread). Returns once every
    /// socket has it, so the next message cannot overtake this one.
    async fn write_split(&self, outlets: Vec<Arc<Outlet>>, frame: Bytes) {
        if outlets.len() <= INLINE_BROADCAST {
            self.count_slow(write_all(&outlets, &frame));
            return;
        }
        let piece = outlets.len().div_ceil(self.writers);
        let mut outlets = outlets;
        let mut writers = Vec::with_capacity(self.writers);
        while !outlets.is_empty() {
            let rest = outlets.split_off(piece.min(outlets.len()));
            let mine = std::mem::replace(&mut outlets, rest);
            let frame = frame.clone();
            writers.push(tokio::task::spawn_blocking(move || write_all(&mine, &frame)));
        }
        for writer in writers {
            match writer.await {
                Ok(overflowed) => self.count_slow(overflowed),
                Err(err) => tracing::error!(%err, "a broadcast writer failed"),
            }
        }
    }

    /// For as long as the process runs, each socket once per `period`:
    /// stops it if its client said nothing for `idle_limit`, else pings it.
    /// The sockets are taken a slice at a time, spread over the period, so
    /// 10,000 pings (and their 10,000 pongs) never land in the same instant.
    pub async fn run_heartbeat(self: Arc<Self>, period: Duration, idle_limit: Duration) {
        let slices = HEARTBEAT_SLICES;
        let mut every = tokio::time::interval(period / slices as u32);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        for tick in 1u64.. {
            every.tick().await;
            let slice = tick % slices;
            let cutoff = tokio::time::Instant::now().checked_sub(idle_limit);
            let mut outlets = self.outlets_where(|_, id| id % slices == slice);
            if let Some(cutoff) = cutoff {
                outlets.retain(|outlet| !outlet.stop_if_silent_since(cutoff));
            }
            self.write_split(outlets, outlet::ping_frame()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};

    /// A registered socket and the client end of its connection.
    async fn socket(hub: &Arc<Hub>, user: Uuid) -> (Subscription, Arc<Outlet>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let outlet = Outlet::new(Arc::new(server));
        let subscription = hub.connect(user, outlet.clone(), b"ready");
        let mut client = client;
        assert_eq!(read_frame(&mut client).await, b"ready");
        (subscription, outlet, client)
    }

    /// Reads one short unmasked frame's payload.
    async fn read_frame(client: &mut TcpStream) -> Vec<u8> {
        let mut header = [0u8; 2];
        client.read_exact(&mut header).await.unwrap();
        let mut payload = vec![0u8; usize::from(header[1])];
        client.read_exact(&mut payload).await.unwrap();
        payload
    }

    async fn nothing_more(client: &mut TcpStream) {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_millis(100), client.read(&mut byte)).await;
        assert!(read.is_err(), "unexpected bytes for this socket");
    }

    #[tokio::test]
    async fn routes_by_user_and_broadcasts_to_all() {
        let hub = Hub::new();
        let (ann, ben) = (Uuid::now_v7(), Uuid::now_v7());
        let (_a, _, mut a) = socket(&hub, ann).await;
        let (_b, _, mut b) = socket(&hub, ben).await;
        hub.send_to(ann, b"for ann");
        hub.broadcast(b"for all").await;
        assert_eq!(read_frame(&mut a).await, b"for ann");
        assert_eq!(read_frame(&mut a).await, b"for all");
        assert_eq!(read_frame(&mut b).await, b"for all");
        nothing_more(&mut b).await;
        assert_eq!(hub.connections(), 2);
    }

    #[tokio::test]
    async fn visitors_follow_topics_but_hear_no_broadcast() {
        let hub = Hub::new();
        let (visitor, _, mut v) = socket(&hub, VISITOR).await;
        let (_user, _, mut u) = socket(&hub, Uuid::now_v7()).await;
        let page = Uuid::now_v7();
        visitor.follow(page);
        hub.broadcast(b"for users").await;
        hub.send_topic(page, b"stock").await;
        assert_eq!(read_frame(&mut u).await, b"for users");
        assert_eq!(read_frame(&mut v).await, b"stock");
        nothing_more(&mut v).await;
    }

    #[tokio::test]
    async fn a_large_broadcast_reaches_every_socket_once() {
        let hub = Hub::new();
        let mut sockets = Vec::new();
        for _ in 0..INLINE_BROADCAST * 2 + 3 {
            sockets.push(socket(&hub, Uuid::now_v7()).await);
        }
        hub.broadcast(b"one").await;
        hub.broadcast(b"two").await;
        for (_, _, client) in &mut sockets {
            assert_eq!(read_frame(client).await, b"one");
            assert_eq!(read_frame(client).await, b"two");
        }
        nothing_more(&mut sockets[0].2).await;
        drop(sockets);
        assert_eq!(hub.connections(), 0);
    }

    #[tokio::test]
    async fn topics_reach_only_their_followers() {
        let hub = Hub::new();
        let (sub_a, _, mut a) = socket(&hub, Uuid::now_v7()).await;
        let (_b, _, mut b) = socket(&hub, Uuid::now_v7()).await;
        let page = Uuid::now_v7();
        sub_a.follow(page);
        hub.send_topic(page, b"stock").await;
        assert_eq!(read_frame(&mut a).await, b"stock");
        nothing_more(&mut b).await;
        sub_a.unfollow(page);
        hub.send_topic(page, b"again").await;
        nothing_more(&mut a).await;
    }

    #[tokio::test]
    async fn a_socket_that_stops_reading_is_let_go_and_others_keep_up() {
        let hub = Hub::new();
        let (_slow, slow_outlet, _slow_client) = socket(&hub, Uuid::now_v7()).await;
        let (_fast, fast_outlet, mut fast_client) = socket(&hub, Uuid::now_v7()).await;
        let big = vec![b'z'; 60_000];
        let reader = tokio::spawn(async move {
            let mut sink = vec![0u8; 1 << 16];
            let mut total = 0usize;
            while total < 200 * 60_004 {
                total += fast_client.read(&mut sink).await.unwrap();
            }
        });
        let serving = tokio::spawn(async move { fast_outlet.stopped().await });
        for _ in 0..200 {
            hub.broadcast(&big).await;
            // Paced, as real pushes are: a reading client keeps up.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(slow_outlet.stopped().await, Stop::Slow);
        assert_eq!(hub.dropped_slow(), 1);
        reader.await.unwrap();
        assert!(!serving.is_finished(), "the reading socket was stopped too");
    }

    #[tokio::test]
    async fn close_all_stops_every_socket_and_those_that_come_later() {
        let hub = Hub::new();
        let (_a, a, _a_client) = socket(&hub, Uuid::now_v7()).await;
        let (_b, b, _b_client) = socket(&hub, Uuid::now_v7()).await;
        hub.close_all();
        assert_eq!(a.stopped().await, Stop::GoingAway);
        assert_eq!(b.stopped().await, Stop::GoingAway);
        hub.going_away().await;
        let (_late, late, _late_client) = socket(&hub, Uuid::now_v7()).await;
        assert_eq!(late.stopped().await, Stop::GoingAway);
    }

    #[tokio::test(start_paused = true)]
    async fn heartbeats_ping_the_talkative_and_stop_the_silent() {
        let hub = Hub::new();
        let (_a, talkative, mut a) = socket(&hub, Uuid::now_v7()).await;
        let (_b, silent, _b_client) = socket(&hub, Uuid::now_v7()).await;
        let ticker = tokio::spawn(
            hub.clone()
                .run_heartbeat(Duration::from_secs(20), Duration::from_secs(30)),
        );
        // Within one period every socket is pinged once.
        tokio::time::sleep(Duration::from_secs(21)).await;
        let mut ping = [0u8; 2];
        a.read_exact(&mut ping).await.unwrap();
        assert_eq!(ping, [0x89, 0]);
        nothing_more(&mut a).await;
        talkative.heard();
        tokio::time::sleep(Duration::from_secs(20)).await;
        a.read_exact(&mut ping).await.unwrap();
        assert_eq!(silent.stopped().await, Stop::Idle);
        assert!(
            tokio::time::timeout(Duration::from_millis(1), talkative.stopped())
                .await
                .is_err()
        );
        ticker.abort();
    }
}
