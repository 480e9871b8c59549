//! Leaderboards shared by every process: a sorted set and a hash per
//! auction.
//!
//! # Tie-break encoding
//! Redis orders equal scores by member, byte-wise, and `ZREVRANGE` /
//! `ZREVRANK` walk that order backwards. A member is therefore
//! `hex16(!t) ++ hex32(!u) ++ user_id`, where `t` is the bid time mapped
//! to an unsigned number in the same order (sign bit flipped) and `u` the
//! user id's 128 bits: inverting both makes the earlier bid, then the lower
//! user id, the greater member, which the reverse walk puts first. The
//! fixed-width hex keeps byte order equal to numeric order; the trailing
//! user id lets a script find the entry without decoding. The score itself
//! stays an exact double (no composite score, no precision spent on time).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use redis::{AsyncCommands, Script};
use uuid::Uuid;

use super::{Leaderboard, LocalLeaderboard, Standing, rank_score};
use crate::shared::RedisGates;

/// Both keys of a board vanish after this long without writes; the board
/// then reads as not loaded and is reloaded from the database.
pub const BOARD_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Length of the sort key at the start of a member.
const SORT_KEY_LEN: usize = 48;

/// The shared leaderboards.
///
/// Keys: `{prefix}lb:{auction}:z`, a sorted set (member per user, see the
/// module docs), and `{prefix}lb:{auction}:h`, a hash user id →
/// `member|bid|score bits|time|username` plus a `~` field that marks the
/// board loaded. The braces make both keys one hash slot (Redis Cluster).
/// Each change is one script, so the two keys never disagree.
///
/// While Redis is away the boards are served by a local twin
/// ([`LocalLeaderboard`], emptied at each outage so it reloads from the
/// database); boards changed meanwhile are deleted from Redis at recovery.
pub struct RedisLeaderboard {
    gates: RedisGates,
    record: Script,
    top: Script,
    rank: Script,
    local: LocalLeaderboard,
    local_outage: AtomicU64,
}

/// The member that sorts `standing` among its ties (module docs).
pub(crate) fn member(user: Uuid, placed_at_micros: i64) -> String {
    let time = (placed_at_micros as u64) ^ (1 << 63);
    format!("{:016x}{:032x}{}", !time, !user.as_u128(), user)
}

/// The score as Redis reads it back exactly (shortest round-trip form).
fn score_arg(score: f64) -> String {
    let score = rank_score(score);
    if score.is_infinite() {
        if score > 0.0 { "inf".into() } else { "-inf".into() }
    } else {
        format!("{score:?}")
    }
}

fn entry(member: &str, standing: &Standing) -> String {
    format!(
        "{member}|{}|{:016x}|{}|{}",
        standing.bid_cents,
        standing.score.to_bits(),
        standing.placed_at_micros,
        standing.username
    )
}

fn parse_entry(entry: &str) -> Option<Standing> {
    let mut parts = entry.splitn(5, '|');
    let member = parts.next()?;
    let bid_cents = parts.next()?.parse().ok()?;
    let score = f64::from_bits(u64::from_str_radix(parts.next()?, 16).ok()?);
    let placed_at_micros = parts.next()?.parse().ok()?;
    let username = parts.next()?.to_owned();
    let user_id = Uuid::parse_str(member.get(SORT_KEY_LEN..)?).ok()?;
    Some(Standing {
        user_id,
        username,
        bid_cents,
        score,
        placed_at_micros,
    })
}

impl RedisLeaderboard {
    pub fn new(gates: RedisGates) -> Self {
        let local_outage = AtomicU64::new(gates.outage());
        RedisLeaderboard {
            gates,
            record: Script::new(include_str!("lua/record.lua")),
            top: Script::new(include_str!("lua/top.lua")),
            rank: Script::new(include_str!("lua/rank.lua")),
            local: LocalLeaderboard::new(),
            local_outage,
        }
    }

    fn keys(&self, auction: Uuid) -> [String; 2] {
        [
            self.gates.key(format_args!("lb:{{{auction}}}:z")),
            self.gates.key(format_args!("lb:{{{auction}}}:h")),
        ]
    }

    fn local(&self) -> &LocalLeaderboard {
        let outage = self.gates.outage();
        if self.local_outage.swap(outage, Ordering::AcqRel) != outage {
            self.local.clear();
        }
        &self.local
    }

