//! A resident tree: a key space held whole in memory as packed blocks, persisted to its sled
//! tree as deltas and those blocks.
//!
//! sled costs ~20 µs of CPU per key written, batched or not, and an atomic batch holds sled's
//! global write lock for its whole length (every other tree's writes wait, the log's included).
//! A view that wrote every record, index entry and history snapshot as its own key spent most of
//! its time in sled. A resident tree keeps every entry in memory (reads and writes never touch
//! sled) and persists now and then, off the caller's thread:
//!
//! - a **delta**: the entries changed since the previous delta (values, or removals), taken
//!   between two whole [`Resident::apply`] calls and written as sled values of ~64 KiB
//!   (no global lock, no per-entry cost), paced so that the event log's flushes, which share
//!   sled's one log, never wait for much of it. A delta counts once its last part is stored.
//!   Blocks plus every whole delta, replayed in order, are a state the tree was in, checkpoint
//!   keys included: for a view, "the log up to its checkpoint";
//! - now and then a **compaction**: the blocks changed since the previous compaction are written
//!   again as of the latest delta, in small batches, then the deltas up to it are removed.
//!
//! In memory the entries are held as the blocks are persisted: ~32 entries packed back to back in
//! one allocation, found by the block's first key in a copy-on-write ordered map and read by a
//! scan of the block. An entry costs its bytes plus 8; held one map node per entry, it cost ~100
//! bytes more (two `IVec`s and their allocations, and the map's share). A write copies its block.
//!
//! Entries are cut into blocks where a keyed hash of the key has its low five bits clear (one key
//! in 32 on average). The hash's key is 16 random bytes made with the tree and stored in it:
//! where blocks start depends only on the keys present (a view built incrementally and one
//! rebuilt from the log persist byte for byte alike), and a client that chooses keys (user names)
//! cannot choose ones that never start a block and make every write copy one huge block.
//!
//! A compaction interrupted by a crash leaves some blocks at the new state and some at an older
//! one; it never loses an entry. Blocks are written in descending key order (a block that shrinks
//! because a new block starts inside it is written after that new block), blocks that no longer
//! start anything are removed after every write, and deltas last. So every entry is always in a
//! stored block at a state no older than the oldest delta kept, or in a delta; loading replays
//! the deltas over the blocks, which settles every entry that changed since (several stored
//! blocks may then hold one key: the deltas hold its newer value). This relies on sled recovering
//! a prefix of the writes of one thread, which its log guarantees. A tree without deltas whose
//! blocks are cut as the key says is loaded block by block; any other is read entry by entry,
//! cut again and its differing blocks rewritten by the next compaction.
//!
//! Layout of the sled tree: `layout` → [`LAYOUT`] · `seed` → the boundary hash's 16-byte key ·
//! `b` + block-start-key → the block's entries, each as key length (u32 LE), key, value length
//! (u32 LE), value; the first block's start is the empty key · `d` + generation (u64 BE) + part
//! (u32 BE) → a flag byte (1 on the delta's last part, which makes it count) and the part's
//! entries, encoded alike, with value length `u32::MAX` (and no value) for a removal. A tree in
//! [`LAYOUT_UNKEYED`] (blocks cut by an unkeyed hash) is read and cut again; a tree without the
//! layout key holds an older per-key layout: it is cleared at open (the owner rebuilds it from
//! the log).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::Bound;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use sled::IVec;

/// The layout key and its value.
const LAYOUT_KEY: &[u8] = b"layout";
pub const LAYOUT: &[u8] = b"resident-blocks-2";
/// The layout before block boundaries were keyed: blocks alike, cut by an unkeyed hash.
pub const LAYOUT_UNKEYED: &[u8] = b"resident-blocks-1";
/// The key holding the boundary hash's key.
const SEED_KEY: &[u8] = b"seed";
const BLOCK: u8 = b'b';
const DELTA: u8 = b'd';
/// The value length that marks a removal in a delta.
const REMOVED: u32 = u32::MAX;
/// A key starts a block when `hash & BOUNDARY_MASK == 0`.
const BOUNDARY_MASK: u64 = 31;
/// Entries fetched at a time by a range iterator.
const RANGE_CHUNK: usize = 128;
/// Blocks written per sled batch by a compaction: short holds of sled's global write lock.
const BLOCKS_PER_BATCH: usize = 128;
/// A delta is written in parts of about this size. sled stores a value above its segment size
/// over four (128 KiB) as a blob file of its own, and the blobs of a 30 MiB delta held up the
/// event log's flushes (churn's p999: 60-90 ms with 1 MiB parts, 20 ms with 64 KiB parts, as
/// without persists); smaller values go through sled's log like any write.
const DELTA_PART_BYTES: usize = 64 << 10;
/// How fast the persist thread writes (deltas and compactions), so that each of the event log's
/// flushes carries little of it.
const PACED_BYTES_PER_SECOND: usize = 64 << 20;
/// The first byte of a delta part: more parts follow, or this is the delta's last.
const MORE_PARTS: u8 = 0;
const LAST_PART: u8 = 1;

/// When a persist is due: this many changed bytes, or this long since the last one; and when a
/// persist also compacts: after this many bytes of deltas.
#[derive(Clone, Copy, Debug)]
pub struct PersistPolicy {
    pub changed_bytes: usize,
    pub interval: Duration,
    pub compact_after_bytes: usize,
    /// Memory for the blocks: above it, blocks whose stored copy is current are dropped from
    /// memory (clock order) and read from disk when needed again. Blocks changed since the
    /// last compaction stay, so the bound holds up to what changes between compactions.
    pub held_bytes: usize,
}

impl Default for PersistPolicy {
    fn default() -> Self {
        Self {
            changed_bytes: 64 << 20,
            interval: Duration::from_secs(5),
            compact_after_bytes: 64 << 20,
            held_bytes: usize::MAX,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ResidentError {
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    #[error("corrupt entry under {key:?}: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("persisting the resident tree failed: {0}")]
    Persist(String),
}

/// For readers whose errors are sled's (a range's items, a store's reads): a damaged block
/// reads as invalid data.
impl From<ResidentError> for sled::Error {
    fn from(error: ResidentError) -> Self {
        match error {
            ResidentError::Sled(error) => error,
            other => sled::Error::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                other.to_string(),
            )),
        }
    }
}

fn corrupt(key: &[u8], reason: &str) -> ResidentError {
    ResidentError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: reason.to_owned(),
    }
}

/// The key of the hash that places block boundaries and fingerprints stored blocks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Seed([u8; 16]);

impl Seed {
    fn random() -> Self {
        Self(rand::random())
    }

    /// Whether `key` starts a block.
    fn starts_block(&self, key: &[u8]) -> bool {
        !key.is_empty()
            && siphasher::sip::SipHasher13::new_with_key(&self.0).hash(key) & BOUNDARY_MASK == 0
    }

    /// A fingerprint of a stored block's bytes, to tell at load which blocks to write again.
    fn fingerprint(&self, bytes: &[u8]) -> u128 {
        siphasher::sip128::SipHasher13::new_with_key(&self.0)
            .hash(bytes)
            .into()
    }
}

/// Takes one length-prefixed part off the front of `rest`; `None` when it is not there whole.
fn take_part<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (length, tail) = rest.split_first_chunk::<4>()?;
    let length = u32::from_le_bytes(*length) as usize;
    if tail.len() < length {
        return None;
    }
    let (part, tail) = tail.split_at(length);
    *rest = tail;
    Some(part)
}

fn put_part(bytes: &mut Vec<u8>, part: &[u8]) {
    // Keys and values are far below 4 GiB (sled's own limit is lower).
    bytes.extend_from_slice(&(part.len() as u32).to_le_bytes());
    bytes.extend_from_slice(part);
}

/// One block's entries in key order, packed as persisted: key length (u32 LE), key, value
/// length (u32 LE), value. Always well formed: built here, or checked when loaded.
#[derive(Clone)]
struct Packed(Arc<[u8]>);

/// The entries of a [`Packed`] block, in key order.
struct PackedEntries<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for PackedEntries<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let key = take_part(&mut self.rest)?;
        let value = take_part(&mut self.rest)?;
        Some((key, value))
    }
}

impl Packed {
    fn empty() -> Self {
        Self(Arc::from(&[][..]))
    }

    fn bytes(&self) -> &[u8] {
        &self.0
    }

