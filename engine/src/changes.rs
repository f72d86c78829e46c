//! Staged changes to a tree: where `StateStore` writes what `apply` journaled ([`Sink`]), a sled
//! batch or [`Changes`] (coalesced by key, in key order) for a resident tree.

use std::collections::BTreeMap;

use sled::IVec;

/// Where staged changes go: a sled batch, or [`Changes`] for a resident tree.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[b'a', 0xff]), Some(b"b".to_vec()));
        assert_eq!(prefix_end(&[0xff]), None);
    }

    #[test]
    fn changes_keep_the_last_change_of_a_key_in_key_order() {
        let mut changes = Changes::default();
        changes.put(b"b".as_slice(), b"1".as_slice());
        changes.put(b"a".as_slice(), b"1".as_slice());
        changes.delete(b"b".as_slice());
        let entries: Vec<_> = changes.into_entries().collect();
        assert_eq!(
            entries,
            vec![
                (IVec::from(b"a"), Some(IVec::from(b"1"))),
                (IVec::from(b"b"), None)
            ]
        );
    }
}