    /// Runs the record script; `None` when Redis could not.
    async fn write(&self, auction: Uuid, replace: bool, standings: &[Standing], bulk: bool) -> Option<i64> {
        let [z, h] = self.keys(auction);
        let (z, h) = (z.as_str(), h.as_str());
        let ttl_ms = u64::try_from(BOARD_TTL.as_millis()).unwrap_or(u64::MAX);
        let op = |mut conn: redis::aio::ConnectionManager| async move {
            let mut call = self.record.key(z);
            call.key(h).arg(if replace { "1" } else { "0" }).arg(ttl_ms);
            for standing in standings {
                let member = member(standing.user_id, standing.placed_at_micros);
                call.arg(standing.user_id.to_string())
                    .arg(&member)
                    .arg(score_arg(standing.score))
                    .arg(entry(&member, standing));
            }
            call.invoke_async::<i64>(&mut conn).await
        };
        if bulk {
            self.gates.run_bulk(&[z, h], op).await
        } else {
            self.gates.run(&[z, h], op).await
        }
    }
}

#[async_trait]
impl Leaderboard for RedisLeaderboard {
    async fn is_loaded(&self, auction: Uuid) -> bool {
        let [_, h] = self.keys(auction);
        let h = h.as_str();
        let loaded = self
            .gates
            .run(
                &[],
                |mut conn| async move { conn.hexists::<_, _, bool>(h, "~").await },
            )
            .await;
        match loaded {
            Some(loaded) => loaded,
            None => self.local().is_loaded(auction).await,
        }
    }

    async fn load(&self, auction: Uuid, standings: Vec<Standing>) {
        if self.write(auction, true, &standings, true).await.is_none() {
            self.local().load(auction, standings).await;
        }
    }

    async fn record(&self, auction: Uuid, standing: Standing) -> u64 {
        match self
            .write(auction, false, std::slice::from_ref(&standing), false)
            .await
        {
            Some(rank) => u64::try_from(rank).map_or(0, |rank| rank + 1),
            None => self.local().record(auction, standing).await,
        }
    }

    async fn record_many(&self, auction: Uuid, standings: &[Standing]) {
        if standings.is_empty() {
            return;
        }
        if self.write(auction, false, standings, true).await.is_none() {
            self.local().record_many(auction, standings).await;
        }
    }

    async fn top(&self, auction: Uuid, limit: usize) -> Vec<(u64, Standing)> {
        if limit == 0 {
            return Vec::new();
        }
        let [z, h] = self.keys(auction);
        let (z, h) = (z.as_str(), h.as_str());
        let entries = self
            .gates
            .run(&[], |mut conn| async move {
                self.top
                    .key(z)
                    .key(h)
                    .arg(limit)
                    .invoke_async::<Vec<String>>(&mut conn)
                    .await
            })
            .await;
        match entries {
            Some(entries) => entries
                .iter()
                .zip(1u64..)
                .filter_map(|(entry, rank)| parse_entry(entry).map(|s| (rank, s)))
                .collect(),
            None => self.local().top(auction, limit).await,
        }
    }

    async fn rank_of(&self, auction: Uuid, user: Uuid) -> Option<u64> {
        let [z, h] = self.keys(auction);
        let (z, h) = (z.as_str(), h.as_str());
        let rank = self
            .gates
            .run(&[], |mut conn| async move {
                self.rank
                    .key(z)
                    .key(h)
                    .arg(user.to_string())
                    .invoke_async::<i64>(&mut conn)
                    .await
            })
            .await;
        match rank {
            Some(rank) => u64::try_from(rank).ok().map(|rank| rank + 1),
            None => self.local().rank_of(auction, user).await,
        }
    }

    async fn len(&self, auction: Uuid) -> u64 {
        let [z, _] = self.keys(auction);
        let z = z.as_str();
        let len = self
            .gates
            .run(&[], |mut conn| async move { conn.zcard::<_, u64>(z).await })
            .await;
        match len {
            Some(len) => len,
            None => self.local().len(auction).await,
        }
    }

