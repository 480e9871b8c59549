//! Auction leaderboards: every bidder's standing, ranked by score
//! (highest first), ties to the earlier bid, then to the lower user id.
//! One entry per user: a new bid replaces the earlier one.

mod local;
mod ordered;
mod redis;

use std::cmp::Ordering;

use async_trait::async_trait;
use uuid::Uuid;

pub use local::LocalLeaderboard;
pub use redis::RedisLeaderboard;

/// One bidder's current bid on an auction.
#[derive(Debug, Clone, PartialEq)]
pub struct Standing {
    pub user_id: Uuid,
    pub username: String,
    pub bid_cents: i64,
    pub score: f64,
    /// When the bid was placed (µs since the Unix epoch): earlier wins a tie.
    pub placed_at_micros: i64,
}

/// The leaderboards of auctions.
#[async_trait]
pub trait Leaderboard: Send + Sync {
    /// Whether the board holds the auction's bids (`load` ran since it was
    /// last lost); when false, read the bids from the database and `load`.
    async fn is_loaded(&self, auction: Uuid) -> bool;

    /// Records the standings read from the database and marks the board
    /// loaded, atomically. Like `record`, per user the later bid stays: a
    /// bid recorded while the database was being read is not lost.
    async fn load(&self, auction: Uuid, standings: Vec<Standing>);

    /// Records a bid, replacing that user's earlier entry; returns the
    /// user's 1-based rank after it. A standing placed before the one the
    /// user holds is ignored, so a late message cannot undo a newer bid.
    async fn record(&self, auction: Uuid, standing: Standing) -> u64;

    /// Records several bids in order, as one change.
    async fn record_many(&self, auction: Uuid, standings: &[Standing]);

    /// The first `limit` standings with their 1-based ranks.
    async fn top(&self, auction: Uuid, limit: usize) -> Vec<(u64, Standing)>;

    /// A user's 1-based rank, if they bid.
    async fn rank_of(&self, auction: Uuid, user: Uuid) -> Option<u64>;

    /// How many users hold a standing.
    async fn len(&self, auction: Uuid) -> u64;

    /// Drops the board (it then reads as not loaded).
    async fn forget(&self, auction: Uuid);

    /// Drops every board this process holds in memory (after it missed
    /// messages): they reload from the database. Shared boards missed
    /// nothing and stay.
    async fn forget_all(&self);
}

/// A standing's place in the order: score descending, then time ascending,
/// then user ascending.
///
/// Scores are compared as Redis compares them: `-0.0` equals `0.0` and a
/// NaN (which Redis refuses) ranks as `-inf`, last.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RankKey {
    pub score: f64,
    pub placed_at: i64,
    pub user: Uuid,
}

/// The score the order (and Redis) uses.
pub(crate) fn rank_score(score: f64) -> f64 {
    if score.is_nan() {
        f64::NEG_INFINITY
    } else if score == 0.0 {
        0.0
    } else {
        score
    }
}

impl RankKey {
    pub fn of(standing: &Standing) -> Self {
        RankKey {
            score: rank_score(standing.score),
            placed_at: standing.placed_at_micros,
            user: standing.user_id,
        }
    }
}

impl Ord for RankKey {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .score
            .total_cmp(&self.score)
            .then(self.placed_at.cmp(&other.placed_at))
            .then(self.user.cmp(&other.user))
    }
}

impl PartialOrd for RankKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for RankKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for RankKey {}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(score: f64, placed_at: i64, user: u128) -> RankKey {
        RankKey {
            score: rank_score(score),
            placed_at,
            user: Uuid::from_u128(user),
        }
    }

    #[test]
    fn order() {
        let mut keys = vec![
            key(1.0, 5, 1),
            key(2.0, 9, 1),
            key(1.0, 3, 2),
            key(1.0, 3, 1),
            key(f64::NAN, 0, 1),
            key(f64::NEG_INFINITY, 0, 0),
            key(-0.0, 2, 0),
            key(0.0, 1, 0),
            key(f64::INFINITY, 100, 0),
        ];
        keys.sort();
        let expected = vec![
            key(f64::INFINITY, 100, 0),
            key(2.0, 9, 1),
            key(1.0, 3, 1),
            key(1.0, 3, 2),
            key(1.0, 5, 1),
            key(0.0, 1, 0),
            key(0.0, 2, 0),
            key(f64::NEG_INFINITY, 0, 0),
            key(f64::NEG_INFINITY, 0, 1),
        ];
        assert_eq!(keys, expected);
        assert_eq!(key(-0.0, 1, 1), key(0.0, 1, 1));
    }
}