    fn entries(&self) -> PackedEntries<'_> {
        PackedEntries { rest: &self.0 }
    }

    fn get(&self, key: &[u8]) -> Option<&[u8]> {
        for (entry_key, value) in self.entries() {
            match entry_key.cmp(key) {
                std::cmp::Ordering::Less => continue,
                std::cmp::Ordering::Equal => return Some(value),
                std::cmp::Ordering::Greater => return None,
            }
        }
        None
    }

    /// The block with `key` set to `value` (`None`: removed), and whether `key` was there.
    fn with(&self, key: &[u8], value: Option<&[u8]>) -> (Self, bool) {
        let mut bytes =
            Vec::with_capacity(self.0.len() + 8 + key.len() + value.map_or(0, <[u8]>::len));
        let mut was_there = false;
        let mut placed = false;
        for (entry_key, entry_value) in self.entries() {
            if !placed && entry_key >= key {
                placed = true;
                was_there = entry_key == key;
                if let Some(value) = value {
                    put_part(&mut bytes, key);
                    put_part(&mut bytes, value);
                }
                if was_there {
                    continue;
                }
            }
            put_part(&mut bytes, entry_key);
            put_part(&mut bytes, entry_value);
        }
        if let (false, Some(value)) = (placed, value) {
            put_part(&mut bytes, key);
            put_part(&mut bytes, value);
        }
        (Self(Arc::from(bytes)), was_there)
    }

    /// The entries below `key`, and those from `key` on.
    fn split_at(&self, key: &[u8]) -> (Self, Self) {
        let mut rest: &[u8] = &self.0;
        let total = rest.len();
        loop {
            let before = rest;
            match take_part(&mut rest) {
                Some(entry_key) if entry_key < key => {
                    if take_part(&mut rest).is_none() {
                        break;
                    }
                }
                _ => {
                    rest = before;
                    break;
                }
            }
        }
        let cut = total - rest.len();
        (
            Self(Arc::from(&self.0[..cut])),
            Self(Arc::from(&self.0[cut..])),
        )
    }

    /// This block's entries followed by `after`'s (every key of `after` is greater).
    fn followed_by(&self, after: &Packed) -> Self {
        let mut bytes = Vec::with_capacity(self.0.len() + after.0.len());
        bytes.extend_from_slice(&self.0);
        bytes.extend_from_slice(&after.0);
        Self(Arc::from(bytes))
    }
}

/// A block of the map: in memory, or dropped from memory because its stored copy (`b` + start)
/// is byte for byte what it held (see [`PersistPolicy::held_bytes`]).
#[derive(Clone)]
enum Slot {
    Held(Packed),
    Stored,
}

/// Block start → block, in a persistent (copy-on-write) ordered map: a compaction takes a
/// snapshot in constant time. The first block (start: the empty key) is always there.
type Blocks = imbl::OrdMap<IVec, Slot>;

/// A block a read had to take from disk: its start and contents, to hold again.
type ReadBack = (IVec, Packed);

/// Block slots visited at most by one eviction sweep.
const EVICTION_SWEEP: usize = 8192;

struct Map {
    blocks: Blocks,
    /// How many entries the blocks hold.
    len: usize,
    /// Bytes of the blocks held in memory.
    held_bytes: usize,
    /// Above this many held bytes, clean blocks are dropped from memory.
    held_bytes_max: usize,
    /// Where the next eviction sweep starts (a clock hand over the block starts).
    sweep_from: IVec,
    /// No sweep below this many held bytes: set when a sweep found too few clean blocks (most
    /// changed since the last compaction), cleared when a compaction is written.
    sweep_at: usize,
    seed: Seed,
    /// Writes and removals since the last delta was taken, in order (a key may recur: the
    /// delta keeps its last). Taking them is one swap, so a persist holds the lock briefly.
    changes: Vec<(IVec, Option<IVec>)>,
    /// Bytes of keys and values written since the last delta was taken.
    changed_bytes: usize,
    /// Starts of the blocks changed since the last compaction was taken (the empty key: the
    /// first block). A start that no longer starts a block is a block to remove.
    dirty: BTreeSet<IVec>,
    /// Starts of the blocks a compaction in flight is writing: not yet on disk as they are.
    writing: BTreeSet<IVec>,
}

fn block_key(start: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + start.len());
    key.push(BLOCK);
    key.extend_from_slice(start);
    key
}

fn delta_key(generation: u64, part: u32) -> [u8; 13] {
    let mut key = [DELTA; 13];
    key[1..9].copy_from_slice(&generation.to_be_bytes());
    key[9..].copy_from_slice(&part.to_be_bytes());
    key
}

/// Reads the stored copy of the block starting at `start`, dropped from memory.
fn read_stored_block(tree: &sled::Tree, start: &[u8]) -> Result<Packed, ResidentError> {
    let key = block_key(start);
    let bytes = tree
        .get(&key)?
        .ok_or_else(|| corrupt(&key, "a block dropped from memory is missing from disk"))?;
    let mut rest: &[u8] = &bytes;
    while !rest.is_empty() {
        if take_part(&mut rest).is_none() || take_part(&mut rest).is_none() {
            return Err(corrupt(&key, "an entry is cut short"));
        }
    }
    Ok(Packed(Arc::from(bytes.as_ref())))
}

/// A compaction as taken under the lock: a snapshot of the blocks, and the starts of the blocks
/// to write or remove, in descending order (see the module docs).
struct Compaction {
    blocks: Blocks,
    starts: Vec<IVec>,
}

impl Map {
    fn empty(seed: Seed, held_bytes_max: usize) -> Self {
        Self {
            blocks: std::iter::once((IVec::default(), Slot::Held(Packed::empty()))).collect(),
            len: 0,
            held_bytes: 0,
            held_bytes_max,
            sweep_from: IVec::default(),
            sweep_at: 0,
            seed,
            changes: Vec::new(),
            changed_bytes: 0,
            dirty: BTreeSet::new(),
            writing: BTreeSet::new(),
        }
    }

    /// The map of `entries` (in strictly ascending key order), cut into blocks.
    fn from_sorted(
        entries: impl IntoIterator<Item = (IVec, IVec)>,
        seed: Seed,
        held_bytes_max: usize,
    ) -> Self {
        let mut map = Self::empty(seed, held_bytes_max);
        let mut start = IVec::default();
        let mut bytes = Vec::new();
        let mut blocks = Vec::new();
        for (key, value) in entries {
            if seed.starts_block(&key) {
                let full = std::mem::take(&mut bytes);
                map.held_bytes += full.len();
                blocks.push((
                    std::mem::replace(&mut start, key.clone()),
                    Slot::Held(Packed(Arc::from(full))),
                ));
            }
            put_part(&mut bytes, &key);
            put_part(&mut bytes, &value);
            map.len += 1;
        }
        map.held_bytes += bytes.len();
        blocks.push((start, Slot::Held(Packed(Arc::from(bytes)))));
        map.blocks = blocks.into_iter().collect();
        map
    }

    /// The start of the block `key` falls in, and its slot.
    fn slot_of(&self, key: &[u8]) -> (IVec, Slot) {
        match self.blocks.get_prev(key) {
            Some((start, slot)) => (start.clone(), slot.clone()),
            // The first block starts at the empty key, which precedes every key.
            None => (IVec::default(), Slot::Held(Packed::empty())),
        }
    }

    /// The block starting at `start` whose slot is `slot`, read from `tree` if it was dropped.
    fn contents(tree: &sled::Tree, start: &[u8], slot: Slot) -> Result<Packed, ResidentError> {
        match slot {
            Slot::Held(block) => Ok(block),
            Slot::Stored => read_stored_block(tree, start),
        }
    }

    /// The value of `key`, and the block it was read from when that had to come from disk.
    fn get(
        &self,
        tree: &sled::Tree,
        key: &[u8],
    ) -> Result<(Option<IVec>, Option<ReadBack>), ResidentError> {
        let (start, slot) = self.slot_of(key);
        let dropped = matches!(slot, Slot::Stored);
        let block = Self::contents(tree, &start, slot)?;
        let value = block.get(key).map(IVec::from);
        Ok((value, dropped.then_some((start, block))))
    }

    /// Sets the block starting at `start`, held in memory.
    fn hold(&mut self, start: IVec, block: Packed) {
        self.held_bytes += block.bytes().len();
        if let Some(Slot::Held(old)) = self.blocks.insert(start, Slot::Held(block)) {
            self.held_bytes -= old.bytes().len();
        }
    }

    fn drop_block(&mut self, start: &[u8]) {
        if let Some(Slot::Held(old)) = self.blocks.remove(start) {
            self.held_bytes -= old.bytes().len();
        }
    }

    /// Takes back into memory, from `tree`, every dropped block that writing `key` (a value,
    /// or a removal when `removal`) reads: its block and, for a removal, the block before.
    fn hold_for_write(
        &mut self,
        tree: &sled::Tree,
        key: &[u8],
        removal: bool,
    ) -> Result<(), ResidentError> {
        let (start, slot) = self.slot_of(key);
        if let Slot::Stored = slot {
            let block = read_stored_block(tree, &start)?;
            self.hold(start.clone(), block);
        }
        if removal && !start.is_empty() {
            let before = self
                .blocks
                .range::<_, [u8]>((Bound::Unbounded, Bound::Excluded(start.as_ref())))
                .next_back()
                .map(|(before, slot)| (before.clone(), slot.clone()));
            if let Some((before, Slot::Stored)) = before {
                let block = read_stored_block(tree, &before)?;
                self.hold(before, block);
            }
        }
        Ok(())
    }

    /// The block `key` falls in and its start; it was taken back into memory by
    /// [`Self::hold_for_write`], so an empty block stands in only if that was skipped.
    fn held_block_of(&self, key: &[u8]) -> (IVec, Packed) {
        match self.slot_of(key) {
            (start, Slot::Held(block)) => (start, block),
            (start, Slot::Stored) => (start, Packed::empty()),
        }
    }