    async fn forget(&self, auction: Uuid) {
        let [z, h] = self.keys(auction);
        let (z, h) = (z.as_str(), h.as_str());
        let ran = self
            .gates
            .run(
                &[z, h],
                |mut conn| async move { conn.del::<_, i64>(&[z, h]).await },
            )
            .await;
        if ran.is_none() {
            self.local().forget(auction).await;
        }
    }

    async fn forget_all(&self) {
        // The shared boards missed nothing; only the fallback twin is local.
        self.local().forget_all().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_sort_ties_to_the_earlier_bid_then_the_lower_user() {
        let a = Uuid::from_u128(1);
        let b = Uuid::from_u128(2);
        // Reverse byte order (ZREVRANGE) must be: earlier time first, then lower user.
        let mut members = [
            (member(b, 10), "b@10"),
            (member(a, 10), "a@10"),
            (member(a, -5), "a@-5"),
            (member(b, i64::MAX), "b@max"),
            (member(a, i64::MIN), "a@min"),
            (member(b, 0), "b@0"),
        ];
        members.sort();
        members.reverse();
        let order: Vec<&str> = members.iter().map(|m| m.1).collect();
        assert_eq!(order, ["a@min", "a@-5", "b@0", "a@10", "b@10", "b@max"]);
        assert!(members.iter().all(|m| m.0.len() == SORT_KEY_LEN + 36));
    }

    #[test]
    fn entries_round_trip() {
        for score in [1.5, -0.0, f64::NAN, f64::INFINITY, 1e-300, 123_456.789] {
            let s = Standing {
                user_id: Uuid::now_v7(),
                username: "a|b_c".into(),
                bid_cents: -3,
                score,
                placed_at_micros: -42,
            };
            let parsed = parse_entry(&entry(&member(s.user_id, s.placed_at_micros), &s)).unwrap();
            assert_eq!(parsed.score.to_bits(), s.score.to_bits());
            assert_eq!(
                (parsed.user_id, &parsed.username, parsed.bid_cents),
                (s.user_id, &s.username, -3)
            );
            assert_eq!(parsed.placed_at_micros, -42);
        }
        assert_eq!(score_arg(-0.0), "0.0");
        assert_eq!(score_arg(f64::NAN), "-inf");
        assert_eq!(score_arg(1e-7).parse::<f64>().unwrap(), 1e-7);
    }
}

#[cfg(test)]
mod redis_tests {
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::testing;

    fn standing(user: u128, bid: i64, score: f64, at: i64) -> Standing {
        Standing {
            user_id: Uuid::from_u128(user),
            username: format!("user_{user}"),
            bid_cents: bid,
            score,
            placed_at_micros: at,
        }
    }

    async fn board(url: &str) -> (RedisLeaderboard, String) {
        let options = testing::options();
        let prefix = options.prefix.clone();
        (
            RedisLeaderboard::new(testing::connect(url, options).await),
            prefix,
        )
    }

    #[tokio::test]
    async fn ties_replacement_and_ranks() {
        let Some(url) = testing::redis_url("leaderboard ties_replacement_and_ranks") else {
            return;
        };
        let (board, prefix) = board(&url).await;
        let a = Uuid::now_v7();
        assert!(!board.is_loaded(a).await);
        board.load(a, Vec::new()).await;
        assert!(board.is_loaded(a).await, "an empty board is loaded too");
        assert_eq!(board.len(a).await, 0);
        assert_eq!(board.record(a, standing(1, 100, 10.0, 50)).await, 1);
        assert_eq!(board.record(a, standing(2, 100, 10.0, 40)).await, 1);
        assert_eq!(board.record(a, standing(3, 100, 10.0, 40)).await, 2);
        assert_eq!(board.rank_of(a, Uuid::from_u128(1)).await, Some(3));
        assert_eq!(board.record(a, standing(1, 50, 5.0, 60)).await, 3);
        assert_eq!(board.len(a).await, 3);
        assert_eq!(board.record(a, standing(3, 200, 20.0, 70)).await, 1);
        let top = board.top(a, 10).await;
        let users: Vec<(u64, u128)> = top.iter().map(|(r, s)| (*r, s.user_id.as_u128())).collect();
        assert_eq!(users, vec![(1, 3), (2, 2), (3, 1)]);
        assert_eq!(top[0].1, standing(3, 200, 20.0, 70));
        assert_eq!(board.top(a, 0).await.len(), 0);
        assert_eq!(board.rank_of(a, Uuid::from_u128(9)).await, None);
        // Load merges, the later bid of each user staying.
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
        // A flush (or restart) loses the board: it reads as not loaded.
        testing::flush(&url, &prefix).await;
        assert!(!board.is_loaded(a).await);
        board.record(a, standing(1, 1, 1.0, 1)).await;
        assert!(
            !board.is_loaded(a).await,
            "a record alone does not make a board complete"
        );
        board.load(a, vec![standing(1, 1, 1.0, 1)]).await;
        board.forget(a).await;
        assert!(!board.is_loaded(a).await);
        assert_eq!(board.len(a).await, 0);
        assert!(testing::keys(&url, &prefix).await.is_empty());
    }

