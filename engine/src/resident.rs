//! A resident tree: a key space held whole in memory, persisted to its sled tree in packed
//! blocks.
//!
//! sled costs ~20 µs of CPU per key written, batched or not, so a view that writes every record,
//! index entry and history snapshot as its own key spends most of its time in sled. A resident
//! tree keeps every entry in memory (reads and writes never touch sled) and persists now and then:
//! the entries are cut into blocks, each block written as one sled value, and a persist writes
//! only the blocks that changed since the last one, all in one atomic sled batch taken between
//! two whole [`Resident::apply`] calls. Whatever sled holds is therefore a state the tree was in,
//! checkpoint keys included: for a view, "the log up to its checkpoint", with the rest replayed
//! from the log at the next start.
//!
//! Where blocks start depends only on the keys present: a key starts a block when its hash has
//! its low five bits clear (one key in 32 on average). The persisted bytes are thus a function
//! of the entries alone, whatever order they were written in, so a view built incrementally and
//! one rebuilt from the log persist byte for byte alike.
//!
//! Layout of the sled tree: `layout` → [`LAYOUT`] · `b` + block-start-key → the block's entries,
//! each as key length (u32 LE), key, value length (u32 LE), value; the first block's start is the
//! empty key. A tree without the layout key holds an older per-key layout: it is cleared at open
//! (the owner rebuilds it from the log).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::Bound;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use sled::IVec;

/// The layout key and its value.
const LAYOUT_KEY: &[u8] = b"layout";
pub const LAYOUT: &[u8] = b"resident-blocks-1";
const BLOCK: u8 = b'b';
/// A key starts a block when `hash & BOUNDARY_MASK == 0`.
const BOUNDARY_MASK: u64 = 31;
/// Entries fetched at a time by a range iterator (the read lock is held only for that long).
const RANGE_CHUNK: usize = 128;

/// When a persist is due: this many changed bytes, or this long since the last one.
#[derive(Clone, Copy, Debug)]
pub struct PersistPolicy {
    pub changed_bytes: usize,
    pub interval: Duration,
}

