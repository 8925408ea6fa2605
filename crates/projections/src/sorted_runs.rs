//! The store's memtable as sorted runs: each committed batch of changes (already sorted, in a
//! small tree) is appended as a sorted vector, and the newest runs are merged whenever one is
//! no longer at least twice the size of the next, like a binary counter. An entry is so moved
//! about log2(entries / batch) times by sequential merges, instead of being inserted into one
//! tree of millions of keys, where each insert compared some fifty keys sharing long prefixes
//! (`Changes::commit` was 28 % of a timeline rebuild's samples; docs/speed-work.md).
//!
//! A key's newest change is in the newest run holding it, so a point read asks the runs newest
//! first (one binary search each, at most about twenty runs), and a range read lays them over
//! one another oldest first.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::ops::Bound;

/// A change: the new value, or `None` for a removal.
pub(crate) type Change = Option<Vec<u8>>;

/// Changes sorted by key, each key once.
pub(crate) type Run = Vec<(Vec<u8>, Change)>;

/// An ordered map from keys to their newest change, built from sorted batches.
#[derive(Debug, Default)]
pub(crate) struct SortedRuns {
    /// Oldest first; each run at least twice as long as the one after it, except while a
    /// push is merging.
    runs: Vec<Run>,
}

impl SortedRuns {
    /// No changes at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.runs.iter().all(Vec::is_empty)
    }

    /// Adds the changes of `batch`, newer than every change already held.
    pub(crate) fn push_batch(&mut self, batch: BTreeMap<Vec<u8>, Change>) {
        self.push_sorted(batch.into_iter().collect());
    }

    /// Adds `run` (sorted by key, each key once), newer than every change already held.
    pub(crate) fn push_sorted(&mut self, run: Run) {
        debug_assert!(run.windows(2).all(|pair| pair[0].0 < pair[1].0));
        if run.is_empty() {
            return;
        }
        self.runs.push(run);
        while let [.., older, newer] = self.runs.as_slice() {
            if older.len() >= newer.len().saturating_mul(2) {
                break;
            }
            let newer = self.runs.pop().unwrap_or_default();
            let older = self.runs.pop().unwrap_or_default();
            self.runs.push(merge(older, newer));
        }
    }

    /// The newest change under `key`, if any run has one.
    pub(crate) fn get(&self, key: &[u8]) -> Option<&Change> {
        self.runs.iter().rev().find_map(|run| find(run, key))
    }

    /// Puts the newest change of every key within the bounds into `into` (whose entries under
    /// the same keys are taken as older).
    pub(crate) fn range_into(
        &self,
        bounds: &(Bound<Vec<u8>>, Bound<Vec<u8>>),
        into: &mut BTreeMap<Vec<u8>, Change>,
    ) {
        for run in &self.runs {
            for (key, change) in slice_within(run, bounds) {
                into.insert(key.clone(), change.clone());
            }
        }
    }

    /// Every key with its newest change, in key order.
    pub(crate) fn into_sorted(mut self) -> Run {
        // Newest (shortest) first, so the longest run is walked once, not once per run.
        let mut merged = self.runs.pop().unwrap_or_default();
        while let Some(older) = self.runs.pop() {
            merged = merge(older, merged);
        }
        merged
    }
}

/// The change under `key` in `run`.
pub(crate) fn find<'a>(run: &'a [(Vec<u8>, Change)], key: &[u8]) -> Option<&'a Change> {
    run.binary_search_by(|(stored, _)| stored.as_slice().cmp(key))
        .ok()
        .and_then(|index| run.get(index))
        .map(|(_, change)| change)
}

/// The part of `run` within `bounds`.
pub(crate) fn slice_within<'a>(
    run: &'a [(Vec<u8>, Change)],
    bounds: &(Bound<Vec<u8>>, Bound<Vec<u8>>),
) -> &'a [(Vec<u8>, Change)] {
    let start = match &bounds.0 {
        Bound::Included(lower) => run.partition_point(|(key, _)| key < lower),
        Bound::Excluded(lower) => run.partition_point(|(key, _)| key <= lower),
        Bound::Unbounded => 0,
    };
    let end = match &bounds.1 {
        Bound::Included(upper) => run.partition_point(|(key, _)| key <= upper),
        Bound::Excluded(upper) => run.partition_point(|(key, _)| key < upper),
        Bound::Unbounded => run.len(),
    };
    run.get(start..end.max(start)).unwrap_or_default()
}