    /// Sets `key` and marks its block (and a block it starts) for the next compaction.
    fn put_entry(&mut self, key: IVec, value: IVec) {
        let (start, block) = self.held_block_of(&key);
        let (block, was_there) = block.with(&key, Some(&value));
        self.dirty.insert(start.clone());
        if was_there {
            self.hold(start, block);
            return;
        }
        self.len += 1;
        if self.seed.starts_block(&key) {
            // A new start: the entries from it on leave for a block of their own.
            let (below, from) = block.split_at(&key);
            self.hold(start, below);
            self.dirty.insert(key.clone());
            self.hold(key, from);
        } else {
            self.hold(start, block);
        }
    }

    /// Removes `key` and marks its block for the next compaction; false when it was absent.
    fn remove_entry(&mut self, key: &[u8]) -> bool {
        let (start, block) = self.held_block_of(key);
        let (block, was_there) = block.with(key, None);
        if !was_there {
            return false;
        }
        self.len -= 1;
        if !start.is_empty() && start.as_ref() == key {
            // The block starting here goes; its other entries join the block before it.
            self.drop_block(key);
            let (before_start, before) = self.held_block_of(key);
            self.hold(before_start.clone(), before.followed_by(&block));
            self.dirty.insert(before_start);
            self.dirty.insert(start);
        } else {
            self.hold(start.clone(), block);
            self.dirty.insert(start);
        }
        true
    }

    fn put(&mut self, key: IVec, value: IVec) {
        self.changed_bytes += key.len() + value.len();
        self.changes.push((key.clone(), Some(value.clone())));
        self.put_entry(key, value);
    }

    fn remove(&mut self, key: &[u8]) {
        if self.remove_entry(key) {
            self.changed_bytes += key.len();
            self.changes.push((IVec::from(key), None));
        }
    }

    /// Drops clean blocks (neither changed since the last compaction nor being written by one)
    /// from memory while more than [`Self::held_bytes_max`] bytes are held, down to 7/8 of it;
    /// visits at most [`EVICTION_SWEEP`] blocks, going on where the last sweep stopped.
    fn evict(&mut self) {
        if self.held_bytes <= self.held_bytes_max || self.held_bytes < self.sweep_at {
            return;
        }
        let target = self.held_bytes_max / 8 * 7;
        let mut freed = 0;
        let mut victims = Vec::new();
        let mut last = None;
        let after = self
            .blocks
            .range::<_, IVec>((Bound::Excluded(self.sweep_from.clone()), Bound::Unbounded));
        let from_start = self
            .blocks
            .range::<_, IVec>((Bound::Unbounded, Bound::Included(self.sweep_from.clone())));
        for (start, slot) in after.chain(from_start).take(EVICTION_SWEEP) {
            last = Some(start.clone());
            if let Slot::Held(block) = slot
                && !block.bytes().is_empty()
                && !self.dirty.contains(start)
                && !self.writing.contains(start)
            {
                freed += block.bytes().len();
                victims.push(start.clone());
                if self.held_bytes - freed <= target {
                    break;
                }
            }
        }
        if let Some(last) = last {
            self.sweep_from = last;
        }
        for start in victims {
            if let Some(Slot::Held(block)) = self.blocks.insert(start, Slot::Stored) {
                self.held_bytes -= block.bytes().len();
            }
        }
        // Short of the target: the rest is changed and waits for a compaction. Sweeping again
        // at every write would visit the same changed blocks over and over.
        self.sweep_at = if self.held_bytes > target {
            self.held_bytes + (self.held_bytes_max / 16).max(1 << 20)
        } else {
            0
        };
    }

    /// The changes since the last delta; starts the next delta.
    fn take_delta(&mut self) -> Vec<(IVec, Option<IVec>)> {
        self.changed_bytes = 0;
        std::mem::take(&mut self.changes)
    }

    /// Starts of the blocks that `stored` (start → fingerprint of the stored bytes) lacks,
    /// holds otherwise than they are now, or holds while they no longer start a block. Every
    /// block is held (this runs at load).
    fn blocks_unlike(&self, stored: &BTreeMap<IVec, u128>) -> BTreeSet<IVec> {
        let mut unlike: BTreeSet<IVec> = stored
            .keys()
            .filter(|start| !self.blocks.contains_key(*start))
            .cloned()
            .collect();
        for (start, slot) in self.blocks.iter() {
            let same = match slot {
                Slot::Held(block) => {
                    stored.get(start) == Some(&self.seed.fingerprint(block.bytes()))
                }
                Slot::Stored => true,
            };
            if !same {
                unlike.insert(start.clone());
            }
        }
        unlike
    }

    /// The blocks changed since the last compaction, as of now; starts the next compaction.
    /// Constant time but for the list of starts: the blocks are a snapshot.
    fn take_compaction(&mut self) -> Compaction {
        let dirty = std::mem::take(&mut self.dirty);
        self.writing.extend(dirty.iter().cloned());
        Compaction {
            blocks: self.blocks.clone(),
            starts: dirty.into_iter().rev().collect(),
        }
    }
}

/// A delta's parts: each a flag byte ([`MORE_PARTS`] or [`LAST_PART`]), then whole entries,
/// about [`DELTA_PART_BYTES`] each.
fn encode_delta(changes: &[(IVec, Option<IVec>)]) -> Vec<Vec<u8>> {
    // A key changed several times is written once, with its last change.
    let mut last: std::collections::HashMap<&[u8], usize> =
        std::collections::HashMap::with_capacity(changes.len());
    for (index, (key, _)) in changes.iter().enumerate() {
        last.insert(key.as_ref(), index);
    }
    let mut parts = Vec::new();
    let mut bytes = vec![MORE_PARTS];
    for (index, (key, value)) in changes.iter().enumerate() {
        if last.get(key.as_ref()) != Some(&index) {
            continue;
        }
        if bytes.len() >= DELTA_PART_BYTES {
            parts.push(std::mem::replace(&mut bytes, vec![MORE_PARTS]));
        }
        put_part(&mut bytes, key);
        match value {
            Some(value) => put_part(&mut bytes, value),
            None => bytes.extend_from_slice(&REMOVED.to_le_bytes()),
        }
    }
    bytes[0] = LAST_PART;
    parts.push(bytes);
    parts
}

/// Decodes a block's or a delta's entries (`None`: a removal, in deltas only).
fn decode_entries(
    key: &[u8],
    bytes: &[u8],
    removals_allowed: bool,
) -> Result<Vec<(IVec, Option<IVec>)>, ResidentError> {
    let mut entries = Vec::new();
    let mut rest = bytes;
    let take = |rest: &mut &[u8], removal_allowed: bool| -> Result<Option<IVec>, ResidentError> {
        if let Some((length, tail)) = rest.split_first_chunk::<4>()
            && u32::from_le_bytes(*length) == REMOVED
        {
            *rest = tail;
            return if removal_allowed {
                Ok(None)
            } else {
                Err(corrupt(key, "a removal outside a delta"))
            };
        }
        take_part(rest)
            .map(|part| Some(IVec::from(part)))
            .ok_or_else(|| corrupt(key, "an entry is cut short"))
    };
    while !rest.is_empty() {
        let entry_key =
            take(&mut rest, false)?.ok_or_else(|| corrupt(key, "a key without length"))?;
        let value = take(&mut rest, removals_allowed)?;
        entries.push((entry_key, value));
    }
    Ok(entries)
}

fn decode_block(key: &[u8], bytes: &[u8]) -> Result<Vec<(IVec, IVec)>, ResidentError> {
    decode_entries(key, bytes, false).map(|entries| {
        entries
            .into_iter()
            .filter_map(|(key, value)| value.map(|value| (key, value)))
            .collect()
    })
}

/// What a tree holds, read entry by entry: its entries (blocks with the deltas replayed), its
/// stored blocks' starts with a fingerprint of their bytes, its deltas' last generation and
/// total size.
struct Stored {
    entries: BTreeMap<IVec, IVec>,
    blocks: BTreeMap<IVec, u128>,
    generation: u64,
    delta_bytes: usize,
}

/// Reads a tree in a block layout (the caller checked the layout key), fingerprinting blocks
/// with `seed`.
fn read_stored(tree: &sled::Tree, seed: Seed) -> Result<Stored, ResidentError> {
    let mut stored = Stored {
        entries: BTreeMap::new(),
        blocks: BTreeMap::new(),
        generation: 0,
        delta_bytes: 0,
    };
    for entry in tree.scan_prefix([BLOCK]) {
        let (key, value) = entry?;
        stored
            .blocks
            .insert(IVec::from(&key[1..]), seed.fingerprint(&value));
        stored.entries.extend(decode_block(&key, &value)?);
    }
    // A delta counts once its last part is there (parts are written in order); one cut short by
    // a crash is ignored, and removed with the others by the next compaction.
    let mut parts: Vec<(IVec, Option<IVec>)> = Vec::new();
    let mut current: Option<(u64, u32)> = None;
    for entry in tree.scan_prefix([DELTA]) {
        let (key, value) = entry?;
        let (generation, part) = match (key.get(1..9), key.get(9..)) {
            (Some(generation), Some(part)) if key.len() == 13 => (
                u64::from_be_bytes(
                    generation
                        .try_into()
                        .map_err(|_| corrupt(&key, "bad key"))?,
                ),
                u32::from_be_bytes(part.try_into().map_err(|_| corrupt(&key, "bad key"))?),
            ),
            _ => return Err(corrupt(&key, "a delta key without its generation and part")),
        };
        let expected = match current {
            Some((current_generation, last_part)) if current_generation == generation => {
                last_part + 1
            }
            _ => {
                parts.clear();
                0
            }
        };
        if part != expected {
            return Err(corrupt(&key, "a delta part out of sequence"));
        }
        current = Some((generation, part));
        stored.generation = generation;
        let (flag, body) = value
            .split_first()
            .ok_or_else(|| corrupt(&key, "an empty delta part"))?;
        parts.extend(decode_entries(&key, body, true)?);
        stored.delta_bytes += value.len();
        match *flag {
            MORE_PARTS => {}
            LAST_PART => {
                for (entry_key, entry_value) in parts.drain(..) {
                    match entry_value {
                        Some(entry_value) => stored.entries.insert(entry_key, entry_value),
                        None => stored.entries.remove(&entry_key),
                    };
                }
            }
            _ => return Err(corrupt(&key, "a delta part with an unknown flag")),
        }
    }
    Ok(stored)
}

