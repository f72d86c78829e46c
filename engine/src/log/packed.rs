//! The embedded log's layout in its sled tree: events packed per write, one key per batch.
//!
//! `B first-seq(8 bytes BE)` → the events `first-seq, first-seq + 1, …` back to back, each as a
//! `u32` little-endian length and the `roster.v1.Event` protobuf; `H tenant` → the tenant's last
//! sequence. Batches tile the sequences from 1 with no gap or overlap, so the batch holding a
//! sequence is the last one whose first sequence is not above it.
//!
//! The tenant index: `T tenant 0x00 first-seq(8 bytes BE)` → where that tenant's events sit in
//! the batch `B first-seq`, as runs of consecutive events (`u32` LE each: index of the run's first
//! event in the batch, its byte offset in the packed value, its length in events). One key per
//! tenant and batch, written in the same atomic sled batch as the events, so reading one tenant
//! seeks its own batches and decodes its own events only, whatever the other tenants wrote. No
//! tenant name holds a `0x00`, so one tenant's keys never fall under another's prefix (`acme`,
//! `acme2`). `I` → the last sequence the index covers, also written with every batch: a log
//! written without the index (by an older roster) is indexed at open by [`build_tenant_index`],
//! in atomic steps that each move `I` on, so a crash during it leaves a log that the next open
//! finishes indexing.
//!
//! The first layout (before packing) kept one key per event, `E seq` → protobuf;
//! [`migrate`] packs such a log in place at open, each step in one atomic sled batch, so a crash
//! during it leaves a log that the next open finishes migrating.

use std::collections::BTreeMap;

use prost::Message;
use sled::IVec;

use super::LogError;

const BATCH: u8 = b'B';
/// One key per event: the first layout, read only to migrate it.
const EVENT_V1: u8 = b'E';
pub(super) const HEAD: u8 = b'H';
const TENANT_INDEX: u8 = b'T';
/// Ends the tenant name in a tenant index key (no tenant name holds it).
const NAME_END: u8 = 0;
/// The key of the last sequence the tenant index covers.
const INDEXED: [u8; 1] = [b'I'];
/// Batches indexed per atomic step when an unindexed log is indexed at open.
const INDEX_STEP: usize = 64;
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
        let (event, tail) = split_packed(rest, first + events.len() as u64)?;
        events.push(event);
        rest = tail;
    }
    Ok(events)
}

/// The first event of `packed` (`u32 LE length` + bytes) and what follows it; `sequence` is the
/// event's, for the error when the batch is cut short.
fn split_packed(packed: &[u8], sequence: u64) -> Result<(&[u8], &[u8]), LogError> {
    let corrupt = || LogError::Corrupt {
        sequence,
        reason: "a packed batch is cut short".to_owned(),
    };
    let (length, tail) = packed.split_first_chunk::<4>().ok_or_else(corrupt)?;
    let length = u32::from_le_bytes(*length) as usize;
    if tail.len() < length {
        return Err(corrupt());
    }
    Ok(tail.split_at(length))
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

/// Appends events to packed values of at most [`PACK_BYTES`] each (a larger single event gets
/// its own), and writes each value with its tenant index keys.
#[derive(Default)]
pub(super) struct Packer {
    first: u64,
    bytes: Vec<u8>,
    runs: TenantRuns,
}

impl Packer {
    /// Adds the encoded event at `sequence` of `tenant`; a full value is written to `batch` first.
    pub(super) fn push(
        &mut self,
        batch: &mut sled::Batch,
        sequence: u64,
        tenant: &str,
        event: &[u8],
    ) {
        if !self.bytes.is_empty() && self.bytes.len() + event.len() > PACK_BYTES {
            self.finish(batch);
        }
        if self.bytes.is_empty() {
            self.first = sequence;
        }
        self.runs
            .note(tenant, sequence - self.first, self.bytes.len());
        push(&mut self.bytes, event);
    }

    /// Writes the value being packed, if any, and its tenant index keys to `batch`.
    pub(super) fn finish(&mut self, batch: &mut sled::Batch) {
        if !self.bytes.is_empty() {
            batch.insert(
                batch_key(self.first).as_slice(),
                std::mem::take(&mut self.bytes),
            );
            self.runs.write(batch, self.first);
        }
    }
}

/// A run of one tenant's consecutive events in a packed value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Run {
    /// The position of the run's first event in the value (its sequence minus the value's first).
    pub index: u32,
    /// The byte offset of the run's first event (its length prefix) in the value.
    pub offset: u32,
    /// Events in the run.
    pub count: u32,
}

/// Where each tenant's events sit in one packed value, collected as the value is packed.
#[derive(Default)]
struct TenantRuns(BTreeMap<String, Vec<Run>>);

