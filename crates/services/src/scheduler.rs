//! Time drives state: events go live and close, reservations expire, on
//! time with no request arriving, and correctly after a restart that missed
//! the moment (every step applies whatever is overdue).

use std::sync::Arc;
use std::time::Duration;

use domain::clock::Clock;
use store::Store;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::auctions::AuctionService;
use crate::events::EventService;
use crate::sales::SalesService;

/// The longest the scheduler sleeps without looking (a safety net for
/// changes made by other processes).
const MAX_SLEEP: Duration = Duration::from_secs(1);

pub struct Scheduler {
    pub store: Arc<dyn Store>,
    pub events: Arc<EventService>,
    pub sales: Arc<SalesService>,
    pub auctions: Arc<AuctionService>,
    pub clock: Clock,
    /// Poked when an event's times change (or a test moves the clock), so
    /// a nearer moment is not missed.
    pub wake: Arc<Notify>,
}

impl Scheduler {
    /// Runs until `stop` is cancelled. A step in progress always finishes:
    /// a transaction is never abandoned half-way.
    pub async fn run(self, stop: CancellationToken) {
        while !stop.is_cancelled() {
            let sleep = match self.step().await {
                Ok(sleep) => sleep,
                Err(err) => {
                    tracing::warn!(%err, "scheduler step failed; retrying");
                    MAX_SLEEP
                }
            };
            tokio::select! {
                () = tokio::time::sleep(sleep) => {}
                () = self.wake.notified() => {}
                () = stop.cancelled() => {}
            }
        }
    }

    /// Applies everything due now; returns how long to sleep.
    pub async fn step(&self) -> crate::Result<Duration> {
        let now = self.clock.now();
        let transitions = self.store.advance_statuses(now).await?;
        self.events.transitioned(&transitions).await;
        self.auctions.open_due(now).await?;
        // Settled before expiry, so a winner's hold starts counting at once.
        self.auctions.settle_due(now).await?;
        let expired = self.sales.expire_due(now).await?;
        if expired > 0 {
            tracing::info!(expired, "reservations expired; stock returned");
        }
        let next = [
            self.store.next_transition_at().await?,
            self.sales.next_expiry_at().await?,
            self.auctions.next_moment().await?,
        ]
        .into_iter()
        .flatten()
        .min();
        let lag = self.clock.now() - now;
        metrics::histogram!("swiftdrop_scheduler_step_seconds")
            .record(lag.num_microseconds().unwrap_or(0) as f64 / 1e6);
        Ok(match next {
            Some(at) => (at - self.clock.now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(MAX_SLEEP),
            None => MAX_SLEEP,
        })
    }
}