/// The stored blocks taken as they are, when the tree holds no delta and every block is cut as
/// `seed` cuts (each starts with its start key, which starts a block, and holds no other key
/// that does, in ascending order below the next block's start); `None` otherwise. A block that
/// is not well formed is an error.
fn read_blocks_as_cut(
    tree: &sled::Tree,
    seed: Seed,
    held_bytes_max: usize,
) -> Result<Option<(Blocks, usize, usize)>, ResidentError> {
    if tree.scan_prefix([DELTA]).next().transpose()?.is_some() {
        return Ok(None);
    }
    let mut blocks = Vec::new();
    let mut len = 0;
    let mut held_bytes = 0;
    let mut previous_key: Option<IVec> = None;
    let mut as_cut = true;
    for entry in tree.scan_prefix([BLOCK]) {
        let (key, value) = entry?;
        let start = &key[1..];
        let mut rest: &[u8] = &value;
        let mut first = true;
        while !rest.is_empty() {
            let entry_key =
                take_part(&mut rest).ok_or_else(|| corrupt(&key, "an entry is cut short"))?;
            take_part(&mut rest).ok_or_else(|| corrupt(&key, "an entry is cut short"))?;
            let in_order = previous_key
                .as_ref()
                .is_none_or(|previous| previous.as_ref() < entry_key);
            let cut_here = if first && !start.is_empty() {
                entry_key == start
            } else {
                true
            };
            let starts = seed.starts_block(entry_key);
            if !in_order || !cut_here || starts != (first && !start.is_empty()) {
                as_cut = false;
            }
            previous_key = Some(IVec::from(entry_key));
            first = false;
            len += 1;
        }
        if (first && !start.is_empty()) || (!start.is_empty() && !seed.starts_block(start)) {
            as_cut = false;
        }
        // Past the memory budget, blocks stay on disk until read.
        let slot = if held_bytes + value.len() <= held_bytes_max || value.is_empty() {
            held_bytes += value.len();
            Slot::Held(Packed(Arc::from(value.as_ref())))
        } else {
            Slot::Stored
        };
        blocks.push((IVec::from(start), slot));
    }
    if !as_cut {
        return Ok(None);
    }
    let mut blocks: Blocks = blocks.into_iter().collect();
    if !blocks.contains_key(&[][..]) {
        blocks.insert(IVec::default(), Slot::Held(Packed::empty()));
    }
    Ok(Some((blocks, len, held_bytes)))
}

/// Whether `tree` is in a block layout (it holds the layout key with [`LAYOUT`] or
/// [`LAYOUT_UNKEYED`], whose blocks read alike).
fn in_block_layout(tree: &sled::Tree) -> Result<bool, ResidentError> {
    Ok(tree
        .get(LAYOUT_KEY)?
        .is_some_and(|layout| layout.as_ref() == LAYOUT || layout.as_ref() == LAYOUT_UNKEYED))
}

/// The entries persisted in `tree` (blocks, deltas replayed), in key order, or `None` when the
/// tree is not in the block layout. Changes nothing: for tools and tests that read a stopped
/// roster's data directory.
pub fn persisted_entries(tree: &sled::Tree) -> Result<Option<Vec<(IVec, IVec)>>, ResidentError> {
    if !in_block_layout(tree)? {
        return Ok(None);
    }
    Ok(Some(
        read_stored(tree, Seed::default())?
            .entries
            .into_iter()
            .collect(),
    ))
}

/// The value of `key` as persisted in `tree` (it reads the whole tree): `None` when the tree is
/// not in the block layout, `Some(None)` when the key is absent. Changes nothing.
pub fn persisted_get(tree: &sled::Tree, key: &[u8]) -> Result<Option<Option<IVec>>, ResidentError> {
    if !in_block_layout(tree)? {
        return Ok(None);
    }
    Ok(Some(
        read_stored(tree, Seed::default())?.entries.remove(key),
    ))
}

/// Reads the tree's boundary key, making and storing one (with the layout) when the tree has
/// none: a new tree, or one in [`LAYOUT_UNKEYED`].
fn stored_seed(tree: &sled::Tree, new: Seed) -> Result<Seed, ResidentError> {
    if let Some(bytes) = tree.get(SEED_KEY)? {
        let bytes: [u8; 16] = bytes
            .as_ref()
            .try_into()
            .map_err(|_| corrupt(SEED_KEY, "not 16 bytes"))?;
        return Ok(Seed(bytes));
    }
    tree.insert(SEED_KEY, &new.0)?;
    tree.insert(LAYOUT_KEY, LAYOUT)?;
    Ok(new)
}

/// Loads a tree in a block layout: its map, its deltas' last generation and their size.
fn load(
    tree: &sled::Tree,
    new_seed: Seed,
    held_bytes_max: usize,
) -> Result<(Map, u64, usize), ResidentError> {
    let seed = stored_seed(tree, new_seed)?;
    if let Some((blocks, len, held_bytes)) = read_blocks_as_cut(tree, seed, held_bytes_max)? {
        let mut map = Map::empty(seed, held_bytes_max);
        map.blocks = blocks;
        map.len = len;
        map.held_bytes = held_bytes;
        return Ok((map, 0, 0));
    }
    // Deltas were left (a crash, or a compaction still to come), or blocks were cut otherwise:
    // every stored block that differs from what the entries make now, and every missing or
    // stale one, is rewritten or removed by the next compaction.
    let stored = read_stored(tree, seed)?;
    let mut map = Map::from_sorted(stored.entries, seed, held_bytes_max);
    map.dirty = map.blocks_unlike(&stored.blocks);
    // Even when every block is current, the next compaction removes the deltas.
    map.dirty.insert(IVec::default());
    // Blocks stored as they are now may leave memory at once.
    map.evict();
    Ok((map, stored.generation, stored.delta_bytes))
}

/// One persist: a delta, then optionally a compaction as of that delta.
struct Job {
    generation: u64,
    delta: Arc<Vec<(IVec, Option<IVec>)>>,
    compaction: Option<Compaction>,
}

/// What a job took from the map, given back to it when the job fails.
struct Taken {
    changes: Arc<Vec<(IVec, Option<IVec>)>>,
    dirty: Vec<IVec>,
    compacting: bool,
}

/// One sled write of a job, in the order they must land.
#[derive(Clone)]
enum Write {
    /// One part of a delta: its generation, its index, its bytes.
    DeltaPart(u64, u32, Vec<u8>),
    /// Blocks written or removed, in one small batch, and its size in bytes.
    Blocks(sled::Batch, usize),
    /// The deltas up to this generation removed (the blocks hold their changes).
    DeltasSpent(u64),
}

impl Write {
    /// Bytes the write puts in sled's log, roughly.
    fn size(&self) -> usize {
        match self {
            Write::DeltaPart(_, _, bytes) => bytes.len(),
            Write::Blocks(_, size) => *size,
            Write::DeltasSpent(_) => 0,
        }
    }

    fn run(self, tree: &sled::Tree) -> Result<(), sled::Error> {
        match self {
            Write::DeltaPart(generation, part, bytes) => {
                tree.insert(delta_key(generation, part), bytes).map(drop)
            }
            Write::Blocks(batch, _) => tree.apply_batch(batch),
            Write::DeltasSpent(generation) => {
                let mut batch = sled::Batch::default();
                for entry in tree.range(delta_key(0, 0)..=delta_key(generation, u32::MAX)) {
                    batch.remove(entry?.0);
                }
                tree.apply_batch(batch)
            }
        }
    }
}

impl Job {
    fn taken(&self) -> Taken {
        Taken {
            changes: self.delta.clone(),
            dirty: self
                .compaction
                .as_ref()
                .map(|compaction| compaction.starts.clone())
                .unwrap_or_default(),
            compacting: self.compaction.is_some(),
        }
    }

