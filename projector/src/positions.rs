//! Positions: an in-memory order-statistic index over each tenant's users and groups in id order,
//! so that `startIndex=100000` costs about what `startIndex=1` costs.
//!
//! A listing (one tenant's users, or its groups) is cut into *blocks* of consecutive keys: each
//! block is the id it starts at (the first key of the block when it was cut) and how many keys
//! it holds now. To skip `n` keys, the reader adds block counts until the block holding the
//! `n`-th key, seeks to that block's start in sled and walks at most one block (about
//! [`BLOCK`] keys). Memory is two words per block: O(keys / [`BLOCK`]) per listing.
//!
//! The directory projection keeps the blocks exact. Updates never move positions; only creates
//! and deletes do, and each changes one block's count (a UUIDv7 create usually lands in the last
//! block). Every change to the set of user or group keys is written by the projection while it
//! holds this index's lock, and the blocks are updated under the same lock before it is released,
//! so whenever a reader holds the lock the blocks describe exactly the keys in the view. A block
//! grown past twice [`BLOCK`] is re-cut by walking its keys (under the lock); neighbours that
//! together hold at most [`BLOCK`] keys are merged, which needs no walk.
//!
//! Blocks are built lazily by the first deep read, from a walk of the listing's keys made without
//! the lock; the result is kept only if no create, delete or reset touched the listing since the
//! walk began (stamps from one counter), otherwise it is dropped and the next read tries again.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use roster_engine::domain::TenantName;

/// Target keys per block. Reading a page walks fewer than `2 * BLOCK` keys before its first
/// record.
pub const BLOCK: usize = 256;

/// Which listing of a tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Listing {
    Users,
    Groups,
}

/// A change to a listing's keys, recorded by the projection in event order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Created(TenantName, Listing, [u8; 16]),
    Deleted(TenantName, Listing, [u8; 16]),
    /// Every key of the tenant is gone (a dropped staging branch).
    Dropped(TenantName),
}

/// Where a page starts: seek to the first key at least `from` (the listing's first key when
/// `None`), then step over `skip` keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seek {
    pub from: Option<[u8; 16]>,
    pub skip: usize,
}

/// One listing cut into blocks.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Blocks {
    /// The id each block starts at. Block 0 covers every id below `starts[1]` (its own start is
    /// only a lower bound at the time it was cut); block `i` covers `starts[i]..starts[i + 1]`.
    starts: Vec<[u8; 16]>,
    /// Keys in each block now.
    counts: Vec<usize>,
    total: usize,
}

impl Blocks {
    /// Cuts the ids of a listing, in order, into blocks of [`BLOCK`].
    pub fn build(ids: impl IntoIterator<Item = [u8; 16]>) -> Self {
        let mut blocks = Self::default();
        for id in ids {
            if blocks.total.is_multiple_of(BLOCK) {
                blocks.starts.push(id);
                blocks.counts.push(0);
            }
            if let Some(count) = blocks.counts.last_mut() {
                *count += 1;
            }
            blocks.total += 1;
        }
        blocks
    }

    /// Keys in the listing.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Blocks held (for the memory bound).
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// Where the key at zero-based position `position` is found; `None` past the end.
    pub fn seek(&self, position: usize) -> Option<Seek> {
        let mut before = 0;
        for (index, count) in self.counts.iter().enumerate() {
            if position < before + count {
                return Some(Seek {
                    from: (index > 0).then(|| self.starts[index]),
                    skip: position - before,
                });
            }
            before += count;
        }
        None
    }

    /// The block an id belongs to (block 0 for ids below every start).
    fn block_of(&self, id: &[u8; 16]) -> usize {
        self.starts
            .get(1..)
            .map_or(0, |rest| rest.partition_point(|start| start <= id))
    }

    /// Counts a created key. Returns the block when it has grown past `2 * BLOCK` and must be
    /// re-cut with [`Self::recut`].
    pub fn created(&mut self, id: &[u8; 16]) -> Option<usize> {
        if self.counts.is_empty() {
            self.starts.push(*id);
            self.counts.push(0);
        }
        let block = self.block_of(id);
        self.counts[block] += 1;
        self.total += 1;
        (self.counts[block] > 2 * BLOCK).then_some(block)
    }

    /// Counts a deleted key and merges small neighbours. `false` when the blocks cannot hold
    /// the key (they no longer describe the listing and must be dropped).
    pub fn deleted(&mut self, id: &[u8; 16]) -> bool {
        let block = self.block_of(id);
        let Some(count) = self.counts.get_mut(block) else {
            return false;
        };
        if *count == 0 {
            return false;
        }
        *count -= 1;
        self.total -= 1;
        if block + 1 < self.counts.len() && self.counts[block] + self.counts[block + 1] <= BLOCK {
            self.merge(block);
        } else if block > 0 && self.counts[block - 1] + self.counts[block] <= BLOCK {
            self.merge(block - 1);
        }
        true
    }

