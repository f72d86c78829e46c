//! The embedded log's layout in its sled tree: events packed per write, one key per batch.
//!
//! `B first-seq(8 bytes BE)` → the events `first-seq, first-seq + 1, …` back to back, each as a
//! `u32` little-endian length and the `roster.v1.Event` protobuf; `H tenant` → the tenant's last
//! sequence. Batches tile the sequences from 1 with no gap or overlap, so the batch holding a
//! sequence is the last one whose first sequence is not above it.
//!
//! The first layout (before packing) kept one key per event, `E seq` → protobuf;
//! [`migrate`] packs such a log in place at open, each step in one atomic sled batch, so a crash
//! during it leaves a log that the next open finishes migrating.

use sled::IVec;

use super::LogError;

const BATCH: u8 = b'B';
/// One key per event: the first layout, read only to migrate it.
const EVENT_V1: u8 = b'E';
pub(super) const HEAD: u8 = b'H';
/// Bytes of event data per packed key, at most (a larger single event gets its own key).
pub(super) const PACK_BYTES: usize = 256 * 1024;
/// Events migrated per atomic step.
const MIGRATE_STEP: usize = 4096;

pub(super) fn batch_key(first: u64) -> [u8; 9] {
    let mut key = [BATCH; 9];
    key[1..].copy_from_slice(&first.to_be_bytes());
    key
}