    /// The job's sled writes: the delta, then the compaction's blocks in small batches (writes
    /// in descending start order, then removals), then the removal of the deltas it covers.
    fn writes(self) -> Vec<Write> {
        let mut writes = Vec::new();
        if !self.delta.is_empty() {
            for (part, bytes) in (0u32..).zip(encode_delta(&self.delta)) {
                writes.push(Write::DeltaPart(self.generation, part, bytes));
            }
        }
        let Some(Compaction { blocks, starts }) = self.compaction else {
            return writes;
        };
        let (stored, removed): (Vec<_>, Vec<_>) = starts
            .into_iter()
            .partition(|start| blocks.contains_key(start));
        for chunk in stored.chunks(BLOCKS_PER_BATCH) {
            let mut batch = sled::Batch::default();
            let mut size = 0;
            for start in chunk {
                // A block to write is held: changed blocks are never dropped from memory.
                if let Some(Slot::Held(block)) = blocks.get(start) {
                    size += block.bytes().len();
                    batch.insert(block_key(start), block.bytes());
                }
            }
            writes.push(Write::Blocks(batch, size));
        }
        for chunk in removed.chunks(BLOCKS_PER_BATCH) {
            let mut batch = sled::Batch::default();
            for start in chunk {
                batch.remove(block_key(start));
            }
            writes.push(Write::Blocks(batch, 0));
        }
        writes.push(Write::DeltasSpent(self.generation));
        writes
    }

    /// Runs the job's writes in order; `paced`, at most [`PACED_BYTES_PER_SECOND`].
    fn write(self, tree: &sled::Tree, paced: bool) -> Result<(), sled::Error> {
        let started = Instant::now();
        let mut written = 0usize;
        for write in self.writes() {
            written += write.size();
            write.run(tree)?;
            if paced {
                let due = Duration::from_secs_f64(written as f64 / PACED_BYTES_PER_SECOND as f64);
                if let Some(early) = due.checked_sub(started.elapsed()) {
                    std::thread::sleep(early);
                }
            }
        }
        Ok(())
    }
}

/// A job for the persist thread, and where to answer.
type PersistJob = (Job, SyncSender<Result<(), String>>);

struct Persister {
    /// Jobs for the persist thread, one at a time.
    sender: Option<SyncSender<PersistJob>>,
    /// The answer of the job sent and not yet confirmed, and what it took from the map.
    in_flight: Option<(Receiver<Result<(), String>>, Taken)>,
    last: Instant,
    /// The generation of the last delta taken.
    generation: u64,
    /// Bytes of the deltas taken since the last compaction was taken.
    delta_bytes: usize,
}

/// A key space held in memory and persisted to a sled tree as deltas and packed blocks.
pub struct Resident {
    tree: sled::Tree,
    map: RwLock<Map>,
    persister: Mutex<Persister>,
    policy: PersistPolicy,
}

impl std::fmt::Debug for Resident {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Resident").finish_non_exhaustive()
    }
}

impl Resident {
    /// Loads `tree` into memory (clearing it first when it holds an older layout) and starts
    /// the thread that persists it.
    pub fn open(tree: sled::Tree, policy: PersistPolicy) -> Result<Arc<Self>, ResidentError> {
        Self::open_seeded(tree, policy, Seed::random())
    }

    /// [`Resident::open`], with `new_seed` as the boundary key if the tree has none yet.
    fn open_seeded(
        tree: sled::Tree,
        policy: PersistPolicy,
        new_seed: Seed,
    ) -> Result<Arc<Self>, ResidentError> {
        let (map, generation, delta_bytes) = match tree.get(LAYOUT_KEY)? {
            Some(layout) if layout.as_ref() == LAYOUT || layout.as_ref() == LAYOUT_UNKEYED => {
                load(&tree, new_seed, policy.held_bytes)?
            }
            Some(other) => {
                return Err(ResidentError::Corrupt {
                    key: String::from_utf8_lossy(LAYOUT_KEY).into_owned(),
                    reason: format!(
                        "unknown layout {:?} (written by a newer roster?)",
                        String::from_utf8_lossy(&other)
                    ),
                });
            }
            None => {
                if !tree.is_empty() {
                    tracing::info!(
                        tree = %String::from_utf8_lossy(&tree.name()),
                        "tree in the per-key layout of earlier rosters: cleared, to be rebuilt from the log in blocks"
                    );
                    tree.clear()?;
                }
                (
                    Map::empty(stored_seed(&tree, new_seed)?, policy.held_bytes),
                    0,
                    0,
                )
            }
        };
        tracing::info!(
            tree = %String::from_utf8_lossy(&tree.name()),
            entries = map.len,
            blocks = map.blocks.len(),
            held_mib = map.held_bytes >> 20,
            "resident tree loaded"
        );
        let (sender, receiver) = std::sync::mpsc::sync_channel::<PersistJob>(1);
        let writer = tree.clone();
        std::thread::Builder::new()
            .name("roster-resident-persist".into())
            .spawn(move || {
                for (job, answer) in receiver {
                    let started = Instant::now();
                    let generation = job.generation;
                    let result = job.write(&writer, true).map_err(|error| error.to_string());
                    tracing::debug!(
                        generation,
                        took_ms = started.elapsed().as_millis() as u64,
                        "persist written"
                    );
                    let _ = answer.send(result);
                }
            })
            .map_err(|error| ResidentError::Persist(error.to_string()))?;
        Ok(Arc::new(Self {
            tree,
            map: RwLock::new(map),
            persister: Mutex::new(Persister {
                sender: Some(sender),
                in_flight: None,
                last: Instant::now(),
                generation,
                delta_bytes,
            }),
            policy,
        }))
    }

    fn read_map(&self) -> std::sync::RwLockReadGuard<'_, Map> {
        // Every change to the map is one whole `apply` of plain inserts and removals; a panic
        // inside one leaves entries readable.
        self.map
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write_map(&self) -> std::sync::RwLockWriteGuard<'_, Map> {
        self.map
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock_persister(&self) -> std::sync::MutexGuard<'_, Persister> {
        self.persister
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The value of `key`. A block dropped from memory is read from disk and taken back.
    pub fn get(&self, key: &[u8]) -> Result<Option<IVec>, ResidentError> {
        let (value, dropped) = self.read_map().get(&self.tree, key)?;
        if let Some((start, block)) = dropped {
            let mut map = self.write_map();
            // Taken back only if still dropped: a write may have taken it back since.
            if let Some(Slot::Stored) = map.blocks.get(&start) {
                map.hold(start, block);
                map.evict();
            }
        }
        Ok(value)
    }

    /// How many entries the tree holds.
    pub fn len(&self) -> usize {
        self.read_map().len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of blocks held in memory.
    pub fn held_bytes(&self) -> usize {
        self.read_map().held_bytes
    }

    /// Applies `writes` (a value, or `None` to remove) as one change: a persist never sees part
    /// of it. The blocks they touch that were dropped from memory are read back first; when
    /// that fails, nothing is applied.
    pub fn apply(
        &self,
        writes: impl IntoIterator<Item = (IVec, Option<IVec>)>,
    ) -> Result<(), ResidentError> {
        let writes: Vec<(IVec, Option<IVec>)> = writes.into_iter().collect();
        let mut map = self.write_map();
        for (key, value) in &writes {
            map.hold_for_write(&self.tree, key, value.is_none())?;
        }
        for (key, value) in writes {
            match value {
                Some(value) => map.put(key, value),
                None => map.remove(&key),
            }
        }
        map.evict();
        Ok(())
    }

    /// Entries from `start` (inclusive) to `end` (exclusive; `None`: to the end), in key order,
    /// from either end. The read lock is taken a chunk of entries at a time, so a long scan
    /// never holds writers off; blocks dropped from memory are read from disk under it (their
    /// stored copy cannot change while it is held).
    pub fn range(self: &Arc<Self>, start: &[u8], end: Option<&[u8]>) -> ResidentRange {
        ResidentRange {
            resident: self.clone(),
            front: Bound::Included(IVec::from(start)),
            back: end.map_or(Bound::Unbounded, |end| Bound::Excluded(IVec::from(end))),
            front_buffer: VecDeque::new(),
            back_buffer: VecDeque::new(),
            failed: None,
        }
    }

    /// Empties the tree, in memory and in sled.
    pub fn clear(&self) -> Result<(), ResidentError> {
        let mut persister = self.lock_persister();
        // Whatever the job in flight did is cleared below.
        let _ = self.wait_in_flight(&mut persister);
        let mut map = self.write_map();
        let seed = map.seed;
        *map = Map::empty(seed, self.policy.held_bytes);
        persister.generation = 0;
        persister.delta_bytes = 0;
        self.tree.clear()?;
        // The same boundary key: what is rebuilt persists as it would have incrementally.
        self.tree.insert(SEED_KEY, &seed.0)?;
        self.tree.insert(LAYOUT_KEY, LAYOUT)?;
        Ok(())
    }

    /// The next job: the changes since the last delta, and the changed blocks when
    /// `compact`; `None` when there is nothing to write.
    fn take_job(&self, persister: &mut Persister, compact: bool) -> Option<Job> {
        let started = Instant::now();
        let mut map = self.write_map();
        let blocks_to_write = compact && !map.dirty.is_empty();
        if map.changes.is_empty() && !blocks_to_write {
            return None;
        }
        persister.generation += 1;
        persister.delta_bytes += map.changed_bytes;
        let delta = Arc::new(map.take_delta());
        let compaction = if compact {
            persister.delta_bytes = 0;
            Some(map.take_compaction())
        } else {
            None
        };
        drop(map);
        tracing::debug!(
            generation = persister.generation,
            changed = delta.len(),
            blocks = compaction
                .as_ref()
                .map_or(0, |compaction| compaction.starts.len()),
            held_us = started.elapsed().as_micros() as u64,
            "persist taken"
        );
        Some(Job {
            generation: persister.generation,
            delta,
            compaction,
        })
    }

    /// Starts a persist when the policy says one is due and none is running; never waits for
    /// sled. It writes a delta, and compacts after [`PersistPolicy::compact_after_bytes`].
    pub fn persist_if_due(&self) -> Result<(), ResidentError> {
        let mut persister = self.lock_persister();
        if let Some((in_flight, _)) = &persister.in_flight {
            let result = match in_flight.try_recv() {
                Ok(result) => result,
                Err(std::sync::mpsc::TryRecvError::Empty) => return Ok(()),
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    Err("the persist thread stopped".into())
                }
            };
            if let Some((_, taken)) = persister.in_flight.take() {
                self.settle(&mut persister, result, taken)?;
            }
        }
        let (due, compact) = {
            let map = self.read_map();
            let due = !map.changes.is_empty()
                && (map.changed_bytes >= self.policy.changed_bytes
                    || persister.last.elapsed() >= self.policy.interval);
            let compact =
                persister.delta_bytes + map.changed_bytes >= self.policy.compact_after_bytes;
            (due, compact)
        };
        if !due {
            return Ok(());
        }
        let Some(job) = self.take_job(&mut persister, compact) else {
            return Ok(());
        };
        let taken = job.taken();
        let (answer, in_flight) = std::sync::mpsc::sync_channel(1);
        let sent = match &persister.sender {
            Some(sender) => sender.try_send((job, answer)),
            None => Err(TrySendError::Disconnected((job, answer))),
        };
        if sent.is_err() {
            self.give_back(&mut persister, taken);
            return Err(ResidentError::Persist(
                "the persist thread is not taking work".into(),
            ));
        }
        persister.in_flight = Some((in_flight, taken));
        persister.last = Instant::now();
        Ok(())
    }

