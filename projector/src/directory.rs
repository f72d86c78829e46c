//! The directory view: tenants, users and their lookup indexes as SCIM reads them, plus an index
//! of users by email address. It holds the same state as the engine's aggregate (built by the same
//! `apply`), but only ever reflects durable events, and adds the read-only indexes.
//!
//! Tree `view.directory`: the `StateStore` layout, plus
//! `e tenant \0 folded-email \0 user-id(16)` → the email's `type` (UTF-8, empty when none), and
//! `y tenant \0 externalId \0 group-id(16)` → nothing (group externalIds need not be unique).

use std::collections::BTreeSet;

use roster_engine::domain::{Event, GroupId, GroupRecord, TenantName, UserId, UserRecord};
use roster_engine::store::StateStore;

use crate::runner::{Projection, ProjectionError};

const EMAIL: u8 = b'e';
const GROUP_EXTERNAL_ID: u8 = b'y';

/// Users and their indexes, for reads.
#[derive(Clone)]
pub struct DirectoryView {
    store: StateStore,
}

fn email_prefix(tenant: &TenantName, folded_email: &str) -> Vec<u8> {
    let mut key = vec![EMAIL];
    key.extend_from_slice(tenant.as_str().as_bytes());
    key.push(0);
    key.extend_from_slice(folded_email.as_bytes());
    key.push(0);
    key
}

fn email_key(tenant: &TenantName, folded_email: &str, user: &UserId) -> Vec<u8> {
    let mut key = email_prefix(tenant, folded_email);
    key.extend_from_slice(user.as_bytes());
    key
}

fn group_external_id_prefix(tenant: &TenantName, external_id: &str) -> Vec<u8> {
    let mut key = vec![GROUP_EXTERNAL_ID];
    key.extend_from_slice(tenant.as_str().as_bytes());
    key.push(0);
    key.extend_from_slice(external_id.as_bytes());
    key.push(0);
    key
}

fn group_external_id(group: Option<&GroupRecord>) -> Option<&str> {
    group.and_then(|group| group.profile.external_id.as_deref())
}

/// A user's emails as (folded address, type) pairs.
fn emails_of(user: Option<&UserRecord>) -> BTreeSet<(String, String)> {
    user.map(|user| {
        user.profile
            .emails()
            .into_iter()
            .map(|(value, kind)| (value.to_lowercase(), kind.unwrap_or_default()))
            .collect()
    })
    .unwrap_or_default()
}

impl DirectoryView {
    pub fn open(db: &sled::Db) -> Result<Self, ProjectionError> {
        Ok(Self {
            store: StateStore::open(db, "view.directory")?,
        })
    }

    /// Tenants, users and the userName/externalId indexes.
    pub fn store(&self) -> &StateStore {
        &self.store
    }

    /// Groups whose externalId is exactly `external_id`.
    pub fn groups_by_external_id(
        &self,
        tenant: &TenantName,
        external_id: &str,
    ) -> Result<Vec<GroupId>, ProjectionError> {
        let prefix = group_external_id_prefix(tenant, external_id);
        let mut groups = Vec::new();
        for entry in self.store.tree().scan_prefix(&prefix) {
            let (key, _) = entry?;
            if let Some(id) = GroupId::from_slice(&key[prefix.len()..]) {
                groups.push(id);
            }
        }
        Ok(groups)
    }

    /// Users with an email address (compared case-insensitively), with that email's `type`.
    pub fn users_by_email(
        &self,
        tenant: &TenantName,
        email: &str,
    ) -> Result<Vec<(UserId, String)>, ProjectionError> {
        let prefix = email_prefix(tenant, &email.to_lowercase());
        let mut users = Vec::new();
        for entry in self.store.tree().scan_prefix(&prefix) {
            let (key, kind) = entry?;
            if let Some(id) = UserId::from_slice(&key[prefix.len()..]) {
                users.push((id, String::from_utf8_lossy(&kind).into_owned()));
            }
        }
        Ok(users)
    }
}

impl Projection for DirectoryView {
    fn name(&self) -> &'static str {
        "directory"
    }

    fn checkpoint(&self) -> Result<u64, ProjectionError> {
        Ok(self.store.checkpoint()?)
    }

    fn apply(&self, events: &[Event]) -> Result<(), ProjectionError> {
        // Index changes in event order; applied after the state's writes, which use other keys.
        let mut index: Vec<(Vec<u8>, Option<String>)> = Vec::new();
        let mut batch = sled::Batch::default();
        self.store
            .apply_events_into(events, &mut batch, |event, before, after| {
                if let Some(user_id) = event.payload.user_id() {
                    let old = emails_of(before.user.as_ref());
                    let new = emails_of(after.user(&user_id));
                    for (email, _) in old.difference(&new) {
                        index.push((email_key(&event.tenant, email, &user_id), None));
                    }
                    for (email, kind) in new.difference(&old) {
                        index.push((
                            email_key(&event.tenant, email, &user_id),
                            Some(kind.clone()),
                        ));
                    }
                }
                if let Some(group_id) = event.payload.group_id() {
                    let old = group_external_id(before.group.as_ref());
                    let new = group_external_id(after.group(&group_id));
                    if old != new {
                        if let Some(old) = old {
                            let mut key = group_external_id_prefix(&event.tenant, old);
                            key.extend_from_slice(group_id.as_bytes());
                            index.push((key, None));
                        }
                        if let Some(new) = new {
                            let mut key = group_external_id_prefix(&event.tenant, new);
                            key.extend_from_slice(group_id.as_bytes());
                            index.push((key, Some(String::new())));
                        }
                    }
                }
            })?;
        for (key, kind) in index {
            match kind {
                Some(kind) => batch.insert(key, kind.as_bytes()),
                None => batch.remove(key),
            }
        }
        self.store.apply_batch(batch)?;
        Ok(())
    }

    fn reset(&self) -> Result<(), ProjectionError> {
        Ok(self.store.clear()?)
    }
}
