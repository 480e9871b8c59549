//! The in-process leaderboards (one `serve`, or a fallback while Redis is
//! away).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use moka::sync::Cache;
use uuid::Uuid;

use super::ordered::OrderedList;
use super::{Leaderboard, RankKey, Standing};

/// Boards one process keeps at most.
pub const LOCAL_MAX_BOARDS: u64 = 10_000;
/// A board nobody read or wrote for this long is dropped (reloaded on use).
pub const LOCAL_BOARD_IDLE: Duration = Duration::from_secs(24 * 3600);

#[derive(Default)]
struct Board {
    loaded: bool,
    order: OrderedList<RankKey>,
    entries: HashMap<Uuid, Standing>,
}

impl Board {
    /// Records one standing unless the user holds a later one; returns the
    /// user's 1-based rank.
    fn record(&mut self, standing: Standing) -> u64 {
        if let Some(held) = self.entries.get(&standing.user_id)
            && held.placed_at_micros > standing.placed_at_micros
        {
            let key = RankKey::of(held);
            return self.order.rank(&key).map_or(0, |r| r as u64 + 1);
        }
        let key = RankKey::of(&standing);
        if let Some(old) = self.entries.insert(standing.user_id, standing) {
            self.order.remove(&RankKey::of(&old));
        }
        self.order.insert(key);
        self.order.rank(&key).map_or(0, |r| r as u64 + 1)
    }
}

/// Leaderboards inside this process.
///
/// Bound: at most [`LOCAL_MAX_BOARDS`] boards, each dropped after
/// [`LOCAL_BOARD_IDLE`] without use; a board holds one entry per bidder of
/// its auction (about 150 bytes each). A dropped board reads as not loaded
/// and is reloaded from the database.
pub struct LocalLeaderboard {
    boards: Cache<Uuid, Arc<Mutex<Board>>>,
}

