//! Readiness: whether each dependency this process is configured with
//! answers, in the shape `/ready` reports (see API.md).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use gates::RedisGates;
use realtime::Bus;
use store::Store;

/// How long one dependency may take to answer before it counts as down.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// Serving, without something that only makes it faster or shared
    /// (Redis): purchases still go through the database.
    Degraded,
    Down,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Degraded => "degraded",
            Status::Down => "down",
        }
    }
}

/// One dependency's answer.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    pub up: bool,
    /// What it is (e.g. `sqlite`, `postgres`, `rabbitmq`).
    pub kind: &'static str,
}

#[derive(Debug, Clone)]
pub struct Readiness {
    pub status: Status,
    pub role: &'static str,
    /// For workers: whether this one holds the worker lock.
    pub leader: Option<bool>,
    pub checks: Vec<Check>,
}

pub struct Health {
    store: Arc<dyn Store>,
    /// The broker, when one is configured (`AMQP_URL`).
    broker: Option<Arc<dyn Bus>>,
    /// Redis, when configured (`REDIS_URL`).
    redis: Option<RedisGates>,
    role: &'static str,
    leader: Option<Arc<AtomicBool>>,
}

impl Health {
    pub fn new(
        store: Arc<dyn Store>,
        broker: Option<Arc<dyn Bus>>,
        redis: Option<RedisGates>,
        role: &'static str,
        leader: Option<Arc<AtomicBool>>,
    ) -> Self {
        Health {
            store,
            broker,
            redis,
            role,
            leader,
        }
    }

    pub async fn readiness(&self) -> Readiness {
        let database = async {
            let up = matches!(
                tokio::time::timeout(CHECK_TIMEOUT, self.store.ping()).await,
                Ok(Ok(()))
            );
            if !up {
                tracing::warn!("readiness: the database does not answer");
            }
            Check {
                name: "database",
                up,
                kind: self.store.backend().as_str(),
            }
        };
        let broker = async {
            let bus = self.broker.as_ref()?;
            let up = matches!(tokio::time::timeout(CHECK_TIMEOUT, bus.ping()).await, Ok(Ok(())));
            if !up {
                tracing::warn!("readiness: the broker does not answer");
            }
            Some(Check {
                name: "broker",
                up,
                kind: "rabbitmq",
            })
        };
        let redis = async {
            let redis = self.redis.as_ref()?;
            let up = redis.ping().await.is_ok();
            Some(Check {
                name: "redis",
                up,
                kind: "redis",
            })
        };
        let (database, broker, redis) = tokio::join!(database, broker, redis);
        let checks: Vec<Check> = std::iter::once(database).chain(broker).chain(redis).collect();
        let status = if checks.iter().all(|c| c.up) {
            Status::Ok
        } else if checks.iter().all(|c| c.up || c.name == "redis") {
            // Without Redis every gate answers in-process and sales go
            // through the database's guard: serving, degraded.
            Status::Degraded
        } else {
            Status::Down
        };
        Readiness {
            status,
            role: self.role,
            leader: self.leader.as_ref().map(|l| l.load(Ordering::Acquire)),
            checks,
        }
    }
}