    /// Joins block `index + 1` into block `index`.
    fn merge(&mut self, index: usize) {
        let next = self.counts.remove(index + 1);
        self.starts.remove(index + 1);
        self.counts[index] += next;
    }

    /// The key range of a block: its start (`None` for block 0, which starts at the beginning)
    /// and the next block's start (`None` for the last).
    pub fn range(&self, index: usize) -> (Option<[u8; 16]>, Option<[u8; 16]>) {
        (
            (index > 0).then(|| self.starts[index]),
            self.starts.get(index + 1).copied(),
        )
    }

    /// Re-cuts block `index` from its keys (every key of its [`Self::range`], in order) into
    /// blocks of [`BLOCK`]. `false` when the keys do not match the block's count.
    pub fn recut(&mut self, index: usize, ids: &[[u8; 16]]) -> bool {
        if self.counts.get(index) != Some(&ids.len()) {
            return false;
        }
        let mut starts = vec![self.starts[index]];
        let mut counts = Vec::new();
        for (chunk_index, chunk) in ids.chunks(BLOCK).enumerate() {
            if chunk_index > 0 {
                starts.push(chunk[0]);
            }
            counts.push(chunk.len());
        }
        self.starts.splice(index..=index, starts);
        self.counts.splice(index..=index, counts);
        true
    }
}

#[derive(Default)]
struct Inner {
    listings: HashMap<(TenantName, Listing), Blocks>,
    /// Stamp of the last change to each listing's keys (tenants drop and reappear as branches,
    /// so this only grows with tenants ever seen).
    changed: HashMap<(TenantName, Listing), u64>,
    /// Stamp of the last reset of the whole view.
    reset: u64,
    /// The stamp counter.
    clock: u64,
}

impl Inner {
    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    fn touch(&mut self, tenant: &TenantName, listing: Listing) {
        let stamp = self.tick();
        self.changed.insert((tenant.clone(), listing), stamp);
    }
}

/// The position index of one directory view, shared by the projection and the readers.
#[derive(Default)]
pub struct Positions {
    inner: Mutex<Inner>,
}

/// A build of one listing's blocks, begun at a stamp.
#[derive(Debug)]
pub struct Build {
    tenant: TenantName,
    listing: Listing,
    began: u64,
}