fn lock(board: &Mutex<Board>) -> MutexGuard<'_, Board> {
    board.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Default for LocalLeaderboard {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalLeaderboard {
    pub fn new() -> Self {
        LocalLeaderboard {
            boards: Cache::builder()
                .max_capacity(LOCAL_MAX_BOARDS)
                .time_to_idle(LOCAL_BOARD_IDLE)
                .build(),
        }
    }

    fn board(&self, auction: Uuid) -> Arc<Mutex<Board>> {
        self.boards.get_with(auction, Default::default)
    }

    pub(crate) fn clear(&self) {
        self.boards.invalidate_all();
    }
}

#[async_trait]
impl Leaderboard for LocalLeaderboard {
    async fn is_loaded(&self, auction: Uuid) -> bool {
        self.boards.get(&auction).is_some_and(|board| lock(&board).loaded)
    }

    async fn load(&self, auction: Uuid, standings: Vec<Standing>) {
        let board = self.board(auction);
        let mut board = lock(&board);
        for standing in standings {
            board.record(standing);
        }
        board.loaded = true;
    }

    async fn record(&self, auction: Uuid, standing: Standing) -> u64 {
        lock(&self.board(auction)).record(standing)
    }

    async fn record_many(&self, auction: Uuid, standings: &[Standing]) {
        let board = self.board(auction);
        let mut board = lock(&board);
        for standing in standings {
            board.record(standing.clone());
        }
    }

    async fn top(&self, auction: Uuid, limit: usize) -> Vec<(u64, Standing)> {
        let Some(board) = self.boards.get(&auction) else {
            return Vec::new();
        };
        let board = lock(&board);
        board
            .order
            .iter()
            .take(limit)
            .zip(1u64..)
            .filter_map(|(key, rank)| board.entries.get(&key.user).map(|s| (rank, s.clone())))
            .collect()
    }

    async fn rank_of(&self, auction: Uuid, user: Uuid) -> Option<u64> {
        let board = self.boards.get(&auction)?;
        let board = lock(&board);
        let key = RankKey::of(board.entries.get(&user)?);
        board.order.rank(&key).map(|r| r as u64 + 1)
    }

    async fn len(&self, auction: Uuid) -> u64 {
        self.boards
            .get(&auction)
            .map_or(0, |board| lock(&board).order.len() as u64)
    }

    async fn forget(&self, auction: Uuid) {
        self.boards.invalidate(&auction);
    }

    async fn forget_all(&self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use rand::{Rng, SeedableRng};

    use super::*;

    fn standing(user: u128, bid: i64, score: f64, at: i64) -> Standing {
        Standing {
            user_id: Uuid::from_u128(user),
            username: format!("user{user}"),
            bid_cents: bid,
            score,
            placed_at_micros: at,
        }
    }

    #[tokio::test]
    async fn ties_replacement_and_ranks() {
        let board = LocalLeaderboard::new();
        let a = Uuid::now_v7();
        assert!(!board.is_loaded(a).await);
        board.load(a, Vec::new()).await;
        assert!(board.is_loaded(a).await);
        assert_eq!(board.len(a).await, 0);

        assert_eq!(board.record(a, standing(1, 100, 10.0, 50)).await, 1);
        // Same score, earlier bid: ahead.
        assert_eq!(board.record(a, standing(2, 100, 10.0, 40)).await, 1);
        // Same score and time: the lower user id first.
        assert_eq!(board.record(a, standing(3, 100, 10.0, 40)).await, 2);
        assert_eq!(board.rank_of(a, Uuid::from_u128(1)).await, Some(3));
        // User 1 bids again, lower: replaced, not added.
        assert_eq!(board.record(a, standing(1, 50, 5.0, 60)).await, 3);
        assert_eq!(board.len(a).await, 3);
        // User 3 raises: first.
        assert_eq!(board.record(a, standing(3, 200, 20.0, 70)).await, 1);
        // A late copy of user 3's older bid changes nothing.
        assert_eq!(board.record(a, standing(3, 100, 10.0, 40)).await, 1);
        let top: Vec<(u64, u128)> = board
            .top(a, 10)
            .await
            .into_iter()
            .map(|(rank, s)| (rank, s.user_id.as_u128()))
            .collect();
        assert_eq!(top, vec![(1, 3), (2, 2), (3, 1)]);
        assert_eq!(board.top(a, 2).await.len(), 2);
        assert_eq!(board.top(a, 0).await.len(), 0);
        assert_eq!(board.top(a, 1).await[0].1, standing(3, 200, 20.0, 70));
        assert_eq!(board.rank_of(a, Uuid::from_u128(9)).await, None);

        // Load merges: per user the later bid stays, whichever side has it
        // (a bid recorded while the database was being read survives).
        board
            .load(
                a,
                vec![
                    standing(7, 1, 1.0, 1),
                    standing(7, 2, 2.0, 2),
                    standing(3, 1, 1.0, 10),
                ],
            )
            .await;
        assert_eq!(board.len(a).await, 4);
        assert_eq!(board.top(a, 1).await[0].1, standing(3, 200, 20.0, 70));
        let seven = board
            .top(a, 5)
            .await
            .into_iter()
            .find(|(_, s)| s.user_id.as_u128() == 7);
        assert_eq!(seven.unwrap().1.bid_cents, 2);
        board.forget(a).await;
        assert!(!board.is_loaded(a).await);
        assert_eq!(board.len(a).await, 0);
    }

    #[tokio::test]
    async fn five_thousand_bidders() {
        // Prints its speed; asserts only results (timings vary by machine).
        let board = LocalLeaderboard::new();
        let a = Uuid::now_v7();
        board.load(a, Vec::new()).await;
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let started = Instant::now();
        for i in 0..10_000i64 {
            let user = rng.random_range(0..5_000u128);
            let score = f64::from(rng.random_range(0..2_000u32)) / 10.0;
            board.record(a, standing(user, i, score, i)).await;
        }
        let records = started.elapsed();
        let started = Instant::now();
        let top = board.top(a, 100).await;
        let top_time = started.elapsed();
        println!(
            "10,000 records: {records:?}; top(100) of {}: {top_time:?}",
            board.len(a).await
        );
        assert_eq!(top.len(), 100);
        assert!(
            top.windows(2)
                .all(|w| RankKey::of(&w[0].1) < RankKey::of(&w[1].1))
        );
        for (rank, s) in &top {
            assert_eq!(board.rank_of(a, s.user_id).await, Some(*rank));
        }
    }
}