impl TenantRuns {
    /// Notes that the event at `index` of the value, at byte `offset`, belongs to `tenant`.
    fn note(&mut self, tenant: &str, index: u64, offset: usize) {
        // A packed value holds at most PACK_BYTES plus one event, and events are far smaller than
        // 4 GiB (their length is stored as a u32): both fit.
        let (index, offset) = (index as u32, offset as u32);
        let runs = match self.0.get_mut(tenant) {
            Some(runs) => runs,
            None => self.0.entry(tenant.to_owned()).or_default(),
        };
        match runs.last_mut() {
            Some(run) if run.index + run.count == index => run.count += 1,
            _ => runs.push(Run {
                index,
                offset,
                count: 1,
            }),
        }
    }

    /// The index values, one per tenant, as stored.
    fn into_values(self) -> impl Iterator<Item = (String, Vec<u8>)> {
        self.0.into_iter().map(|(tenant, runs)| {
            let mut value = Vec::with_capacity(runs.len() * 12);
            for run in runs {
                value.extend_from_slice(&run.index.to_le_bytes());
                value.extend_from_slice(&run.offset.to_le_bytes());
                value.extend_from_slice(&run.count.to_le_bytes());
            }
            (tenant, value)
        })
    }

    /// Writes one index key per tenant for the value `B first` into `batch`, and forgets them.
    fn write(&mut self, batch: &mut sled::Batch, first: u64) {
        for (tenant, value) in std::mem::take(self).into_values() {
            batch.insert(tenant_index_key(&tenant, first), value);
        }
    }
}

/// Where each tenant's events sit in the decoded batch `first`.
fn runs_of(first: u64, events: &[&[u8]]) -> Result<TenantRuns, LogError> {
    let mut runs = TenantRuns::default();
    let mut offset = 0;
    for (index, bytes) in events.iter().enumerate() {
        let sequence = first + index as u64;
        let of = TenantOfEvent::decode(*bytes).map_err(|error| LogError::Corrupt {
            sequence,
            reason: error.to_string(),
        })?;
        runs.note(&of.tenant, index as u64, offset);
        offset += 4 + bytes.len();
    }
    Ok(runs)
}

/// The tenant and batch an index key names, for messages.
fn describe_index_key(key: &[u8]) -> String {
    let name = key.get(1..).unwrap_or_default();
    let end = name
        .iter()
        .position(|byte| *byte == NAME_END)
        .unwrap_or(name.len());
    let first = sequence_at(key, end + 2);
    format!(
        "of tenant {} for the batch at sequence {first}",
        String::from_utf8_lossy(&name[..end])
    )
}

/// Holds the tenant index against the batches it covers (everything up to `I`): every entry
/// must be the one the batch's events give, and none may be missing. `None` when it is right,
/// else the first problem found. Reads the whole log; for `roster check`.
pub(super) fn verify_tenant_index(tree: &sled::Tree) -> Result<Option<String>, LogError> {
    let indexed = indexed_through(tree)?;
    let mut expected: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    for entry in batches(tree, 1, indexed) {
        let (first, value) = entry?;
        if first > indexed {
            break;
        }
        let events = unpack(first, &value)?;
        for (tenant, runs) in runs_of(first, &events)?.into_values() {
            expected.insert(tenant_index_key(&tenant, first), runs);
        }
    }
    for entry in tree.scan_prefix([TENANT_INDEX]) {
        let (key, value) = entry.map_err(storage)?;
        match expected.remove(key.as_ref()) {
            Some(wanted) if wanted == value.as_ref() => {}
            Some(_) => {
                return Ok(Some(format!(
                    "the tenant index entry {} does not match the batch",
                    describe_index_key(&key)
                )));
            }
            None => {
                return Ok(Some(format!(
                    "the tenant index has an entry {} that no event gives",
                    describe_index_key(&key)
                )));
            }
        }
    }
    Ok(expected.keys().next().map(|key| {
        format!(
            "the tenant index lacks the entry {}",
            describe_index_key(key)
        )
    }))
}

/// Drops the tenant index and builds it again from the batches. Returns the batches indexed.
pub(super) fn rebuild_tenant_index(tree: &sled::Tree) -> Result<u64, LogError> {
    let mut drop_index = sled::Batch::default();
    for entry in tree.scan_prefix([TENANT_INDEX]) {
        let (key, _) = entry.map_err(storage)?;
        drop_index.remove(key);
    }
    drop_index.remove(INDEXED.as_slice());
    tree.apply_batch(drop_index).map_err(storage)?;
    build_tenant_index(tree)
}

fn tenant_index_prefix(tenant: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(tenant.len() + 10);
    key.push(TENANT_INDEX);
    key.extend_from_slice(tenant.as_bytes());
    key.push(NAME_END);
    key
}