impl Positions {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(guard) => guard,
            Err(poisoned) => {
                // A panic under the lock may have left blocks out of step with the view: forget
                // them all; they are rebuilt on demand.
                let mut guard = poisoned.into_inner();
                guard.listings.clear();
                guard.reset = guard.tick();
                self.inner.clear_poison();
                guard
            }
        }
    }

    /// Where the key at zero-based `position` of a listing is, if its blocks are built; `Err`
    /// with a [`Build`] to hand to [`Self::install`] when they are not.
    pub fn seek(
        &self,
        tenant: &TenantName,
        listing: Listing,
        position: usize,
    ) -> Result<Option<Seek>, Build> {
        let mut inner = self.lock();
        match inner.listings.get(&(tenant.clone(), listing)) {
            Some(blocks) => Ok(blocks.seek(position)),
            None => Err(Build {
                tenant: tenant.clone(),
                listing,
                began: inner.tick(),
            }),
        }
    }

    /// Keeps blocks built from a walk begun at `build`, unless the listing changed since.
    /// Returns whether they were kept.
    pub fn install(&self, build: Build, blocks: Blocks) -> bool {
        let mut inner = self.lock();
        let key = (build.tenant, build.listing);
        let changed = inner.changed.get(&key).copied().unwrap_or(0);
        if changed > build.began || inner.reset > build.began {
            return false;
        }
        inner.listings.insert(key, blocks);
        true
    }

    /// Runs `write` (the atomic batch that makes `changes` in the view) under the lock, then
    /// applies `changes` to the blocks. `recut` walks the ids of a block's range in the view as
    /// it is after the write; a block it cannot re-cut is dropped. If `write` fails, every
    /// listing `changes` touch is dropped.
    pub fn write<E>(
        &self,
        changes: &[Change],
        write: impl FnOnce() -> Result<(), E>,
        mut recut: impl FnMut(
            &TenantName,
            Listing,
            Option<[u8; 16]>,
            Option<[u8; 16]>,
        ) -> Option<Vec<[u8; 16]>>,
    ) -> Result<(), E> {
        if changes.is_empty() {
            return write();
        }
        let mut inner = self.lock();
        let written = write();
        let mut oversized: Vec<(TenantName, Listing)> = Vec::new();
        for change in changes {
            match change {
                Change::Created(tenant, listing, id) => {
                    inner.touch(tenant, *listing);
                    let key = (tenant.clone(), *listing);
                    if let Some(blocks) = inner.listings.get_mut(&key)
                        && blocks.created(id).is_some()
                        && !oversized.contains(&key)
                    {
                        oversized.push(key);
                    }
                }
                Change::Deleted(tenant, listing, id) => {
                    inner.touch(tenant, *listing);
                    let key = (tenant.clone(), *listing);
                    if let Some(blocks) = inner.listings.get_mut(&key)
                        && !blocks.deleted(id)
                    {
                        inner.listings.remove(&key);
                    }
                }
                Change::Dropped(tenant) => {
                    for listing in [Listing::Users, Listing::Groups] {
                        inner.touch(tenant, listing);
                        inner.listings.remove(&(tenant.clone(), listing));
                    }
                }
            }
        }
        if written.is_err() {
            for change in changes {
                let (Change::Created(tenant, listing, _) | Change::Deleted(tenant, listing, _)) =
                    change
                else {
                    continue;
                };
                inner.listings.remove(&(tenant.clone(), *listing));
            }
            return written;
        }
        for key in oversized {
            // Re-cut every oversized block of the listing; one chunk may have grown several.
            while let Some(blocks) = inner.listings.get(&key) {
                let Some(index) = blocks.counts.iter().position(|count| *count > 2 * BLOCK) else {
                    break;
                };
                let (from, until) = blocks.range(index);
                let cut = recut(&key.0, key.1, from, until);
                let kept = match (cut, inner.listings.get_mut(&key)) {
                    (Some(ids), Some(blocks)) => blocks.recut(index, &ids),
                    _ => false,
                };
                if !kept {
                    inner.listings.remove(&key);
                }
            }
        }
        written
    }

    /// Forgets every listing (the view was emptied).
    pub fn reset(&self) {
        let mut inner = self.lock();
        inner.listings.clear();
        inner.reset = inner.tick();
    }

    /// Blocks held for a listing (tests and diagnostics).
    pub fn blocks(&self, tenant: &TenantName, listing: Listing) -> Option<Blocks> {
        self.lock()
            .listings
            .get(&(tenant.clone(), listing))
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    fn id(n: u128) -> [u8; 16] {
        n.to_be_bytes()
    }

    /// The position of every key, answered through the blocks against the sorted keys.
    fn check(blocks: &Blocks, model: &BTreeSet<[u8; 16]>) {
        let keys: Vec<_> = model.iter().copied().collect();
        assert_eq!(blocks.total(), keys.len());
        assert!(
            blocks.len() <= 2 * keys.len() / BLOCK + 2,
            "{} blocks",
            blocks.len()
        );
        for position in (0..keys.len()).step_by(7).chain(keys.len().checked_sub(1)) {
            let Some(seek) = blocks.seek(position) else {
                panic!("position {position} of {} not found", keys.len());
            };
            let start = seek
                .from
                .map_or(0, |from| keys.partition_point(|key| *key < from));
            assert_eq!(
                keys.get(start + seek.skip),
                keys.get(position),
                "{position}"
            );
            assert!(seek.skip < 2 * BLOCK + 1);
        }
        assert_eq!(blocks.seek(keys.len()), None);
    }

    /// The keys of a block's range in the model (what the view's walk returns).
    fn range_of(
        model: &BTreeSet<[u8; 16]>,
        range: (Option<[u8; 16]>, Option<[u8; 16]>),
    ) -> Vec<[u8; 16]> {
        model
            .iter()
            .filter(|key| range.0.is_none_or(|from| **key >= from))
            .filter(|key| range.1.is_none_or(|until| **key < until))
            .copied()
            .collect()
    }

    #[test]
    fn a_built_listing_finds_every_position() {
        let model: BTreeSet<_> = (0..1000).map(|n| id(n * 3)).collect();
        let blocks = Blocks::build(model.iter().copied());
        assert_eq!(blocks.len(), 4);
        check(&blocks, &model);
        assert_eq!(Blocks::build([]).seek(0), None);
    }

    #[test]
    fn creates_and_deletes_anywhere_keep_positions_exact() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut model: BTreeSet<_> = (0..3000).map(|n| id(n * 1000)).collect();
        let mut blocks = Blocks::build(model.iter().copied());
        let mut next = 3000u128 * 1000;
        for round in 0..6000 {
            let roll = rng.random_range(0..10);
            if roll < 4 {
                // Appends, like UUIDv7 creates.
                next += 1000;
                model.insert(id(next));
                if let Some(block) = blocks.created(&id(next)) {
                    let ids = range_of(&model, blocks.range(block));
                    assert!(blocks.recut(block, &ids));
                }
            } else if roll < 6 {
                // In the middle (and below every start).
                let new = id(rng.random_range(0..next));
                if model.insert(new)
                    && let Some(block) = blocks.created(&new)
                {
                    let ids = range_of(&model, blocks.range(block));
                    assert!(blocks.recut(block, &ids));
                }
            } else if let Some(&gone) = model
                .range(id(rng.random_range(0..=next))..)
                .next()
                .or_else(|| model.iter().next())
            {
                model.remove(&gone);
                assert!(blocks.deleted(&gone));
            }
            if round % 500 == 0 {
                check(&blocks, &model);
            }
        }
        check(&blocks, &model);
        // Down to nothing and back.
        for gone in std::mem::take(&mut model) {
            assert!(blocks.deleted(&gone));
        }
        check(&blocks, &model);
        model.insert(id(5));
        assert_eq!(blocks.created(&id(5)), None);
        check(&blocks, &model);
    }

    #[test]
    fn a_delete_the_blocks_cannot_hold_is_refused() {
        let mut blocks = Blocks::build([id(1)]);
        assert!(blocks.deleted(&id(1)));
        assert!(!blocks.deleted(&id(1)));
    }

    #[test]
    fn a_build_is_kept_only_if_nothing_changed_since_it_began() {
        let positions = Positions::default();
        let acme = TenantName::parse("acme").unwrap();
        let Err(build) = positions.seek(&acme, Listing::Users, 0) else {
            panic!("nothing built yet");
        };
        positions
            .write::<()>(
                &[Change::Created(acme.clone(), Listing::Users, id(1))],
                || Ok(()),
                |_, _, _, _| None,
            )
            .unwrap();
        assert!(!positions.install(build, Blocks::build([id(1)])));
        let Err(build) = positions.seek(&acme, Listing::Users, 0) else {
            panic!("nothing kept");
        };
        // Another listing's change does not matter.
        positions
            .write::<()>(
                &[Change::Created(acme.clone(), Listing::Groups, id(9))],
                || Ok(()),
                |_, _, _, _| None,
            )
            .unwrap();
        assert!(positions.install(build, Blocks::build([id(1)])));
        assert_eq!(
            positions.seek(&acme, Listing::Users, 0).unwrap(),
            Some(Seek {
                from: None,
                skip: 0
            })
        );
        positions.reset();
        assert!(positions.blocks(&acme, Listing::Users).is_none());
    }

    #[test]
    fn a_failed_write_or_a_dropped_branch_forgets_the_listing() {
        let positions = Positions::default();
        let acme = TenantName::parse("acme").unwrap();
        for listing in [Listing::Users, Listing::Groups] {
            let Err(build) = positions.seek(&acme, listing, 0) else {
                panic!();
            };
            assert!(positions.install(build, Blocks::build([id(1)])));
        }
        let failed = positions.write(
            &[Change::Deleted(acme.clone(), Listing::Users, id(1))],
            || Err("disk"),
            |_, _, _, _| None,
        );
        assert_eq!(failed, Err("disk"));
        assert!(positions.blocks(&acme, Listing::Users).is_none());
        assert!(positions.blocks(&acme, Listing::Groups).is_some());
        positions
            .write::<()>(
                &[Change::Dropped(acme.clone())],
                || Ok(()),
                |_, _, _, _| None,
            )
            .unwrap();
        assert!(positions.blocks(&acme, Listing::Groups).is_none());
    }

    #[test]
    fn an_oversized_block_is_recut_from_the_view() {
        let positions = Positions::default();
        let acme = TenantName::parse("acme").unwrap();
        let Err(build) = positions.seek(&acme, Listing::Users, 0) else {
            panic!();
        };
        assert!(positions.install(build, Blocks::build([])));
        let mut model = BTreeSet::new();
        let changes: Vec<_> = (0..2 * BLOCK as u128 + 10)
            .map(|n| {
                model.insert(id(n));
                Change::Created(acme.clone(), Listing::Users, id(n))
            })
            .collect();
        positions
            .write::<()>(
                &changes,
                || Ok(()),
                |_, _, from, until| Some(range_of(&model, (from, until))),
            )
            .unwrap();
        let blocks = positions.blocks(&acme, Listing::Users).unwrap();
        assert_eq!(blocks.len(), 3);
        check(&blocks, &model);
    }
}