    #[tokio::test]
    async fn local_and_redis_agree_on_random_bids() {
        let Some(url) = testing::redis_url("local_and_redis_agree_on_random_bids") else {
            return;
        };
        let (shared, prefix) = board(&url).await;
        let local = LocalLeaderboard::new();
        let mut rng = rand::rngs::StdRng::seed_from_u64(2024);
        let auction = Uuid::now_v7();
        // Few distinct scores and times: many ties of each kind.
        let scores = [
            f64::NEG_INFINITY,
            -1.5,
            -0.0,
            0.0,
            0.1 + 0.2,
            0.3,
            7.0,
            1e300,
            f64::NAN,
        ];
        let random = |rng: &mut rand::rngs::StdRng| {
            let user = rng.random_range(0..150u128) * 0x1_0000_0000_0000_0001;
            standing(
                user,
                rng.random_range(100..10_000),
                scores[rng.random_range(0..scores.len())],
                rng.random_range(-3..6) * 1_000_000_000,
            )
        };
        let initial: Vec<Standing> = (0..80).map(|_| random(&mut rng)).collect();
        shared.load(auction, initial.clone()).await;
        local.load(auction, initial).await;
        for step in 0..1500 {
            if step % 100 == 99 {
                let batch: Vec<Standing> = (0..20).map(|_| random(&mut rng)).collect();
                shared.record_many(auction, &batch).await;
                local.record_many(auction, &batch).await;
                continue;
            }
            let s = random(&mut rng);
            let (a, b) = (
                shared.record(auction, s.clone()).await,
                local.record(auction, s).await,
            );
            assert_eq!(a, b, "rank after record, step {step}");
        }
        assert_eq!(shared.len(auction).await, local.len(auction).await);
        let (a, b) = (shared.top(auction, 1000).await, local.top(auction, 1000).await);
        assert_eq!(a.len(), b.len());
        for ((ra, sa), (rb, sb)) in a.iter().zip(&b) {
            assert_eq!(
                (ra, sa.user_id, sa.bid_cents, sa.placed_at_micros),
                (rb, sb.user_id, sb.bid_cents, sb.placed_at_micros)
            );
            assert_eq!(sa.score.to_bits(), sb.score.to_bits());
            assert_eq!(sa.username, sb.username);
        }
        for (rank, s) in &b {
            assert_eq!(shared.rank_of(auction, s.user_id).await, Some(*rank));
        }
        assert_eq!(shared.top(auction, 7).await.len(), 7);
        assert!(shared.gates.is_available());
        testing::flush(&url, &prefix).await;
    }

    #[tokio::test]
    async fn a_big_board_loads_in_one_call() {
        let Some(url) = testing::redis_url("a_big_board_loads_in_one_call") else {
            return;
        };
        let (board, prefix) = board(&url).await;
        let auction = Uuid::now_v7();
        let standings: Vec<Standing> = (0..5_000)
            .map(|i| standing(i as u128, i, (i % 97) as f64, i / 3))
            .collect();
        board.load(auction, standings).await;
        assert!(board.gates.is_available(), "the load did not time out");
        assert_eq!(board.len(auction).await, 5_000);
        let top = board.top(auction, 100).await;
        assert_eq!(top.len(), 100);
        assert_eq!(top[0].1.score, 96.0);
        assert_eq!(top[0].1.placed_at_micros, 96 / 3, "the earliest of the 96s");
        testing::flush(&url, &prefix).await;
    }
}
