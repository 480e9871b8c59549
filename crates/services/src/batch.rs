//! Group commit: requests for one hot row (an item being bought, an
//! auction being bid on) queue up, and one task per row takes everything
//! that queued while its previous transaction ran and writes it in a single
//! transaction. The database sees one commit per batch instead of one per
//! request, and the row's lock is taken once per batch.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dashmap::DashMap;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::{Error, Result};

/// How long an idle row's task waits before it stops.
const IDLE: Duration = Duration::from_secs(30);

/// What a batch does with its jobs (each job carries its own reply).
#[async_trait]
pub trait BatchWork: Send + Sync + 'static {
    type Job: Send + 'static;
    async fn run(&self, key: Uuid, jobs: Vec<Self::Job>);
}

/// One task per key, started on demand and stopped when idle, so this
/// holds only the rows being written right now. Each queue holds at most
/// four batches; a full queue makes the caller wait (backpressure).
pub struct GroupCommit<W: BatchWork> {
    work: Arc<W>,
    max_batch: usize,
    queues: Arc<DashMap<Uuid, mpsc::Sender<W::Job>>>,
}

impl<W: BatchWork> GroupCommit<W> {
    pub fn new(work: W, max_batch: usize) -> Self {
        GroupCommit {
            work: Arc::new(work),
            max_batch: max_batch.max(1),
            queues: Arc::new(DashMap::new()),
        }
    }

    /// Queues `job` for `key`'s next batch.
    pub async fn submit(&self, key: Uuid, mut job: W::Job) -> Result<()> {
        // A task that just stopped for idleness refuses the job: start a
        // fresh one and send again.
        for _ in 0..3 {
            let sender = self.queue(key);
            match sender.send(job).await {
                Ok(()) => return Ok(()),
                Err(mpsc::error::SendError(returned)) => {
                    self.queues.remove_if(&key, |_, s| s.same_channel(&sender));
                    job = returned;
                }
            }
        }
        Err(Error::internal("no batch accepted the request"))
    }

    fn queue(&self, key: Uuid) -> mpsc::Sender<W::Job> {
        self.queues
            .entry(key)
            .or_insert_with(|| {
                let (sender, receiver) = mpsc::channel(4 * self.max_batch);
                tokio::spawn(drain(self.work.clone(), key, self.max_batch, receiver));
                sender
            })
            .clone()
    }
}

/// The loop of one key: waits for a job, takes everything queued behind it
/// (up to `max_batch`) and runs the batch.
async fn drain<W: BatchWork>(
    work: Arc<W>,
    key: Uuid,
    max_batch: usize,
    mut receiver: mpsc::Receiver<W::Job>,
) {
    loop {
        let first = match tokio::time::timeout(IDLE, receiver.recv()).await {
            Ok(Some(job)) => job,
            Ok(None) => return,
            Err(_idle) => {
                // Refuse new jobs, then finish the ones already queued.
                receiver.close();
                let mut rest = Vec::new();
                while let Ok(job) = receiver.try_recv() {
                    rest.push(job);
                }
                if !rest.is_empty() {
                    work.run(key, rest).await;
                }
                return;
            }
        };
        let mut jobs = Vec::with_capacity(max_batch);
        jobs.push(first);
        while jobs.len() < max_batch {
            match receiver.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        work.run(key, jobs).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tokio::sync::oneshot;

    use super::*;

    /// Records the size of each batch and answers each job.
    struct Recorder(Mutex<Vec<usize>>);

    #[async_trait]
    impl BatchWork for Recorder {
        type Job = oneshot::Sender<usize>;

        async fn run(&self, _key: Uuid, jobs: Vec<Self::Job>) {
            let size = jobs.len();
            self.0.lock().unwrap().push(size);
            // Hold the batch a moment so the next one gathers a crowd.
            tokio::time::sleep(Duration::from_millis(20)).await;
            for job in jobs {
                let _ = job.send(size);
            }
        }
    }

    #[tokio::test]
    async fn a_crowd_is_written_in_few_batches_each_job_answered_once() {
        let group = Arc::new(GroupCommit::new(Recorder(Mutex::new(Vec::new())), 64));
        let key = Uuid::now_v7();
        let answers: Vec<_> = (0..200)
            .map(|_| {
                let group = group.clone();
                tokio::spawn(async move {
                    let (reply, answer) = oneshot::channel();
                    group.submit(key, reply).await.unwrap();
                    answer.await.unwrap()
                })
            })
            .collect();
        for answer in answers {
            assert!((1..=64).contains(&answer.await.unwrap()));
        }
        let sizes = group.work.0.lock().unwrap().clone();
        assert_eq!(sizes.iter().sum::<usize>(), 200);
        assert!(sizes.len() < 200, "some jobs must share a batch: {sizes:?}");
    }
}
