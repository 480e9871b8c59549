//! The WebSocket hub: routes each pushed message to the sockets of its
//! recipients. A message is serialized once and shared by every recipient;
//! each socket has a bounded buffer, and a socket whose buffer is full is
//! disconnected rather than allowed to slow the hub or anyone else.

use std::sync::Arc;

use bytes::Bytes;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use dashmap::DashMap;
use tokio::sync::mpsc;
use uuid::Uuid;

/// Messages buffered per socket before it counts as too slow.
pub const CLIENT_BUFFER: usize = 256;

struct Client {
    id: u64,
    sender: mpsc::Sender<Bytes>,
}

#[derive(Default)]
pub struct Hub {
    users: DashMap<Uuid, Vec<Client>>,
    /// Sockets following a topic (an open event page): (user, socket id).
    /// The sender lives only in `users`, so letting a socket go there cuts
    /// it off everywhere.
    topics: DashMap<Uuid, Vec<(Uuid, u64)>>,
    next_id: AtomicU64,
    connections: AtomicUsize,
    dropped_slow: AtomicU64,
}

/// A registered socket; dropping it unregisters the socket.
pub struct Subscription {
    hub: Arc<Hub>,
    user_id: Uuid,
    id: u64,
    pub receiver: mpsc::Receiver<Bytes>,
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

impl Hub {
    pub fn new() -> Arc<Hub> {
        Arc::new(Hub::default())
    }

    pub fn connect(self: &Arc<Self>, user_id: Uuid) -> Subscription {
        let (sender, receiver) = mpsc::channel(CLIENT_BUFFER);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.users.entry(user_id).or_default().push(Client { id, sender });
        self.connections.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!("swiftdrop_websocket_connections").increment(1.0);
        Subscription {
            hub: self.clone(),
            user_id,
            id,
            receiver,
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

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Sockets disconnected for falling behind, since start.
    pub fn dropped_slow(&self) -> u64 {
        self.dropped_slow.load(Ordering::Relaxed)
    }

    /// Pushes to every socket of `user_id`.
    pub fn send_to(&self, user_id: Uuid, message: Bytes) {
        if let Some(mut clients) = self.users.get_mut(&user_id) {
            clients.retain(|client| self.offer(client, &message));
        }
    }

    /// Pushes to every socket following `topic`.
    pub fn send_topic(&self, topic: Uuid, message: Bytes) {
        let Some(followers) = self.topics.get(&topic).map(|f| f.clone()) else {
            return;
        };
        for (user_id, id) in followers {
            if let Some(mut clients) = self.users.get_mut(&user_id) {
                clients.retain(|client| client.id != id || self.offer(client, &message));
            }
        }
    }

    /// Pushes to every connected socket.
    pub fn broadcast(&self, message: Bytes) {
        for mut clients in self.users.iter_mut() {
            clients.retain(|client| self.offer(client, &message));
        }
    }

    /// Queues without waiting; a full or closed socket is let go (its
    /// writer sees the channel close and ends the connection).
    fn offer(&self, client: &Client, message: &Bytes) -> bool {
        match client.sender.try_send(message.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped_slow.fetch_add(1, Ordering::Relaxed);
                self.connections.fetch_sub(1, Ordering::Relaxed);
                metrics::gauge!("swiftdrop_websocket_connections").decrement(1.0);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.connections.fetch_sub(1, Ordering::Relaxed);
                metrics::gauge!("swiftdrop_websocket_connections").decrement(1.0);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn routes_by_user_and_drops_the_slow() {
        let hub = Hub::new();
        let (ann, ben) = (Uuid::now_v7(), Uuid::now_v7());
        let mut a = hub.connect(ann);
        let mut b = hub.connect(ben);
        hub.send_to(ann, Bytes::from_static(b"for ann"));
        hub.broadcast(Bytes::from_static(b"for all"));
        assert_eq!(a.receiver.recv().await.unwrap(), &b"for ann"[..]);
        assert_eq!(a.receiver.recv().await.unwrap(), &b"for all"[..]);
        assert_eq!(b.receiver.recv().await.unwrap(), &b"for all"[..]);
        assert_eq!(hub.connections(), 2);
        // Ben stops reading: once his buffer is full he is let go, Ann is not.
        for _ in 0..=CLIENT_BUFFER {
            hub.broadcast(Bytes::from_static(b"flood"));
            let _ = a.receiver.try_recv();
        }
        assert_eq!(hub.dropped_slow(), 1);
        assert_eq!(hub.connections(), 1);
        drop(a);
        assert_eq!(hub.connections(), 0);
    }

    #[tokio::test]
    async fn topics_reach_only_their_followers() {
        let hub = Hub::new();
        let (ann, ben) = (Uuid::now_v7(), Uuid::now_v7());
        let mut a = hub.connect(ann);
        let mut b = hub.connect(ben);
        let page = Uuid::now_v7();
        a.follow(page);
        hub.send_topic(page, Bytes::from_static(b"stock"));
        assert_eq!(a.receiver.recv().await.unwrap(), &b"stock"[..]);
        assert!(b.receiver.try_recv().is_err());
        a.unfollow(page);
        hub.send_topic(page, Bytes::from_static(b"again"));
        assert!(a.receiver.try_recv().is_err());
    }
}