    /// Writes every change so far to sled, compacted, and waits for it.
    pub fn persist(&self) -> Result<(), ResidentError> {
        let mut persister = self.lock_persister();
        self.wait_in_flight(&mut persister)?;
        let Some(job) = self.take_job(&mut persister, true) else {
            return Ok(());
        };
        let taken = job.taken();
        persister.last = Instant::now();
        job.write(&self.tree, false).map_err(|error| {
            self.give_back(&mut persister, taken);
            ResidentError::Sled(error)
        })?;
        self.written();
        Ok(())
    }

    /// Waits for the job in flight, if any.
    fn wait_in_flight(&self, persister: &mut Persister) -> Result<(), ResidentError> {
        if let Some((in_flight, taken)) = persister.in_flight.take() {
            let result = in_flight
                .recv()
                .unwrap_or_else(|_| Err("the persist thread stopped".into()));
            self.settle(persister, result, taken)?;
        }
        Ok(())
    }

    /// Takes a job's result: a failed job's changes and blocks go back to the map, for the next
    /// job to write.
    fn settle(
        &self,
        persister: &mut Persister,
        result: Result<(), String>,
        taken: Taken,
    ) -> Result<(), ResidentError> {
        match result {
            Ok(()) => {
                self.written();
                Ok(())
            }
            Err(reason) => {
                tracing::error!(%reason, "persisting a resident tree failed; the next persist writes its changes again");
                self.give_back(persister, taken);
                Err(ResidentError::Persist(reason))
            }
        }
    }

    /// A job's blocks are on disk as held: they may leave memory.
    fn written(&self) {
        let mut map = self.write_map();
        map.writing.clear();
        map.sweep_at = 0;
        map.evict();
    }

    fn give_back(&self, persister: &mut Persister, taken: Taken) {
        let mut map = self.write_map();
        // Older than the changes made since: they go first.
        let newer = std::mem::take(&mut map.changes);
        map.changes = taken.changes.as_ref().clone();
        map.changes.extend(newer);
        map.dirty.extend(taken.dirty);
        map.writing.clear();
        if taken.compacting {
            // The deltas it was to replace are still there: compact again at the next persist.
            persister.delta_bytes = persister.delta_bytes.max(self.policy.compact_after_bytes);
        }
    }

    /// Persists what changed and stops the persist thread.
    pub fn stop(&self) -> Result<(), ResidentError> {
        let persisted = self.persist();
        self.lock_persister().sender = None;
        persisted
    }
}

/// Entries of a [`Resident::range`], fetched a chunk at a time from either end.
pub struct ResidentRange {
    resident: Arc<Resident>,
    /// Lower bound of what neither end has fetched yet.
    front: Bound<IVec>,
    /// Upper bound of what neither end has fetched yet.
    back: Bound<IVec>,
    front_buffer: VecDeque<(IVec, IVec)>,
    /// In descending key order.
    back_buffer: VecDeque<(IVec, IVec)>,
    /// A block that could not be read from disk: reported once, then the range ends.
    failed: Option<sled::Error>,
}

/// Whether `(lower, upper)` is a range that may hold keys.
fn is_open(lower: &Bound<IVec>, upper: &Bound<IVec>) -> bool {
    match (lower, upper) {
        (Bound::Unbounded, _) | (_, Bound::Unbounded) => true,
        (Bound::Included(low), Bound::Included(high)) => low <= high,
        (Bound::Included(low), Bound::Excluded(high))
        | (Bound::Excluded(low), Bound::Included(high))
        | (Bound::Excluded(low), Bound::Excluded(high)) => low < high,
    }
}

fn above(key: &[u8], lower: &Bound<IVec>) -> bool {
    match lower {
        Bound::Unbounded => true,
        Bound::Included(low) => key >= low.as_ref(),
        Bound::Excluded(low) => key > low.as_ref(),
    }
}

fn below(key: &[u8], upper: &Bound<IVec>) -> bool {
    match upper {
        Bound::Unbounded => true,
        Bound::Included(high) => key <= high.as_ref(),
        Bound::Excluded(high) => key < high.as_ref(),
    }
}

impl ResidentRange {
    fn fetch(&mut self, from_back: bool) {
        if !is_open(&self.front, &self.back) {
            return;
        }
        let resident = self.resident.clone();
        let map = resident.read_map();
        let fetched = if from_back {
            self.fetch_back(&map, &resident.tree)
        } else {
            self.fetch_front(&map, &resident.tree)
        };
        if let Err(error) = fetched {
            self.failed = Some(error.into());
            // Nothing more: the range ends after the error.
            self.front = Bound::Excluded(IVec::default());
            self.back = Bound::Included(IVec::default());
        }
    }

    fn fetch_front(&mut self, map: &Map, tree: &sled::Tree) -> Result<(), ResidentError> {
        let start = match &self.front {
            Bound::Included(key) | Bound::Excluded(key) => map.slot_of(key).0,
            Bound::Unbounded => IVec::default(),
        };
        'blocks: for (start, slot) in map
            .blocks
            .range::<_, IVec>((Bound::Included(start), Bound::Unbounded))
        {
            let block = Map::contents(tree, start, slot.clone())?;
            for (key, value) in block.entries() {
                if !above(key, &self.front) {
                    continue;
                }
                if !below(key, &self.back) || self.front_buffer.len() == RANGE_CHUNK {
                    break 'blocks;
                }
                self.front_buffer
                    .push_back((IVec::from(key), IVec::from(value)));
            }
        }
        if let Some((key, _)) = self.front_buffer.back() {
            self.front = Bound::Excluded(key.clone());
        }
        Ok(())
    }

    fn fetch_back(&mut self, map: &Map, tree: &sled::Tree) -> Result<(), ResidentError> {
        let start = match &self.back {
            Bound::Included(key) | Bound::Excluded(key) => map.slot_of(key).0,
            Bound::Unbounded => map
                .blocks
                .get_max()
                .map(|(start, _)| start.clone())
                .unwrap_or_default(),
        };
        'blocks: for (start, slot) in map
            .blocks
            .range::<_, IVec>((Bound::Unbounded, Bound::Included(start)))
            .rev()
        {
            let block = Map::contents(tree, start, slot.clone())?;
            let entries: Vec<_> = block.entries().collect();
            for (key, value) in entries.into_iter().rev() {
                if !below(key, &self.back) {
                    continue;
                }
                if !above(key, &self.front) || self.back_buffer.len() == RANGE_CHUNK {
                    break 'blocks;
                }
                self.back_buffer
                    .push_back((IVec::from(key), IVec::from(value)));
            }
        }
        if let Some((key, _)) = self.back_buffer.back() {
            self.back = Bound::Excluded(key.clone());
        }
        Ok(())
    }
}

impl Iterator for ResidentRange {
    type Item = Result<(IVec, IVec), sled::Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.front_buffer.is_empty() {
            self.fetch(false);
        }
        if self.front_buffer.is_empty()
            && let Some(error) = self.failed.take()
        {
            return Some(Err(error));
        }
        self.front_buffer
            .pop_front()
            .or_else(|| self.back_buffer.pop_back())
            .map(Ok)
    }
}