impl Default for PersistPolicy {
    fn default() -> Self {
        Self {
            changed_bytes: 64 << 20,
            interval: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ResidentError {
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    #[error("corrupt block under {key:?}: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("persisting the resident tree failed: {0}")]
    Persist(String),
}

#[derive(Default)]
struct Map {
    entries: BTreeMap<IVec, IVec>,
    /// Present keys that start a block.
    boundaries: BTreeSet<IVec>,
    /// Starts of the blocks changed since the last snapshot (the empty key: the first block). A
    /// start that is no longer a boundary is a block to delete.
    dirty: BTreeSet<IVec>,
    /// Bytes of keys and values written since the last snapshot.
    changed_bytes: usize,
    /// Set when a persist failed: the next snapshot writes every block.
    rewrite_all: bool,
}

/// 64-bit FNV-1a: stable across builds and platforms, so block boundaries are too.
fn key_hash(key: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

fn is_boundary(key: &[u8]) -> bool {
    !key.is_empty() && key_hash(key) & BOUNDARY_MASK == 0
}

fn block_key(start: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + start.len());
    key.push(BLOCK);
    key.extend_from_slice(start);
    key
}

impl Map {
    /// The start of the block `key` falls in.
    fn block_of(&self, key: &[u8]) -> IVec {
        self.boundaries
            .range::<[u8], _>((Bound::Unbounded, Bound::Included(key)))
            .next_back()
            .cloned()
            .unwrap_or_default()
    }

    fn put(&mut self, key: IVec, value: IVec) {
        self.changed_bytes += key.len() + value.len();
        let start = self.block_of(&key);
        self.dirty.insert(start);
        if is_boundary(&key) && !self.boundaries.contains(&key) {
            self.boundaries.insert(key.clone());
            self.dirty.insert(key.clone());
        }
        self.entries.insert(key, value);
    }

    fn remove(&mut self, key: &[u8]) {
        if self.entries.remove(key).is_none() {
            return;
        }
        self.changed_bytes += key.len();
        if self.boundaries.remove(key) {
            // The block starting here goes; its entries join the block before it.
            self.dirty.insert(IVec::from(key));
            let before = self.block_of(key);
            self.dirty.insert(before);
        } else {
            let start = self.block_of(key);
            self.dirty.insert(start);
        }
    }

    /// The encoded entries of the block starting at `start`.
    fn encode_block(&self, start: &IVec) -> Vec<u8> {
        let end = self
            .boundaries
            .range::<IVec, _>((Bound::Excluded(start), Bound::Unbounded))
            .next()
            .cloned();
        let upper = match end {
            Some(end) => Bound::Excluded(end),
            None => Bound::Unbounded,
        };
        let mut bytes = Vec::new();
        for (key, value) in self
            .entries
            .range::<IVec, _>((Bound::Included(start.clone()), upper))
        {
            // Keys and values are far below 4 GiB (sled's own limit is lower).
            bytes.extend_from_slice(&(key.len() as u32).to_le_bytes());
            bytes.extend_from_slice(key);
            bytes.extend_from_slice(&(value.len() as u32).to_le_bytes());
            bytes.extend_from_slice(value);
        }
        bytes
    }

    /// The writes that bring `tree` to this state, as one batch; clears the dirty marks. After
    /// a failed persist (whose removals may not have landed) every block is written and every
    /// stored block that no longer exists removed.
    fn snapshot(&mut self, tree: &sled::Tree) -> Result<sled::Batch, ResidentError> {
        let mut batch = sled::Batch::default();
        let starts: Vec<IVec> = if self.rewrite_all {
            self.dirty.clear();
            for entry in tree.scan_prefix([BLOCK]) {
                let (key, _) = entry?;
                let start = &key[1..];
                if !start.is_empty() && !self.boundaries.contains(start) {
                    batch.remove(key);
                }
            }
            std::iter::once(IVec::default())
                .chain(self.boundaries.iter().cloned())
                .collect()
        } else {
            std::mem::take(&mut self.dirty).into_iter().collect()
        };
        for start in starts {
            if start.is_empty() || self.boundaries.contains(&start) {
                batch.insert(block_key(&start), self.encode_block(&start));
            } else {
                batch.remove(block_key(&start));
            }
        }
        self.changed_bytes = 0;
        self.rewrite_all = false;
        Ok(batch)
    }
}

/// Decodes one block's entries.
fn decode_block(key: &[u8], bytes: &[u8]) -> Result<Vec<(IVec, IVec)>, ResidentError> {
    let corrupt = |reason: &str| ResidentError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: reason.to_owned(),
    };
    let mut entries = Vec::new();
    let mut rest = bytes;
    let take = |rest: &mut &[u8]| -> Result<IVec, ResidentError> {
        let (length, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| corrupt("a length is cut short"))?;
        let length = u32::from_le_bytes(*length) as usize;
        if tail.len() < length {
            return Err(corrupt("an entry is cut short"));
        }
        let (part, tail) = tail.split_at(length);
        *rest = tail;
        Ok(IVec::from(part))
    };
    while !rest.is_empty() {
        let entry_key = take(&mut rest)?;
        let value = take(&mut rest)?;
        entries.push((entry_key, value));
    }
    Ok(entries)
}

/// The entries persisted in `tree`, in key order, or `None` when the tree is not in the block
/// layout (for tools and tests that read a stopped roster's data directory).
pub fn persisted_entries(tree: &sled::Tree) -> Result<Option<Vec<(IVec, IVec)>>, ResidentError> {
    match tree.get(LAYOUT_KEY)? {
        Some(layout) if layout.as_ref() == LAYOUT => {}
        _ => return Ok(None),
    }
    let mut entries = Vec::new();
    for entry in tree.scan_prefix([BLOCK]) {
        let (key, value) = entry?;
        entries.extend(decode_block(&key, &value)?);
    }
    Ok(Some(entries))
}

/// The value of `key` as persisted in `tree`, reading only the block that holds it: `None` when
/// the tree is not in the block layout, `Some(None)` when the key is absent. Changes nothing.
pub fn persisted_get(tree: &sled::Tree, key: &[u8]) -> Result<Option<Option<IVec>>, ResidentError> {
    match tree.get(LAYOUT_KEY)? {
        Some(layout) if layout.as_ref() == LAYOUT => {}
        _ => return Ok(None),
    }
    let Some(block) = tree.range(..=block_key(key)).next_back() else {
        return Ok(Some(None));
    };
    let (block_key, bytes) = block?;
    if block_key.first() != Some(&BLOCK) {
        return Ok(Some(None));
    }
    Ok(Some(
        decode_block(&block_key, &bytes)?
            .into_iter()
            .find(|(entry_key, _)| entry_key.as_ref() == key)
            .map(|(_, value)| value),
    ))
}

/// A snapshot for the persist thread, and where to answer.
type PersistJob = (sled::Batch, SyncSender<Result<(), String>>);

struct Persister {
    /// Snapshots for the persist thread, one at a time.
    sender: Option<SyncSender<PersistJob>>,
    /// Answers of snapshots sent and not yet confirmed.
    in_flight: Option<Receiver<Result<(), String>>>,
    last: Instant,
}

/// A key space held in memory and persisted to a sled tree in packed blocks.
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
        let mut map = Map::default();
        match tree.get(LAYOUT_KEY)? {
            Some(layout) if layout.as_ref() == LAYOUT => {
                for entry in tree.scan_prefix([BLOCK]) {
                    let (key, value) = entry?;
                    for (entry_key, entry_value) in decode_block(&key, &value)? {
                        if is_boundary(&entry_key) {
                            map.boundaries.insert(entry_key.clone());
                        }
                        map.entries.insert(entry_key, entry_value);
                    }
                }
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
                tree.insert(LAYOUT_KEY, LAYOUT)?;
            }
        }
        let (sender, receiver) = std::sync::mpsc::sync_channel::<PersistJob>(1);
        let writer = tree.clone();
        std::thread::Builder::new()
            .name("roster-resident-persist".into())
            .spawn(move || {
                for (batch, answer) in receiver {
                    let result = writer.apply_batch(batch).map_err(|error| error.to_string());
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
            }),
            policy,
        }))
    }

    pub fn tree(&self) -> &sled::Tree {
        &self.tree
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

    pub fn get(&self, key: &[u8]) -> Option<IVec> {
        self.read_map().entries.get(key).cloned()
    }

    /// How many entries the tree holds.
    pub fn len(&self) -> usize {
        self.read_map().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies `writes` (a value, or `None` to remove) as one change: a persist never sees part
    /// of it.
    pub fn apply(&self, writes: impl IntoIterator<Item = (IVec, Option<IVec>)>) {
        let mut map = self.write_map();
        for (key, value) in writes {
            match value {
                Some(value) => map.put(key, value),
                None => map.remove(&key),
            }
        }
    }

    /// Entries from `start` (inclusive) to `end` (exclusive; `None`: to the end), in key order,
    /// from either end. The read lock is taken a chunk of entries at a time, so a long scan
    /// never holds writers off.
    pub fn range(self: &Arc<Self>, start: &[u8], end: Option<&[u8]>) -> ResidentRange {
        ResidentRange {
            resident: self.clone(),
            front: Bound::Included(IVec::from(start)),
            back: end.map_or(Bound::Unbounded, |end| Bound::Excluded(IVec::from(end))),
            front_buffer: VecDeque::new(),
            back_buffer: VecDeque::new(),
        }
    }

    /// Empties the tree, in memory and in sled.
    pub fn clear(&self) -> Result<(), ResidentError> {
        self.wait_in_flight()?;
        let mut map = self.write_map();
        *map = Map::default();
        self.tree.clear()?;
        self.tree.insert(LAYOUT_KEY, LAYOUT)?;
        Ok(())
    }

    /// Starts a persist when the policy says one is due and none is running; never waits for
    /// sled.
    pub fn persist_if_due(&self) -> Result<(), ResidentError> {
        let mut persister = self.lock_persister();
        if let Some(in_flight) = &persister.in_flight {
            match in_flight.try_recv() {
                Ok(result) => {
                    persister.in_flight = None;
                    self.settle(result)?;
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => return Ok(()),
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    persister.in_flight = None;
                    self.settle(Err("the persist thread stopped".into()))?;
                }
            }
        }
        let due = {
            let map = self.read_map();
            !map.dirty.is_empty()
                && (map.changed_bytes >= self.policy.changed_bytes
                    || persister.last.elapsed() >= self.policy.interval)
        };
        if !due {
            return Ok(());
        }
        let batch = self.write_map().snapshot(&self.tree)?;
        let (answer, in_flight) = std::sync::mpsc::sync_channel(1);
        let Some(sender) = &persister.sender else {
            return Err(ResidentError::Persist("the persist thread stopped".into()));
        };
        match sender.try_send((batch, answer)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.write_map().rewrite_all = true;
                return Err(ResidentError::Persist(
                    "the persist thread is not taking work".into(),
                ));
            }
        }
        persister.in_flight = Some(in_flight);
        persister.last = Instant::now();
        Ok(())
    }

    /// Writes every change so far to sled and waits for it.
    pub fn persist(&self) -> Result<(), ResidentError> {
        let mut persister = self.lock_persister();
        if let Some(in_flight) = persister.in_flight.take() {
            let result = in_flight
                .recv()
                .unwrap_or_else(|_| Err("the persist thread stopped".into()));
            self.settle(result)?;
        }
        let batch = {
            let mut map = self.write_map();
            if map.dirty.is_empty() && !map.rewrite_all {
                return Ok(());
            }
            map.snapshot(&self.tree)?
        };
        persister.last = Instant::now();
        self.tree.apply_batch(batch).map_err(|error| {
            self.write_map().rewrite_all = true;
            ResidentError::Sled(error)
        })
    }

    /// Waits for the persist in flight, if any.
    fn wait_in_flight(&self) -> Result<(), ResidentError> {
        let mut persister = self.lock_persister();
        if let Some(in_flight) = persister.in_flight.take() {
            let result = in_flight
                .recv()
                .unwrap_or_else(|_| Err("the persist thread stopped".into()));
            self.settle(result)?;
        }
        Ok(())
    }

    /// Takes a persist's result: a failed one makes the next persist write every block.
    fn settle(&self, result: Result<(), String>) -> Result<(), ResidentError> {
        result.map_err(|reason| {
            tracing::error!(%reason, "persisting a resident tree failed; the next persist writes it whole");
            self.write_map().rewrite_all = true;
            ResidentError::Persist(reason)
        })
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
}

/// Whether `(lower, upper)` is a range `BTreeMap::range` accepts and that may hold keys.
fn is_open(lower: &Bound<IVec>, upper: &Bound<IVec>) -> bool {
    match (lower, upper) {
        (Bound::Unbounded, _) | (_, Bound::Unbounded) => true,
        (Bound::Included(low), Bound::Included(high)) => low <= high,
        (Bound::Included(low), Bound::Excluded(high))
        | (Bound::Excluded(low), Bound::Included(high))
        | (Bound::Excluded(low), Bound::Excluded(high)) => low < high,
    }
}

impl ResidentRange {
    fn fetch(&mut self, from_back: bool) {
        if !is_open(&self.front, &self.back) {
            return;
        }
        let map = self.resident.read_map();
        let range = map
            .entries
            .range::<IVec, _>((self.front.clone(), self.back.clone()));
        if from_back {
            for (key, value) in range.rev().take(RANGE_CHUNK) {
                self.back_buffer.push_back((key.clone(), value.clone()));
            }
            if let Some((key, _)) = self.back_buffer.back() {
                self.back = Bound::Excluded(key.clone());
            }
        } else {
            for (key, value) in range.take(RANGE_CHUNK) {
                self.front_buffer.push_back((key.clone(), value.clone()));
            }
            if let Some((key, _)) = self.front_buffer.back() {
                self.front = Bound::Excluded(key.clone());
            }
        }
    }
}

impl Iterator for ResidentRange {
    type Item = Result<(IVec, IVec), sled::Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.front_buffer.is_empty() {
            self.fetch(false);
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
        self.back_buffer
            .pop_front()
            .or_else(|| self.front_buffer.pop_back())
            .map(Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(db: &sled::Db) -> Arc<Resident> {
        Resident::open(db.open_tree("r").unwrap(), PersistPolicy::default()).unwrap()
    }

    fn keys(range: impl Iterator<Item = Result<(IVec, IVec), sled::Error>>) -> Vec<Vec<u8>> {
        range.map(|entry| entry.unwrap().0.to_vec()).collect()
    }

    fn put(resident: &Resident, key: &[u8], value: &[u8]) {
        resident.apply([(IVec::from(key), Some(IVec::from(value)))]);
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
        let first = Resident::open(db.open_tree("one").unwrap(), PersistPolicy::default()).unwrap();
        let second =
            Resident::open(db.open_tree("two").unwrap(), PersistPolicy::default()).unwrap();
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
            second.apply([(IVec::from(format!("gone-{index}").as_bytes()), None)]);
            if index % 7 == 0 {
                first.apply([(IVec::from(format!("key-{index}").as_bytes()), None)]);
                second.apply([(IVec::from(format!("key-{index}").as_bytes()), None)]);
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
            loaded.get(b"key-1").as_deref(),
            Some(b"first value".as_slice())
        );
        assert_eq!(loaded.get(b"key-7"), None);
    }

    fn open_named(db: &sled::Db, name: &str) -> Arc<Resident> {
        Resident::open(db.open_tree(name).unwrap(), PersistPolicy::default()).unwrap()
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
        let refused = Resident::open(tree, PersistPolicy::default()).unwrap_err();
        assert!(
            matches!(refused, ResidentError::Corrupt { .. }),
            "{refused}"
        );
    }

    #[test]
    fn a_due_persist_runs_in_the_background() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let resident = Resident::open(
            db.open_tree("r").unwrap(),
            PersistPolicy {
                changed_bytes: 10,
                interval: Duration::from_secs(3600),
            },
        )
        .unwrap();
        put(&resident, b"a", b"1");
        resident.persist_if_due().unwrap();
        assert!(resident.lock_persister().in_flight.is_none(), "not due yet");
        put(&resident, b"bbbbbbbbbbbb", b"2");
        resident.persist_if_due().unwrap();
        resident.wait_in_flight().unwrap();
        let tree = db.open_tree("r").unwrap();
        let blocks: usize = tree
            .scan_prefix([BLOCK])
            .map(|entry| decode_block(b"", &entry.unwrap().1).unwrap().len())
            .sum();
        assert_eq!(blocks, 2);
    }
}
