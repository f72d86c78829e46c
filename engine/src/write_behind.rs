//! Write-behind for a sled tree: changes are visible to reads at once and reach sled later, in
//! large coalesced batches written by a background thread (a key changed by fifty events is
//! written once).
//!
//! The engine's aggregate is a cache of the log: its checkpoint keys travel in the same changes
//! as the state they cover, so every batch written is "the log up to some sequence", and a crash
//! loses only what the log replays at the next start. Nothing here is needed for durability.
//!
//! Reads see three layers, newest first: `pending` (changes not yet picked up), `writing` (the
//! batch being written now), then the tree. A layer entry of `None` is a removal.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::Duration;

use sled::IVec;
use tracing::error;

/// Where staged changes go: a sled batch, or [`Changes`] for a write-behind tree.
pub trait Sink {
    fn put(&mut self, key: impl Into<IVec>, value: impl Into<IVec>);
    fn delete(&mut self, key: impl Into<IVec>);

    /// Puts `value` under `key`, or deletes `key` when there is no value.
    fn put_or_delete(&mut self, key: impl Into<IVec>, value: Option<impl Into<IVec>>) {
        match value {
            Some(value) => self.put(key, value),
            None => self.delete(key),
        }
    }
}

impl Sink for sled::Batch {
    fn put(&mut self, key: impl Into<IVec>, value: impl Into<IVec>) {
        self.insert(key, value);
    }

    fn delete(&mut self, key: impl Into<IVec>) {
        self.remove(key);
    }
}

/// Changes to a tree, coalesced by key (the last one wins), in key order.
#[derive(Clone, Debug, Default)]
pub struct Changes {
    entries: BTreeMap<IVec, Option<IVec>>,
}

impl Sink for Changes {
    fn put(&mut self, key: impl Into<IVec>, value: impl Into<IVec>) {
        self.entries.insert(key.into(), Some(value.into()));
    }

    fn delete(&mut self, key: impl Into<IVec>) {
        self.entries.insert(key.into(), None);
    }
}

impl Changes {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The changes, in key order (`None`: a removal).
    pub fn into_entries(self) -> impl Iterator<Item = (IVec, Option<IVec>)> {
        self.entries.into_iter()
    }

    /// The same changes as one atomic sled batch.
    pub fn to_batch(&self) -> sled::Batch {
        let mut batch = sled::Batch::default();
        for (key, value) in &self.entries {
            match value {
                Some(value) => batch.insert(key.clone(), value.clone()),
                None => batch.remove(key.clone()),
            }
        }
        batch
    }
}

/// Pending changes above this many keys are written without waiting for the next tick.
const WRITE_AT_KEYS: usize = 16_384;
/// Pending changes are written at least this often.
const WRITE_EVERY: Duration = Duration::from_millis(50);
/// Above this many pending keys, adding more waits for the writer (bounds memory).
const MAX_PENDING_KEYS: usize = 262_144;

#[derive(Default)]
struct Layers {
    pending: BTreeMap<IVec, Option<IVec>>,
    writing: Option<Arc<BTreeMap<IVec, Option<IVec>>>>,
}

#[derive(Default)]
struct Control {
    /// Set when a write to sled failed: nothing more is accepted.
    failed: Option<String>,
    stopping: bool,
    /// The writer thread has exited.
    stopped: bool,
}

/// A tree whose writes go through memory first.
pub struct WriteBehind {
    tree: sled::Tree,
    layers: RwLock<Layers>,
    control: Mutex<Control>,
    /// Wakes the writer (more work, or stop) and those waiting for it (drained, room).
    signal: Condvar,
}

impl std::fmt::Debug for WriteBehind {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("WriteBehind")
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WriteBehindError {
    #[error("writing behind to storage failed: {0}")]
    Failed(String),
    #[error("the write-behind writer has stopped")]
    Stopped,
}

impl WriteBehind {
    /// Starts the writer thread for `tree`.
    pub fn start(tree: sled::Tree) -> std::io::Result<Arc<Self>> {
        let behind = Arc::new(Self {
            tree,
            layers: RwLock::default(),
            control: Mutex::default(),
            signal: Condvar::new(),
        });
        // The writer holds the tree only while it works: once every handle is gone (without a
        // `stop`), it exits within a tick and the database is released.
        let writer = Arc::downgrade(&behind);
        std::thread::Builder::new()
            .name("roster-write-behind".into())
            .spawn(move || {
                while let Some(behind) = writer.upgrade() {
                    if !behind.write_round() {
                        behind.lock_control().stopped = true;
                        behind.signal.notify_all();
                        break;
                    }
                }
            })?;
        Ok(behind)
    }