impl DoubleEndedIterator for ResidentRange {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.back_buffer.is_empty() {
            self.fetch(true);
        }
        if self.back_buffer.is_empty()
            && let Some(error) = self.failed.take()
        {
            return Some(Err(error));
        }
        self.back_buffer
            .pop_front()
            .or_else(|| self.front_buffer.pop_back())
            .map(Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opens with one boundary key for every tree, so that trees can be compared byte for byte.
    fn open_fixed(tree: sled::Tree, policy: PersistPolicy) -> Result<Arc<Resident>, ResidentError> {
        Resident::open_seeded(tree, policy, Seed([7; 16]))
    }

    fn open(db: &sled::Db) -> Arc<Resident> {
        open_fixed(db.open_tree("r").unwrap(), PersistPolicy::default()).unwrap()
    }

    fn keys(range: impl Iterator<Item = Result<(IVec, IVec), sled::Error>>) -> Vec<Vec<u8>> {
        range.map(|entry| entry.unwrap().0.to_vec()).collect()
    }

    fn put(resident: &Resident, key: &[u8], value: &[u8]) {
        resident
            .apply([(IVec::from(key), Some(IVec::from(value)))])
            .unwrap();
    }

    #[test]
    fn ranges_read_from_both_ends_without_repeats() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let resident = open(&db);
        for index in 0u32..1000 {
            put(&resident, &index.to_be_bytes(), b"v");
        }
        let all = keys(resident.range(&[], None));
        assert_eq!(all.len(), 1000);
        let mut range = resident.range(&10u32.to_be_bytes(), Some(&990u32.to_be_bytes()));
        let mut seen = Vec::new();
        let mut from_back = Vec::new();
        loop {
            match range.next() {
                Some(entry) => seen.push(entry.unwrap().0.to_vec()),
                None => break,
            }
            match range.next_back() {
                Some(entry) => from_back.push(entry.unwrap().0.to_vec()),
                None => break,
            }
        }
        from_back.reverse();
        seen.extend(from_back);
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 980);
        assert_eq!(seen.first().unwrap(), &10u32.to_be_bytes().to_vec());
        assert_eq!(seen.last().unwrap(), &989u32.to_be_bytes().to_vec());
        assert_eq!(
            resident
                .range(b"\x00\x00\x03", None)
                .next_back()
                .unwrap()
                .unwrap()
                .0,
            IVec::from(&999u32.to_be_bytes())
        );
        assert!(resident.range(b"zz", Some(b"aa")).next().is_none());
    }

    #[test]
    fn what_is_persisted_is_loaded_again_and_depends_only_on_the_entries() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let first = open_fixed(db.open_tree("one").unwrap(), PersistPolicy::default()).unwrap();
        let second = open_fixed(db.open_tree("two").unwrap(), PersistPolicy::default()).unwrap();
        // The same final entries, reached in different orders and with different detours.
        for index in 0u32..3000 {
            put(&first, format!("key-{index}").as_bytes(), b"first value");
        }
        first.persist().unwrap();
        for index in (0u32..3000).rev() {
            put(&second, format!("key-{index}").as_bytes(), b"other");
            put(&second, format!("gone-{index}").as_bytes(), b"x");
        }
        second.persist().unwrap();
        for index in 0u32..3000 {
            put(&second, format!("key-{index}").as_bytes(), b"first value");
            second
                .apply([(IVec::from(format!("gone-{index}").as_bytes()), None)])
                .unwrap();
            if index % 7 == 0 {
                first
                    .apply([(IVec::from(format!("key-{index}").as_bytes()), None)])
                    .unwrap();
                second
                    .apply([(IVec::from(format!("key-{index}").as_bytes()), None)])
                    .unwrap();
            }
        }
        first.persist().unwrap();
        second.persist().unwrap();
        let dump = |name: &str| -> Vec<(IVec, IVec)> {
            db.open_tree(name)
                .unwrap()
                .iter()
                .map(|entry| entry.unwrap())
                .collect()
        };
        let persisted = dump("one");
        assert!(persisted.len() > 20, "{} blocks", persisted.len());
        assert_eq!(persisted, dump("two"));
        first.stop().unwrap();
        let loaded = open_named(&db, "one");
        assert_eq!(loaded.len(), 3000 - 429);
        assert_eq!(
            loaded.get(b"key-1").unwrap().as_deref(),
            Some(b"first value".as_slice())
        );
        assert_eq!(loaded.get(b"key-7").unwrap(), None);
    }

    fn open_named(db: &sled::Db, name: &str) -> Arc<Resident> {
        open_fixed(db.open_tree(name).unwrap(), PersistPolicy::default()).unwrap()
    }

    #[test]
    fn a_tree_in_an_older_layout_is_cleared_and_a_damaged_block_is_refused() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let old = db.open_tree("old").unwrap();
        old.insert(b"U acme", b"{}").unwrap();
        let resident = open_named(&db, "old");
        assert!(resident.is_empty());
        put(&resident, b"k", b"v");
        resident.stop().unwrap();
        let tree = db.open_tree("old").unwrap();
        let (key, value) = tree.scan_prefix([BLOCK]).next().unwrap().unwrap();
        tree.insert(key, &value[..value.len() - 1]).unwrap();
        let refused = open_fixed(tree, PersistPolicy::default()).unwrap_err();
        assert!(
            matches!(refused, ResidentError::Corrupt { .. }),
            "{refused}"
        );
    }

    #[test]
    fn a_due_persist_writes_a_delta_in_the_background_and_a_stop_compacts() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let policy = PersistPolicy {
            changed_bytes: 10,
            interval: Duration::from_secs(3600),
            compact_after_bytes: 1 << 30,
            ..PersistPolicy::default()
        };
        let resident = open_fixed(db.open_tree("r").unwrap(), policy).unwrap();
        put(&resident, b"a", b"1");
        resident.persist_if_due().unwrap();
        assert!(resident.lock_persister().in_flight.is_none(), "not due yet");
        put(&resident, b"bbbbbbbbbbbb", b"2");
        resident.persist_if_due().unwrap();
        {
            let mut persister = resident.lock_persister();
            resident.wait_in_flight(&mut persister).unwrap();
        }
        let tree = db.open_tree("r").unwrap();
        assert_eq!(tree.scan_prefix([DELTA]).count(), 1);
        assert_eq!(tree.scan_prefix([BLOCK]).count(), 0);
        assert_eq!(persisted_entries(&tree).unwrap().unwrap().len(), 2);
        let loaded = open_fixed(tree.clone(), policy).unwrap();
        assert_eq!(loaded.get(b"a").unwrap().as_deref(), Some(b"1".as_slice()));
        drop(loaded);
        resident.stop().unwrap();
        assert_eq!(tree.scan_prefix([DELTA]).count(), 0, "a stop compacts");
        assert_eq!(persisted_entries(&tree).unwrap().unwrap().len(), 2);
    }

    #[test]
    fn a_delta_in_several_parts_counts_only_once_whole() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("r").unwrap();
        let resident = open_fixed(tree.clone(), PersistPolicy::default()).unwrap();
        put(&resident, b"before", b"1");
        resident.persist().unwrap();
        let before = persisted_entries(&tree).unwrap().unwrap();
        let value = vec![7u8; 1000];
        for index in 0u32..3000 {
            put(&resident, format!("key-{index:05}").as_bytes(), &value);
        }
        resident
            .apply([(IVec::from(b"before".as_slice()), None)])
            .unwrap();
        let expected: Vec<(IVec, IVec)> = resident
            .range(&[], None)
            .map(|entry| entry.unwrap())
            .collect();
        let writes = {
            let mut persister = resident.lock_persister();
            resident.take_job(&mut persister, false).unwrap().writes()
        };
        assert!(writes.len() >= 3, "{} parts", writes.len());
        let last = writes.len() - 1;
        for write in writes.iter().take(last).cloned() {
            write.run(&tree).unwrap();
        }
        assert_eq!(
            persisted_entries(&tree).unwrap().unwrap(),
            before,
            "a delta cut short"
        );
        // Loaded, and written again later: the parts cut short go with the next compaction.
        let loaded = open_fixed(tree.clone(), PersistPolicy::default()).unwrap();
        assert_eq!(loaded.len(), 1);
        put(&loaded, b"after", b"2");
        loaded.stop().unwrap();
        assert_eq!(tree.scan_prefix([DELTA]).count(), 0);
        assert_eq!(persisted_entries(&tree).unwrap().unwrap().len(), 2);

        // Whole, it counts.
        let whole = db.open_tree("whole").unwrap();
        let first = open_fixed(whole.clone(), PersistPolicy::default()).unwrap();
        put(&first, b"before", b"1");
        first.persist().unwrap();
        for write in writes {
            write.run(&whole).unwrap();
        }
        assert_eq!(persisted_entries(&whole).unwrap().unwrap(), expected);
    }

    /// The state every test of an interrupted compaction starts from: a compacted tree, then
    /// two deltas of changes that start new blocks, end others and change values.
    fn interrupted_state(db: &sled::Db, name: &str) -> (Arc<Resident>, Vec<Write>) {
        let policy = PersistPolicy {
            changed_bytes: 1,
            interval: Duration::ZERO,
            compact_after_bytes: 1 << 30,
            ..PersistPolicy::default()
        };
        let resident = open_fixed(db.open_tree(name).unwrap(), policy).unwrap();
        for index in 0u32..2000 {
            put(&resident, format!("key-{index:05}").as_bytes(), b"first");
        }
        resident.persist().unwrap();
        for round in 0u32..2 {
            for index in 0u32..2000 {
                let key = format!("key-{index:05}");
                if index % 5 == round {
                    resident
                        .apply([(IVec::from(key.as_bytes()), None)])
                        .unwrap();
                } else if index % 3 == round {
                    put(
                        &resident,
                        key.as_bytes(),
                        format!("round {round}").as_bytes(),
                    );
                }
                put(
                    &resident,
                    format!("key-{index:05}-{round}").as_bytes(),
                    b"new",
                );
            }
            resident.persist_if_due().unwrap();
            let mut persister = resident.lock_persister();
            resident.wait_in_flight(&mut persister).unwrap();
        }
        let mut persister = resident.lock_persister();
        let job = resident.take_job(&mut persister, true).unwrap();
        assert!(job.delta.is_empty(), "both deltas are written");
        drop(persister);
        (resident, job.writes())
    }

    #[test]
    fn a_compaction_cut_short_anywhere_loses_nothing() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let (resident, writes) = interrupted_state(&db, "whole");
        let expected: Vec<(IVec, IVec)> = resident
            .range(&[], None)
            .map(|entry| entry.unwrap())
            .collect();
        assert!(writes.len() > 3, "{} writes", writes.len());
        for cut in 0..=writes.len() {
            let name = format!("cut-{cut}");
            let (cut_short, _) = interrupted_state(&db, &name);
            drop(cut_short);
            let tree = db.open_tree(&name).unwrap();
            for write in writes.iter().take(cut).cloned() {
                write.run(&tree).unwrap();
            }
            assert_eq!(
                persisted_entries(&tree).unwrap().unwrap(),
                expected,
                "cut after {cut} writes"
            );
            let loaded = open_fixed(tree.clone(), PersistPolicy::default()).unwrap();
            assert_eq!(loaded.len(), expected.len());
            // Its next compaction leaves exactly the blocks of an uninterrupted one.
            loaded.stop().unwrap();
            let whole = db.open_tree("whole").unwrap();
            let reference = open_fixed(whole.clone(), PersistPolicy::default()).unwrap();
            reference.stop().unwrap();
            let dump = |tree: &sled::Tree| -> Vec<(IVec, IVec)> {
                tree.iter().map(|entry| entry.unwrap()).collect()
            };
            assert_eq!(
                dump(&tree),
                dump(&whole),
                "cut after {cut} writes, compacted"
            );
        }
    }

    #[test]
    fn random_writes_read_back_as_a_sorted_map_would_hold_them_and_persist_as_cut() {
        random_writes_read_back(usize::MAX);
    }

    #[test]
    fn with_little_memory_blocks_leave_it_and_are_read_back_from_disk() {
        random_writes_read_back(2048);
    }

    /// Random writes and removals, checked against a `BTreeMap` after every round (reads, ranges
    /// both ways, persists, a reload), with `held_bytes` of memory for blocks.
    fn random_writes_read_back(held_bytes: usize) {
        use rand::{Rng, SeedableRng};
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("r").unwrap();
        let policy = PersistPolicy {
            changed_bytes: 4096,
            interval: Duration::from_secs(3600),
            compact_after_bytes: 16384,
            held_bytes,
        };
        let mut resident = open_fixed(tree.clone(), policy).unwrap();
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut random = rand::rngs::StdRng::seed_from_u64(12);
        for round in 0..20 {
            for _ in 0..500 {
                // A small key space, so that starts come and go.
                let key = format!("k{:03}", random.random_range(0..400u32)).into_bytes();
                if random.random_bool(0.3) {
                    resident
                        .apply([(IVec::from(key.as_slice()), None)])
                        .unwrap();
                    model.remove(&key);
                } else {
                    let value = vec![b'v'; random.random_range(0..40usize)];
                    resident
                        .apply([(
                            IVec::from(key.as_slice()),
                            Some(IVec::from(value.as_slice())),
                        )])
                        .unwrap();
                    model.insert(key, value);
                }
            }
            let held: Vec<(Vec<u8>, Vec<u8>)> = resident
                .range(&[], None)
                .map(|entry| {
                    entry
                        .map(|(key, value)| (key.to_vec(), value.to_vec()))
                        .unwrap()
                })
                .collect();
            let expected: Vec<(Vec<u8>, Vec<u8>)> = model.clone().into_iter().collect();
            assert_eq!(held, expected, "round {round}");
            assert_eq!(resident.len(), model.len());
            let low = format!("k{:03}", random.random_range(0..400u32)).into_bytes();
            let high = format!("k{:03}", random.random_range(0..400u32)).into_bytes();
            let backwards: Vec<Vec<u8>> = resident
                .range(&low, Some(&high))
                .rev()
                .map(|entry| entry.unwrap().0.to_vec())
                .collect();
            let expected_backwards: Vec<Vec<u8>> = model
                .keys()
                .filter(|key| **key >= low && **key < high)
                .rev()
                .cloned()
                .collect();
            assert_eq!(backwards, expected_backwards, "round {round}");
            for probe in 0..400u32 {
                let key = format!("k{probe:03}").into_bytes();
                assert_eq!(
                    resident.get(&key).unwrap().map(|value| value.to_vec()),
                    model.get(&key).cloned()
                );
            }
            resident.persist_if_due().unwrap();
            if held_bytes < usize::MAX && round > 0 && round % 5 == 0 {
                // Written and compacted: every block may leave memory but what changes next.
                resident.persist().unwrap();
                assert!(
                    resident.held_bytes() <= held_bytes,
                    "{} bytes held",
                    resident.held_bytes()
                );
                let dropped = resident
                    .read_map()
                    .blocks
                    .values()
                    .filter(|slot| matches!(slot, Slot::Stored))
                    .count();
                assert!(dropped > 3, "{dropped} blocks dropped from memory");
            }
            if round % 7 == 6 {
                resident.stop().unwrap();
                resident = open_fixed(tree.clone(), policy).unwrap();
                assert_eq!(resident.len(), model.len());
            }
            if round % 5 == 4 {
                resident.persist().unwrap();
                let (blocks, len, _) = read_blocks_as_cut(&tree, Seed([7; 16]), usize::MAX)
                    .unwrap()
                    .expect("a compacted tree is cut as its key says");
                assert_eq!(len, model.len());
                assert!(blocks.len() > 1, "{} blocks", blocks.len());
            }
        }
    }

    #[test]
    fn a_tree_cut_by_the_unkeyed_hash_is_read_and_cut_again_by_its_key() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("r").unwrap();
        // As the previous layout stored it, cut otherwise: here one block with every entry.
        let entries: Vec<(IVec, IVec)> = (0u32..3000)
            .map(|index| {
                (
                    IVec::from(format!("user-{index:05}").as_bytes()),
                    IVec::from(b"record"),
                )
            })
            .collect();
        let mut bytes = Vec::new();
        for (key, value) in &entries {
            put_part(&mut bytes, key);
            put_part(&mut bytes, value);
        }
        tree.insert(LAYOUT_KEY, LAYOUT_UNKEYED).unwrap();
        tree.insert(block_key(&[]), bytes).unwrap();
        let resident = open_fixed(tree.clone(), PersistPolicy::default()).unwrap();
        assert_eq!(resident.len(), 3000);
        assert_eq!(
            resident.get(b"user-02999").unwrap().as_deref(),
            Some(b"record".as_slice())
        );
        assert_eq!(tree.get(LAYOUT_KEY).unwrap().as_deref(), Some(LAYOUT));
        resident.stop().unwrap();
        let (blocks, len, _) = read_blocks_as_cut(&tree, Seed([7; 16]), usize::MAX)
            .unwrap()
            .unwrap();
        assert_eq!(len, 3000);
        // One key in 32 starts a block, whatever keys a client chose.
        assert!((40..200).contains(&blocks.len()), "{} blocks", blocks.len());
        let again = open_fixed(tree.clone(), PersistPolicy::default()).unwrap();
        let loaded: Vec<(IVec, IVec)> = again.range(&[], None).map(Result::unwrap).collect();
        assert_eq!(loaded, entries);
    }

    #[test]
    fn keys_chosen_never_to_start_a_block_under_one_key_still_do_under_another() {
        let chosen_against = Seed([1; 16]);
        let keys: Vec<Vec<u8>> = (0u32..)
            .map(|index| format!("N acme evil-{index}").into_bytes())
            .filter(|key| !chosen_against.starts_block(key))
            .take(3000)
            .collect();
        let held_under = |seed: Seed| {
            let mut map = Map::empty(seed, usize::MAX);
            for key in &keys {
                map.put(IVec::from(key.as_slice()), IVec::from(b"x"));
            }
            map.blocks.len()
        };
        assert_eq!(held_under(chosen_against), 1);
        let blocks = held_under(Seed([2; 16]));
        assert!((40..200).contains(&blocks), "{blocks} blocks");
    }
}
