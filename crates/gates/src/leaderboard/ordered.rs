//! A sorted list with ranks: sorted chunks of at most `2 * CHUNK` keys.
//! Insert, remove and rank cost O(log n + CHUNK + n / CHUNK): for 5,000
//! bidders, a binary search, a copy of at most 512 keys and a sum over
//! about 20 chunk lengths. (A `BTreeSet` would need O(n) to count a rank.)

const CHUNK: usize = 256;

#[derive(Debug)]
pub(crate) struct OrderedList<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for OrderedList<T> {
    fn default() -> Self {
        OrderedList {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T: Ord + Copy> OrderedList<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    /// The chunk where `x` is or would be.
    fn chunk_of(&self, x: &T) -> usize {
        let i = self
            .chunks
            .partition_point(|c| c.last().is_some_and(|last| last < x));
        i.min(self.chunks.len().saturating_sub(1))
    }

    /// Inserts `x`; false when it is already there.
    pub fn insert(&mut self, x: T) -> bool {
        if self.chunks.is_empty() {
            self.chunks.push(vec![x]);
            self.len = 1;
            return true;
        }
        let ci = self.chunk_of(&x);
        let chunk = &mut self.chunks[ci];
        let Err(pos) = chunk.binary_search(&x) else {
            return false;
        };
        chunk.insert(pos, x);
        self.len += 1;
        if chunk.len() > 2 * CHUNK {
            let tail = chunk.split_off(CHUNK);
            self.chunks.insert(ci + 1, tail);
        }
        true
    }

    /// Removes `x`; false when it was not there.
    pub fn remove(&mut self, x: &T) -> bool {
        if self.chunks.is_empty() {
            return false;
        }
        let ci = self.chunk_of(x);
        let chunk = &mut self.chunks[ci];
        let Ok(pos) = chunk.binary_search(x) else {
            return false;
        };
        chunk.remove(pos);
        self.len -= 1;
        if chunk.is_empty() {
            self.chunks.remove(ci);
        }
        true
    }

    /// The 0-based position of `x`.
    pub fn rank(&self, x: &T) -> Option<usize> {
        if self.chunks.is_empty() {
            return None;
        }
        let ci = self.chunk_of(x);
        let pos = self.chunks[ci].binary_search(x).ok()?;
        Some(self.chunks[..ci].iter().map(Vec::len).sum::<usize>() + pos)
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;

    #[test]
    fn matches_a_sorted_vec() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut list = OrderedList::default();
        let mut model: Vec<u32> = Vec::new();
        for step in 0..20_000 {
            let x = rng.random_range(0..3_000u32);
            if rng.random_bool(0.6) {
                let inserted = list.insert(x);
                match model.binary_search(&x) {
                    Ok(_) => assert!(!inserted),
                    Err(pos) => {
                        assert!(inserted);
                        model.insert(pos, x);
                    }
                }
            } else {
                let removed = list.remove(&x);
                match model.binary_search(&x) {
                    Ok(pos) => {
                        assert!(removed);
                        model.remove(pos);
                    }
                    Err(_) => assert!(!removed),
                }
            }
            assert_eq!(list.len(), model.len());
            let probe = rng.random_range(0..3_000u32);
            assert_eq!(list.rank(&probe), model.binary_search(&probe).ok(), "step {step}");
            if step % 1000 == 0 {
                assert!(list.iter().copied().eq(model.iter().copied()));
            }
        }
        assert!(list.iter().copied().eq(model.iter().copied()));
        assert!(list.chunks.iter().all(|c| !c.is_empty() && c.len() <= 2 * CHUNK));
    }
}