    pub fn tree(&self) -> &sled::Tree {
        &self.tree
    }

    /// Makes `changes` visible to reads now; they reach sled with the next write.
    pub fn add(&self, changes: Changes) -> Result<(), WriteBehindError> {
        {
            let mut control = self.lock_control();
            loop {
                if let Some(reason) = &control.failed {
                    return Err(WriteBehindError::Failed(reason.clone()));
                }
                if control.stopped {
                    return Err(WriteBehindError::Stopped);
                }
                if self.pending_keys() < MAX_PENDING_KEYS {
                    break;
                }
                self.signal.notify_all();
                control = match self.signal.wait_timeout(control, WRITE_EVERY) {
                    Ok((control, _)) => control,
                    Err(poisoned) => poisoned.into_inner().0,
                };
            }
        }
        let wake = {
            let mut layers = self.write_layers();
            layers.pending.extend(changes.entries);
            layers.pending.len() >= WRITE_AT_KEYS
        };
        if wake {
            self.signal.notify_all();
        }
        Ok(())
    }

    /// The value of `key`, newest layer first.
    pub fn get(&self, key: &[u8]) -> Result<Option<IVec>, sled::Error> {
        {
            let layers = self.read_layers();
            if let Some(value) = layers.pending.get(key) {
                return Ok(value.clone());
            }
            if let Some(value) = layers.writing.as_ref().and_then(|writing| writing.get(key)) {
                return Ok(value.clone());
            }
        }
        self.tree.get(key)
    }

    /// Entries with keys from `start` (inclusive) up to `end` (exclusive; `None`: to the end of
    /// the tree), merged across the layers, in key order.
    pub fn range(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
    ) -> impl DoubleEndedIterator<Item = Result<(IVec, IVec), sled::Error>> + use<> {
        let upper = match end {
            Some(end) => Bound::Excluded(IVec::from(end)),
            None => Bound::Unbounded,
        };
        let bounds = (Bound::Included(IVec::from(start)), upper.clone());
        // Snapshot the overlay for this range: newest first wins.
        let mut overlay: BTreeMap<IVec, Option<IVec>> = BTreeMap::new();
        {
            let layers = self.read_layers();
            if let Some(writing) = &layers.writing {
                for (key, value) in writing.range(bounds.clone()) {
                    overlay.insert(key.clone(), value.clone());
                }
            }
            for (key, value) in layers.pending.range(bounds.clone()) {
                overlay.insert(key.clone(), value.clone());
            }
        }
        let stored = self.tree.range::<IVec, _>(bounds);
        Merge::new(stored, overlay)
    }

    /// Entries whose keys start with `prefix`, merged across the layers.
    pub fn scan_prefix(
        &self,
        prefix: &[u8],
    ) -> impl DoubleEndedIterator<Item = Result<(IVec, IVec), sled::Error>> + use<> {
        let end = prefix_end(prefix);
        self.range(prefix, end.as_deref())
    }

    /// Drops every change not yet written and empties the tree (rebuilds).
    pub fn clear(&self) -> Result<(), WriteBehindError> {
        self.drain()?;
        self.write_layers().pending.clear();
        self.tree
            .clear()
            .map_err(|error| WriteBehindError::Failed(error.to_string()))
    }

