use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use uuid::Uuid;

/// One message on the bus. `id` lets consumers drop duplicates when a
/// broker delivers at least once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: Uuid,
    pub topic: String,
    pub payload: serde_json::Value,
}

impl Message {
    pub fn new(topic: impl Into<String>, payload: serde_json::Value) -> Self {
        Message {
            id: Uuid::now_v7(),
            topic: topic.into(),
            payload,
        }
    }

    /// Said on this process's own feed (never published) when the feed
    /// was broken and is whole again: what it carried meanwhile is gone,
    /// so whoever shows live data must read it afresh.
    pub fn resync() -> Self {
        Message::new(RESYNC, serde_json::json!({"type": RESYNC}))
    }

    pub fn is_resync(&self) -> bool {
        self.topic == RESYNC
    }
}

/// The topic (and payload type) of [`Message::resync`].
pub const RESYNC: &str = "resync";

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("bus unavailable: {0}")]
    Unavailable(String),
}

/// Publish/subscribe between the roles of SwiftDrop. Every subscriber in
/// every process sees every message published after it subscribed.
#[async_trait]
pub trait Bus: Send + Sync + 'static {
    async fn publish(&self, message: Message) -> Result<(), BusError>;
    fn subscribe(&self) -> broadcast::Receiver<Message>;
    /// Answers when the bus can take a message now (`/ready`).
    async fn ping(&self) -> Result<(), BusError> {
        Ok(())
    }
}

/// The bus inside one process (`swiftdrop serve`).
pub struct LocalBus {
    sender: broadcast::Sender<Message>,
}

impl LocalBus {
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity);
        LocalBus { sender }
    }
}

impl Default for LocalBus {
    fn default() -> Self {
        Self::new(4096)
    }
}

#[async_trait]
impl Bus for LocalBus {
    async fn publish(&self, message: Message) -> Result<(), BusError> {
        // No subscriber is not an error: nobody needed to hear it.
        let _ = self.sender.send(message);
        Ok(())
    }

    fn subscribe(&self) -> broadcast::Receiver<Message> {
        self.sender.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_subscriber_hears_each_message() {
        let bus = LocalBus::default();
        let mut a = bus.subscribe();
        let mut b = bus.subscribe();
        let message = Message::new("t", serde_json::json!({"n": 1}));
        bus.publish(message.clone()).await.unwrap();
        assert_eq!(a.recv().await.unwrap(), message);
        assert_eq!(b.recv().await.unwrap(), message);
    }
}