/// `older` and `newer` as one run, `newer`'s change where both have a key.
fn merge(older: Run, newer: Run) -> Run {
    if older.is_empty() {
        return newer;
    }
    let mut merged = Vec::with_capacity(older.len() + newer.len());
    let mut older = older.into_iter().peekable();
    for (key, change) in newer {
        // One comparison per older entry passed: it goes first, is replaced by the newer
        // change under the same key, or comes after.
        while let Some((old, _)) = older.peek() {
            match old.as_slice().cmp(&key) {
                Ordering::Less => merged.extend(older.next()),
                Ordering::Equal => {
                    older.next();
                    break;
                }
                Ordering::Greater => break,
            }
        }
        merged.push((key, change));
    }
    merged.extend(older);
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::SeededRng;

    /// Random batches of puts and removals over a small key space (so keys repeat across
    /// batches and runs), checked against one tree after every batch: point reads, ranges with
    /// every kind of bound, and the whole in order.
    #[test]
    fn sorted_runs_answer_as_one_tree_of_the_newest_changes() {
        let mut random = SeededRng::new(0x5eed_7275_6e73);
        let mut runs = SortedRuns::default();
        let mut oracle: BTreeMap<Vec<u8>, Change> = BTreeMap::new();
        let key = |n: usize| format!("k/{n:04}").into_bytes();
        for round in 0..400u64 {
            let mut batch = BTreeMap::new();
            for _ in 0..random.below(40) {
                let change = match random.below(4) {
                    0 => None,
                    _ => Some(round.to_be_bytes().to_vec()),
                };
                batch.insert(key(random.below(600)), change);
            }
            oracle.extend(batch.clone());
            runs.push_batch(batch);
            assert!(runs.runs.len() <= 20, "{} runs", runs.runs.len());
            for _ in 0..20 {
                let probe = key(random.below(650));
                assert_eq!(runs.get(&probe), oracle.get(&probe), "round {round}");
            }
            let (a, b) = (key(random.below(650)), key(random.below(650)));
            let bounds = match random.below(4) {
                0 => (Bound::Included(a), Bound::Excluded(b)),
                1 => (Bound::Excluded(a), Bound::Included(b)),
                2 => (Bound::Included(a), Bound::Unbounded),
                _ => (Bound::Unbounded, Bound::Excluded(b)),
            };
            let mut ranged = BTreeMap::new();
            runs.range_into(&bounds, &mut ranged);
            let expected: BTreeMap<_, _> = if bounds_empty(&bounds) {
                BTreeMap::new()
            } else {
                oracle
                    .range::<Vec<u8>, _>(bounds.clone())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            };
            assert_eq!(ranged, expected, "round {round}");
        }
        assert!(!runs.is_empty());
        let all: Vec<_> = oracle.into_iter().collect();
        assert_eq!(runs.into_sorted(), all);
    }

    /// Whether a range's start lies after its end (a tree's `range` panics on such bounds; the
    /// runs answer nothing).
    fn bounds_empty(bounds: &(Bound<Vec<u8>>, Bound<Vec<u8>>)) -> bool {
        match (&bounds.0, &bounds.1) {
            (Bound::Included(a), Bound::Included(b)) => a > b,
            (Bound::Included(a) | Bound::Excluded(a), Bound::Excluded(b))
            | (Bound::Excluded(a), Bound::Included(b)) => a >= b,
            _ => false,
        }
    }

    #[test]
    fn an_empty_batch_adds_no_run_and_empty_runs_are_empty() {
        let mut runs = SortedRuns::default();
        runs.push_batch(BTreeMap::new());
        assert!(runs.is_empty());
        assert_eq!(runs.runs.len(), 0);
        assert!(runs.into_sorted().is_empty());
    }
}