    /// Waits until everything added so far is written to the tree.
    pub fn drain(&self) -> Result<(), WriteBehindError> {
        let mut control = self.lock_control();
        loop {
            if let Some(reason) = &control.failed {
                return Err(WriteBehindError::Failed(reason.clone()));
            }
            {
                let layers = self.read_layers();
                if layers.pending.is_empty() && layers.writing.is_none() {
                    return Ok(());
                }
            }
            if control.stopped {
                return Err(WriteBehindError::Stopped);
            }
            self.signal.notify_all();
            control = match self.signal.wait_timeout(control, WRITE_EVERY) {
                Ok((control, _)) => control,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// Writes what is pending, then stops the writer thread.
    pub fn stop(&self) -> Result<(), WriteBehindError> {
        let drained = self.drain();
        self.lock_control().stopping = true;
        self.signal.notify_all();
        drained
    }

    fn pending_keys(&self) -> usize {
        self.read_layers().pending.len()
    }

    /// One round of the writer: waits for work (a tick at most), writes what is pending.
    /// Returns `false` once the writer should exit.
    fn write_round(&self) -> bool {
        {
            let control = self.lock_control();
            let pending = self.pending_keys();
            if control.stopping && pending == 0 {
                return false;
            }
            if !control.stopping && pending < WRITE_AT_KEYS {
                // Woken early by a large backlog, a drain or a stop; else once a tick.
                let _ = self.signal.wait_timeout(control, WRITE_EVERY);
            }
        }
        let writing = {
            let mut layers = self.write_layers();
            if layers.pending.is_empty() {
                return true;
            }
            let taken = Arc::new(std::mem::take(&mut layers.pending));
            layers.writing = Some(taken.clone());
            taken
        };
        let mut batch = sled::Batch::default();
        for (key, value) in writing.iter() {
            match value {
                Some(value) => batch.insert(key.clone(), value.clone()),
                None => batch.remove(key.clone()),
            }
        }
        match self.tree.apply_batch(batch) {
            Ok(()) => {
                self.write_layers().writing = None;
                self.signal.notify_all();
                true
            }
            Err(error) => {
                // Keep `writing` visible: reads stay right; nothing more is accepted.
                error!(%error, "writing the aggregate behind failed; refusing further changes");
                self.lock_control().failed = Some(error.to_string());
                self.signal.notify_all();
                false
            }
        }
    }

    fn read_layers(&self) -> std::sync::RwLockReadGuard<'_, Layers> {
        // A panic while holding the lock leaves the layers as they were between two whole
        // operations (every change is one insert or one swap): still consistent to read.
        self.layers
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write_layers(&self) -> std::sync::RwLockWriteGuard<'_, Layers> {
        self.layers
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock_control(&self) -> std::sync::MutexGuard<'_, Control> {
        self.control
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The smallest key above every key starting with `prefix`, `None` when there is none.
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The tree's entries with the overlay's laid over them.
struct Merge<I: DoubleEndedIterator<Item = Result<(IVec, IVec), sled::Error>>> {
    stored: std::iter::Peekable<I>,
    stored_back: Option<Result<(IVec, IVec), sled::Error>>,
    overlay: std::collections::VecDeque<(IVec, Option<IVec>)>,
}

impl<I: DoubleEndedIterator<Item = Result<(IVec, IVec), sled::Error>>> Merge<I> {
    fn new(stored: I, overlay: BTreeMap<IVec, Option<IVec>>) -> Self {
        Self {
            stored: stored.peekable(),
            stored_back: None,
            overlay: overlay.into_iter().collect(),
        }
    }
}

impl<I: DoubleEndedIterator<Item = Result<(IVec, IVec), sled::Error>>> Iterator for Merge<I> {
    type Item = Result<(IVec, IVec), sled::Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let stored_key = match self.stored.peek() {
                Some(Ok((key, _))) => Some(key.clone()),
                Some(Err(_)) => return self.stored.next(),
                None => match &self.stored_back {
                    Some(Ok((key, _))) => Some(key.clone()),
                    Some(Err(_)) => return self.stored_back.take(),
                    None => None,
                },
            };
            let overlay_key = self.overlay.front().map(|(key, _)| key.clone());
            let take_overlay = match (&stored_key, &overlay_key) {
                (None, None) => return None,
                (Some(_), None) => false,
                (None, Some(_)) => true,
                (Some(stored), Some(overlay)) => overlay <= stored,
            };
            if take_overlay {
                let (key, value) = self.overlay.pop_front()?;
                if stored_key.as_ref() == Some(&key) {
                    self.next_stored();
                }
                match value {
                    Some(value) => return Some(Ok((key, value))),
                    None => continue,
                }
            }
            return self.next_stored();
        }
    }
}

impl<I: DoubleEndedIterator<Item = Result<(IVec, IVec), sled::Error>>> Merge<I> {
    fn next_stored(&mut self) -> Option<Result<(IVec, IVec), sled::Error>> {
        self.stored.next().or_else(|| self.stored_back.take())
    }
}

impl<I: DoubleEndedIterator<Item = Result<(IVec, IVec), sled::Error>>> DoubleEndedIterator
    for Merge<I>
{
    fn next_back(&mut self) -> Option<Self::Item> {
        loop {
            if self.stored_back.is_none() {
                self.stored_back = self.stored.next_back();
            }
            let stored_key = match &self.stored_back {
                Some(Ok((key, _))) => Some(key.clone()),
                Some(Err(_)) => return self.stored_back.take(),
                None => None,
            };
            let overlay_key = self.overlay.back().map(|(key, _)| key.clone());
            let take_overlay = match (&stored_key, &overlay_key) {
                (None, None) => return None,
                (Some(_), None) => false,
                (None, Some(_)) => true,
                (Some(stored), Some(overlay)) => overlay >= stored,
            };
            if take_overlay {
                let (key, value) = self.overlay.pop_back()?;
                if stored_key.as_ref() == Some(&key) {
                    self.stored_back = None;
                }
                match value {
                    Some(value) => return Some(Ok((key, value))),
                    None => continue,
                }
            }
            return self.stored_back.take();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(
        iterator: impl Iterator<Item = Result<(IVec, IVec), sled::Error>>,
    ) -> Vec<(Vec<u8>, Vec<u8>)> {
        iterator
            .map(|entry| {
                let (key, value) = entry.unwrap();
                (key.to_vec(), value.to_vec())
            })
            .collect()
    }

    #[test]
    fn reads_see_changes_at_once_and_the_tree_gets_them_later() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("t").unwrap();
        for key in [b"a1", b"a3", b"a5", b"b1"] {
            tree.insert(key, b"old").unwrap();
        }
        let behind = WriteBehind::start(tree.clone()).unwrap();
        let mut changes = Changes::default();
        changes.put(&b"a2"[..], &b"new"[..]);
        changes.delete(&b"a3"[..]);
        changes.put(&b"a5"[..], &b"new"[..]);
        changes.put(&b"a6"[..], &b"new"[..]);
        behind.add(changes).unwrap();
        assert_eq!(behind.get(b"a3").unwrap(), None);
        assert_eq!(behind.get(b"a5").unwrap().unwrap().as_ref(), b"new");
        let expected = vec![
            (b"a1".to_vec(), b"old".to_vec()),
            (b"a2".to_vec(), b"new".to_vec()),
            (b"a5".to_vec(), b"new".to_vec()),
            (b"a6".to_vec(), b"new".to_vec()),
        ];
        assert_eq!(collect(behind.scan_prefix(b"a")), expected);
        let mut backwards = expected.clone();
        backwards.reverse();
        assert_eq!(collect(behind.scan_prefix(b"a").rev()), backwards);
        assert_eq!(
            collect(behind.range(b"a2", Some(b"a6"))),
            expected[1..3].to_vec()
        );
        behind.drain().unwrap();
        assert_eq!(collect(tree.scan_prefix(b"a")), expected);
        behind.stop().unwrap();
    }

    #[test]
    fn merged_scans_equal_a_plain_map_under_random_changes() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("t").unwrap();
        let behind = WriteBehind::start(tree).unwrap();
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for round in 0..200 {
            let mut changes = Changes::default();
            for _ in 0..rng.random_range(1..50) {
                let key = vec![b'k', rng.random_range(0..64u8)];
                if rng.random_bool(0.3) {
                    changes.delete(key.clone());
                    model.remove(&key);
                } else {
                    let value = format!("{round}").into_bytes();
                    changes.put(key.clone(), value.clone());
                    model.insert(key, value);
                }
            }
            behind.add(changes).unwrap();
            if round % 7 == 0 {
                behind.drain().unwrap();
            }
            let expected: Vec<_> = model.clone().into_iter().collect();
            assert_eq!(collect(behind.scan_prefix(b"k")), expected);
            let mut backwards = expected.clone();
            backwards.reverse();
            assert_eq!(collect(behind.scan_prefix(b"k").rev()), backwards);
        }
        behind.stop().unwrap();
    }

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[b'a', 0xff]), Some(b"b".to_vec()));
        assert_eq!(prefix_end(&[0xff]), None);
    }
}
