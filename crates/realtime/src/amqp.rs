//! The bus over RabbitMQ, for processes that scale out.
//!
//! Everything goes through one durable topic exchange, as persistent
//! messages confirmed by the broker. Two kinds of consumption:
//! - **push**: every process has its own exclusive queue bound to all
//!   topics, so a user connected to any notifier hears every message;
//! - **shared**: one durable queue consumed by all processes of a role
//!   (storing history), so each message is handled once.
//!
//! Connections are re-established with backoff; while the broker is away,
//! `publish` fails and the outbox keeps the messages until it returns.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{Bus, BusError, Message};

/// Exchange and queue names start with a prefix (`swiftdrop` by default),
/// so separate deployments (or test runs) can share one broker.
fn exchange(prefix: &str) -> String {
    format!("{prefix}.events")
}
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Message ids remembered to drop redeliveries.
const SEEN_CAPACITY: usize = 65_536;

/// Remembers recent message ids: a broker delivers at least once.
struct Seen {
    ids: HashSet<Uuid>,
    order: VecDeque<Uuid>,
}

impl Seen {
    fn new() -> Self {
        Seen {
            ids: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    /// True the first time an id is seen.
    fn first(&mut self, id: Uuid) -> bool {
        if !self.ids.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > SEEN_CAPACITY
            && let Some(old) = self.order.pop_front()
        {
            self.ids.remove(&old);
        }
        true
    }
}

async fn open(url: &str, prefix: &str) -> lapin::Result<(Connection, Channel)> {
    let connection = Connection::connect(url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    channel
        .exchange_declare(
            exchange(prefix).as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    Ok((connection, channel))
}

/// Declares `queue` (server-named when empty), binds it to every topic of
/// the exchange and starts consuming it with manual acks.
async fn consume_all(
    channel: &Channel,
    queue: &str,
    options: QueueDeclareOptions,
    exchange_name: &str,
) -> lapin::Result<lapin::Consumer> {
    let declared = channel
        .queue_declare(queue.into(), options, FieldTable::default())
        .await?;
    let name = declared.name().clone();
    channel
        .queue_bind(
            name.clone(),
            exchange_name.into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    channel
        .basic_consume(
            name,
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
}

fn decode(delivery: &lapin::message::Delivery) -> Option<Message> {
    serde_json::from_slice(&delivery.data).ok()
}

/// Keeps a connection up, with backoff, running `session` on each one
/// until `stop`.
async fn supervise<F, Fut>(
    url: String,
    prefix: String,
    what: &'static str,
    stop: CancellationToken,
    mut session: F,
) where
    F: FnMut(Connection, Channel) -> Fut,
    Fut: Future<Output = lapin::Result<()>>,
{
    let mut backoff = Duration::from_millis(100);
    while !stop.is_cancelled() {
        match open(&url, &prefix).await {
            Ok((connection, channel)) => {
                tracing::info!(what, "connected to the broker");
                backoff = Duration::from_millis(100);
                tokio::select! {
                    outcome = session(connection, channel) => {
                        if let Err(err) = outcome {
                            tracing::warn!(what, %err, "broker session ended; reconnecting");
                        }
                    }
                    () = stop.cancelled() => return,
                }
            }
            Err(err) => tracing::warn!(what, %err, ?backoff, "broker unreachable; retrying"),
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = stop.cancelled() => return,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// The bus over RabbitMQ: publishes with confirms, and feeds this process's
/// subscribers from its own queue.
pub struct AmqpBus {
    publisher: tokio::sync::Mutex<Option<(Connection, Channel)>>,
    url: String,
    prefix: String,
    local: broadcast::Sender<Message>,
}

impl AmqpBus {
    /// Starts the push consumer of this process; it runs until `stop`.
    pub fn start(url: &str, prefix: &str, stop: CancellationToken) -> Arc<AmqpBus> {
        let (local, _) = broadcast::channel(16_384);
        let bus = Arc::new(AmqpBus {
            publisher: tokio::sync::Mutex::new(None),
            url: url.to_owned(),
            prefix: prefix.to_owned(),
            local,
        });
        let sender = bus.local.clone();
        let exchange_name = exchange(prefix);
        let sessions = Arc::new(std::sync::atomic::AtomicU64::new(0));
        tokio::spawn(supervise(
            url.to_owned(),
            prefix.to_owned(),
            "push consumer",
            stop,
            move |connection, channel| {
                let sender = sender.clone();
                let exchange_name = exchange_name.clone();
                let sessions = sessions.clone();
                async move {
                    // An exclusive, server-named queue: this process's copy of every message.
                    let options = QueueDeclareOptions {
                        exclusive: true,
                        auto_delete: true,
                        ..Default::default()
                    };
                    let mut consumer = consume_all(&channel, "", options, &exchange_name).await?;
                    // The queue of an earlier session went with its
                    // connection, and with it whatever was published since.
                    if sessions.fetch_add(1, std::sync::atomic::Ordering::Relaxed) > 0 {
                        let _ = sender.send(Message::resync());
                    }
                    let mut seen = Seen::new();
                    while let Some(delivery) = consumer.next().await {
                        let delivery = delivery?;
                        if let Some(message) = decode(&delivery)
                            && seen.first(message.id)
                        {
                            let _ = sender.send(message);
                        }
                        delivery.ack(BasicAckOptions::default()).await?;
                    }
                    drop(connection);
                    Ok(())
                }
            },
        ));
        bus
    }

    async fn publisher(&self) -> Result<Channel, BusError> {
        let mut slot = self.publisher.lock().await;
        if let Some((connection, channel)) = slot.as_ref()
            && connection.status().connected()
            && channel.status().connected()
        {
            return Ok(channel.clone());
        }
        *slot = None;
        let (connection, channel) = open(&self.url, &self.prefix)
            .await
            .map_err(|e| BusError::Unavailable(e.to_string()))?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| BusError::Unavailable(e.to_string()))?;
        *slot = Some((connection, channel.clone()));
        Ok(channel)
    }
}

#[async_trait]
impl Bus for AmqpBus {
    async fn publish(&self, message: Message) -> Result<(), BusError> {
        let channel = self.publisher().await?;
        let body = serde_json::to_vec(&message).map_err(|e| BusError::Unavailable(e.to_string()))?;
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_message_id(message.id.to_string().into())
            .with_content_type("application/json".into());
        let confirm = channel
            .basic_publish(
                exchange(&self.prefix).as_str().into(),
                message.topic.as_str().into(),
                BasicPublishOptions::default(),
                &body,
                properties,
            )
            .await
            .map_err(|e| BusError::Unavailable(e.to_string()))?
            .await
            .map_err(|e| BusError::Unavailable(e.to_string()))?;
        if confirm.is_nack() {
            return Err(BusError::Unavailable("the broker refused the message".into()));
        }
        Ok(())
    }

    fn subscribe(&self) -> broadcast::Receiver<Message> {
        self.local.subscribe()
    }

    async fn ping(&self) -> Result<(), BusError> {
        self.publisher().await.map(drop)
    }
}

/// Consumes the durable queue `<prefix>.<name>` shared by every process
/// of a role: each message is handled by one of them, acknowledged only
/// once `handle` succeeds (a failure puts it back for a retry).
pub fn consume_shared<H, Fut>(url: &str, prefix: &str, name: &'static str, stop: CancellationToken, handle: H)
where
    H: Fn(Message) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let queue = format!("{prefix}.{name}");
    let exchange_name = exchange(prefix);
    tokio::spawn(supervise(
        url.to_owned(),
        prefix.to_owned(),
        name,
        stop,
        move |connection, channel| {
            let handle = handle.clone();
            let (queue, exchange_name) = (queue.clone(), exchange_name.clone());
            async move {
                channel.basic_qos(100, BasicQosOptions::default()).await?;
                let options = QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                };
                let mut consumer = consume_all(&channel, &queue, options, &exchange_name).await?;
                while let Some(delivery) = consumer.next().await {
                    let delivery = delivery?;
                    let Some(message) = decode(&delivery) else {
                        // Not ours to read: drop it rather than loop on it.
                        delivery.ack(BasicAckOptions::default()).await?;
                        continue;
                    };
                    match handle(message).await {
                        Ok(()) => {
                            delivery.ack(BasicAckOptions::default()).await?;
                        }
                        Err(err) => {
                            tracing::warn!(queue = %queue, %err, "handling failed; the message goes back to the queue");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            delivery
                                .nack(BasicNackOptions {
                                    requeue: true,
                                    ..Default::default()
                                })
                                .await?;
                        }
                    }
                }
                drop(connection);
                Ok(())
            }
        },
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redeliveries_are_recognised() {
        let mut seen = Seen::new();
        let id = Uuid::now_v7();
        assert!(seen.first(id));
        assert!(!seen.first(id));
        for _ in 0..SEEN_CAPACITY {
            seen.first(Uuid::now_v7());
        }
        assert!(seen.first(id), "old ids are forgotten");
    }
}