fn sequence_of(key: &[u8]) -> u64 {
    key.get(1..9)
        .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

/// A sled error as a log error: corruption found on disk is [`LogError::Damaged`], never a
/// passing unavailability.
pub(super) fn storage(error: sled::Error) -> LogError {
    match error {
        sled::Error::Corruption { .. } => LogError::Damaged(error.to_string()),
        other => LogError::Unavailable(other.to_string()),
    }
}

/// Appends one encoded event to a packed value.
pub(super) fn push(packed: &mut Vec<u8>, event: &[u8]) {
    packed.extend_from_slice(&(event.len() as u32).to_le_bytes());
    packed.extend_from_slice(event);
}

/// The encoded events of a packed value, in order.
pub(super) fn unpack(first: u64, packed: &[u8]) -> Result<Vec<&[u8]>, LogError> {
    let mut events = Vec::new();
    let mut rest = packed;
    while !rest.is_empty() {
        let corrupt = || LogError::Corrupt {
            sequence: first + events.len() as u64,
            reason: "a packed batch is cut short".to_owned(),
        };
        let (length, tail) = rest.split_first_chunk::<4>().ok_or_else(corrupt)?;
        let length = u32::from_le_bytes(*length) as usize;
        if tail.len() < length {
            return Err(corrupt());
        }
        let (event, tail) = tail.split_at(length);
        events.push(event);
        rest = tail;
    }
    Ok(events)
}

/// The last sequence in the tree and its event's stored bytes (0 and empty for an empty log).
pub(super) fn last(tree: &sled::Tree) -> Result<(u64, Vec<u8>), LogError> {
    let Some(entry) = tree.scan_prefix([BATCH]).next_back() else {
        return Ok((0, Vec::new()));
    };
    let (key, packed) = entry.map_err(storage)?;
    let first = sequence_of(&key);
    let events = unpack(first, &packed)?;
    match events.last() {
        Some(event) => Ok((first + events.len() as u64 - 1, event.to_vec())),
        None => Err(LogError::Corrupt {
            sequence: first,
            reason: "an empty packed batch".to_owned(),
        }),
    }
}

/// The stored bytes of the event at `sequence`, if the tree holds it.
pub(super) fn stored(tree: &sled::Tree, sequence: u64) -> Result<Option<Vec<u8>>, LogError> {
    let Some(entry) = tree.range(batch_key(0)..=batch_key(sequence)).next_back() else {
        return Ok(None);
    };
    let (key, packed) = entry.map_err(storage)?;
    let first = sequence_of(&key);
    let events = unpack(first, &packed)?;
    Ok(usize::try_from(sequence - first)
        .ok()
        .and_then(|index| events.get(index))
        .map(|event| event.to_vec()))
}

/// The packed batches that hold sequences `from..=to`, in order, as `(first sequence, value)`.
pub(super) fn batches(
    tree: &sled::Tree,
    from: u64,
    to: u64,
) -> impl Iterator<Item = Result<(u64, IVec), LogError>> {
    // The batch holding `from` may start before it.
    let start = match tree.range(batch_key(0)..=batch_key(from)).next_back() {
        Some(Ok((key, _))) => sequence_of(&key),
        _ => from,
    };
    tree.range(batch_key(start)..=batch_key(to)).map(|entry| {
        entry
            .map(|(key, value)| (sequence_of(&key), value))
            .map_err(storage)
    })
}

/// Whether the tree still holds events of the first layout.
pub(super) fn needs_migration(tree: &sled::Tree) -> Result<bool, LogError> {
    Ok(tree
        .scan_prefix([EVENT_V1])
        .next()
        .transpose()
        .map_err(storage)?
        .is_some())
}

/// Packs a log of the first layout (one `E seq` key per event) in place: each step moves up to
/// [`MIGRATE_STEP`] events into packed keys and removes their old keys in one atomic batch.
/// Returns the events moved.
pub(super) fn migrate(tree: &sled::Tree) -> Result<u64, LogError> {
    let mut moved = 0u64;
    loop {
        let mut step = sled::Batch::default();
        let mut packed = Vec::new();
        let mut first = 0u64;
        let mut next = 0u64;
        let mut taken = 0;
        for entry in tree.scan_prefix([EVENT_V1]).take(MIGRATE_STEP) {
            let (key, bytes) = entry.map_err(storage)?;
            let sequence = sequence_of(&key);
            // A new packed key at a gap (none is expected) or when this one is full.
            if taken > 0 && (sequence != next || packed.len() >= PACK_BYTES) {
                step.insert(batch_key(first).as_slice(), std::mem::take(&mut packed));
            }
            if packed.is_empty() {
                first = sequence;
            }
            push(&mut packed, &bytes);
            step.remove(key);
            next = sequence + 1;
            taken += 1;
        }
        if taken == 0 {
            return Ok(moved);
        }
        step.insert(batch_key(first).as_slice(), packed);
        tree.apply_batch(step).map_err(storage)?;
        moved += taken as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_round_trips_and_a_cut_batch_is_corrupt() {
        let mut packed = Vec::new();
        push(&mut packed, b"one");
        push(&mut packed, b"");
        push(&mut packed, b"three");
        let events = unpack(5, &packed).unwrap();
        assert_eq!(events, vec![&b"one"[..], b"", b"three"]);
        let cut = &packed[..packed.len() - 1];
        assert!(matches!(
            unpack(5, cut),
            Err(LogError::Corrupt { sequence: 7, .. })
        ));
    }

    #[test]
    fn a_first_layout_log_is_packed_in_place_and_read_by_sequence() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("log").unwrap();
        for sequence in 1..=10_000u64 {
            let mut key = vec![EVENT_V1];
            key.extend_from_slice(&sequence.to_be_bytes());
            tree.insert(key, format!("event {sequence}").as_bytes())
                .unwrap();
        }
        assert!(needs_migration(&tree).unwrap());
        assert_eq!(migrate(&tree).unwrap(), 10_000);
        assert!(!needs_migration(&tree).unwrap());
        assert_eq!(last(&tree).unwrap(), (10_000, b"event 10000".to_vec()));
        for sequence in [1, 4096, 4097, 9_999] {
            assert_eq!(
                stored(&tree, sequence).unwrap(),
                Some(format!("event {sequence}").into_bytes())
            );
        }
        assert_eq!(stored(&tree, 10_001).unwrap(), None);
        // Batches from the middle of one: the first returned holds the sequence asked for.
        let (first, _) = batches(&tree, 5000, 5000).next().unwrap().unwrap();
        assert!(first <= 5000);
    }
}