fn tenant_index_key(tenant: &str, first: u64) -> Vec<u8> {
    let mut key = tenant_index_prefix(tenant);
    key.extend_from_slice(&first.to_be_bytes());
    key
}

fn decode_runs(first: u64, value: &[u8]) -> Result<Vec<Run>, LogError> {
    let corrupt = || LogError::Corrupt {
        sequence: first,
        reason: "a tenant index entry is malformed".to_owned(),
    };
    if !value.len().is_multiple_of(12) {
        return Err(corrupt());
    }
    let word = |bytes: &[u8]| {
        <[u8; 4]>::try_from(bytes)
            .map(u32::from_le_bytes)
            .map_err(|_| corrupt())
    };
    value
        .chunks_exact(12)
        .map(|run| {
            Ok(Run {
                index: word(&run[0..4])?,
                offset: word(&run[4..8])?,
                count: word(&run[8..12])?,
            })
        })
        .collect()
}

/// Records in `batch` that the tenant index covers every sequence up to `last`.
pub(super) fn mark_indexed(batch: &mut sled::Batch, last: u64) {
    batch.insert(INDEXED.as_slice(), last.to_be_bytes().as_slice());
}

/// The last sequence the tenant index covers (0: none, as in a log written before the index).
pub(super) fn indexed_through(tree: &sled::Tree) -> Result<u64, LogError> {
    Ok(tree
        .get(INDEXED)
        .map_err(storage)?
        .and_then(|bytes| <[u8; 8]>::try_from(bytes.as_ref()).ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0))
}

/// `tenant`'s index entries for the batches holding sequences `from..=to`, in order, as
/// `(first sequence of the batch, runs of the tenant's events in it)`.
pub(super) fn tenant_batches(
    tree: &sled::Tree,
    tenant: &str,
    from: u64,
    to: u64,
) -> impl Iterator<Item = Result<(u64, Vec<Run>), LogError>> {
    let prefix = tenant_index_prefix(tenant);
    let key = |first: u64| tenant_index_key(tenant, first);
    // The tenant's batch holding `from` may start before it.
    let start = match tree.range(key(0)..=key(from)).next_back() {
        Some(Ok((found, _))) => sequence_at(&found, prefix.len()),
        _ => from,
    };
    tree.range(key(start)..=key(to)).map(move |entry| {
        let (found, value) = entry.map_err(storage)?;
        let first = sequence_at(&found, prefix.len());
        Ok((first, decode_runs(first, &value)?))
    })
}

fn sequence_at(key: &[u8], at: usize) -> u64 {
    key.get(at..at + 8)
        .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

/// The encoded events of `run` in the packed value of batch `first`, without reading the others.
pub(super) fn unpack_run(first: u64, packed: &[u8], run: Run) -> Result<Vec<&[u8]>, LogError> {
    let sequence = first + u64::from(run.index);
    let mut rest = packed
        .get(run.offset as usize..)
        .ok_or_else(|| LogError::Corrupt {
            sequence,
            reason: "the tenant index points past the end of a packed batch".to_owned(),
        })?;
    let mut events = Vec::with_capacity(run.count as usize);
    for _ in 0..run.count {
        let (event, tail) = split_packed(rest, sequence + events.len() as u64)?;
        events.push(event);
        rest = tail;
    }
    Ok(events)
}

/// The tenant of an encoded event: field 2 of `roster.v1.Event`, decoded alone.
#[derive(Clone, PartialEq, prost::Message)]
struct TenantOfEvent {
    #[prost(string, tag = "2")]
    tenant: String,
}

/// Indexes the batches written after the last sequence the tenant index covers (all of them in a
/// log written before the index), [`INDEX_STEP`] batches per atomic sled batch that also moves
/// `I` on. Returns the batches indexed.
pub(super) fn build_tenant_index(tree: &sled::Tree) -> Result<u64, LogError> {
    let (head, _) = last(tree)?;
    let mut indexed = indexed_through(tree)?;
    let mut built = 0u64;
    while indexed < head {
        let mut step = sled::Batch::default();
        let mut taken = 0;
        for entry in batches(tree, indexed + 1, head) {
            let (first, value) = entry?;
            let events = unpack(first, &value)?;
            let Some(end) = (first + events.len() as u64).checked_sub(1) else {
                continue;
            };
            if events.is_empty() || end <= indexed {
                continue;
            }
            runs_of(first, &events)?.write(&mut step, first);
            indexed = end;
            taken += 1;
            if taken == INDEX_STEP {
                break;
            }
        }
        if taken == 0 {
            // The batches end before the head `last` found: nothing more to index.
            break;
        }
        mark_indexed(&mut step, indexed);
        tree.apply_batch(step).map_err(storage)?;
        built += taken as u64;
    }
    Ok(built)
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
