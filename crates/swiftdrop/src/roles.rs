//! The roles of a process (`serve`, `api`, `notifier`, `worker`) and the
//! background work each one runs; the worker's leader loop.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use services::scheduler::Scheduler;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::App;

/// The background work a process does. Every role serves the same HTTP
/// app (stateless), so a load balancer may route API and WebSocket traffic
/// to any api or notifier process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    /// Scheduler and outbox relay (`worker`): one active at a time.
    pub worker: bool,
    /// Pushes to this process's sockets and stores history (`notifier`).
    pub notifier: bool,
}

impl Roles {
    pub const ALL: Roles = Roles {
        worker: true,
        notifier: true,
    };
    pub const API: Roles = Roles {
        worker: false,
        notifier: false,
    };
    pub const NOTIFIER: Roles = Roles {
        worker: false,
        notifier: true,
    };
    pub const WORKER: Roles = Roles {
        worker: true,
        notifier: false,
    };

    /// The role's name, as `/ready` reports it.
    pub fn name(self) -> &'static str {
        match (self.worker, self.notifier) {
            (true, true) => "serve",
            (false, false) => "api",
            (false, true) => "notifier",
            (true, false) => "worker",
        }
    }
}

pub(crate) type Tasks = Vec<JoinHandle<()>>;

/// Starts the background work of a process: tasks that may simply be
/// dropped, and tasks that must be asked to stop (they write).
pub(crate) fn spawn_background(app: &App, stop: &CancellationToken) -> (Tasks, Tasks) {
    let cache = app.state.accounts.auth_cache();
    let follow = tokio::spawn(cache.follow(app.bus.clone()));
    let limits = app.state.limits.clone();
    let sweep = tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        loop {
            every.tick().await;
            limits.login.sweep();
            limits.api.sweep();
            limits.purchase.sweep();
            limits.bid.sweep();
        }
    });
    // Every process keeps its auction views and boards in step with the
    // others'; a notifier also pushes leaderboards to its sockets.
    let auctions = tokio::spawn(
        app.state
            .auctions
            .clone()
            .follow(app.bus.clone(), app.state.notifications.hub().clone()),
    );
    let events = tokio::spawn(app.state.events.clone().follow(app.bus.clone()));
    let mut tasks = vec![follow, sweep, auctions, events];
    let mut stoppable = Vec::new();
    if app.roles.worker {
        // Writes of other processes (api) wake this process's relay at once.
        let (store, notifications) = (app.store.clone(), app.state.notifications.clone());
        tasks.push(tokio::spawn(async move {
            store.follow_outbox(&|| notifications.outbox_written()).await;
        }));
        stoppable.push(tokio::spawn(lead_and_work(app.worker(), stop.clone())));
    }
    if app.roles.notifier {
        tasks.push(tokio::spawn(app.state.notifications.clone().run_push()));
        let hub = app.state.notifications.hub().clone();
        tasks.push(tokio::spawn(hub.run_heartbeat(
            api::routes::socket::HEARTBEAT,
            api::routes::socket::IDLE_LIMIT,
        )));
        if let Some((url, prefix)) = &app.broker {
            let notifications = app.state.notifications.clone();
            realtime::amqp::consume_shared(url, prefix, "history", stop.clone(), move |message| {
                let notifications = notifications.clone();
                async move {
                    notifications
                        .store_history(&message)
                        .await
                        .map_err(|e| e.to_string())
                }
            });
        }
    }
    (tasks, stoppable)
}

/// What the worker role runs while it leads.
pub(crate) struct Worker {
    app_state: api::AppState,
    store: Arc<dyn store::Store>,
    clock: domain::clock::Clock,
    wake: Arc<tokio::sync::Notify>,
    leader: Arc<std::sync::atomic::AtomicBool>,
}

impl App {
    fn worker(&self) -> Worker {
        Worker {
            app_state: self.state.clone(),
            store: self.store.clone(),
            clock: self.clock.clone(),
            wake: self.schedule_changed.clone(),
            leader: self.leader.clone(),
        }
    }
}

/// The advisory-lock key of the worker role ("SWDR" in ASCII).
const WORKER_LOCK: i32 = 0x5357_4452;
/// How long a worker that is not the leader waits before asking again.
const STANDBY_RETRY: Duration = Duration::from_secs(2);
/// How often the leader checks that it still holds the lock.
const LEADERSHIP_CHECK: Duration = Duration::from_secs(5);

/// Runs the scheduler and the outbox relay while this process holds the
/// worker lock: one worker is active at a time, and another takes over
/// when it goes.
async fn lead_and_work(worker: Worker, stop: CancellationToken) {
    while !stop.is_cancelled() {
        let mut leadership = match worker.store.try_lead(WORKER_LOCK).await {
            Ok(Some(leadership)) => leadership,
            Ok(None) => {
                tokio::select! {
                    () = tokio::time::sleep(STANDBY_RETRY) => continue,
                    () = stop.cancelled() => return,
                }
            }
            Err(err) => {
                tracing::warn!(%err, "cannot ask for the worker lock; retrying");
                tokio::select! {
                    () = tokio::time::sleep(STANDBY_RETRY) => continue,
                    () = stop.cancelled() => return,
                }
            }
        };
        tracing::info!("this process is the active worker");
        worker.leader.store(true, Ordering::Release);
        let term = stop.child_token();
        let scheduler = Scheduler {
            store: worker.store.clone(),
            events: worker.app_state.events.clone(),
            sales: worker.app_state.sales.clone(),
            auctions: worker.app_state.auctions.clone(),
            clock: worker.clock.clone(),
            wake: worker.wake.clone(),
        };
        let tasks = [
            tokio::spawn(scheduler.run(term.clone())),
            tokio::spawn(worker.app_state.notifications.clone().run_relay(term.clone())),
        ];
        loop {
            tokio::select! {
                () = tokio::time::sleep(LEADERSHIP_CHECK) => {}
                () = term.cancelled() => break,
            }
            if !leadership.holds().await {
                tracing::warn!("lost the worker lock; stepping down");
                term.cancel();
            }
        }
        for task in tasks {
            let _ = task.await;
        }
        worker.leader.store(false, Ordering::Release);
    }
}
