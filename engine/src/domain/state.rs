//! The state `decide` reads and `apply` evolves: one tenant's directory.
//!
//! The same type serves two purposes. Tests fold events into a complete `State`. The engine loads
//! only the *slice* a command needs (its [`Footprint`]) from the aggregate store, so memory does
//! not grow with the directory. Every map therefore distinguishes "known absent" (`None`) from a
//! key that is simply not in the slice; the loader guarantees that every key in the footprint is
//! present. `apply` records what it touched in a [`Journal`] so the store writes back exactly those
//! entries.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::ids::{Role, TenantName, Timestamp, TokenId, UserId};
use super::user::UserProfile;

/// A tenant's own record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TenantRecord {
    pub created_at: Timestamp,
    pub default_role: Role,
    #[serde(default)]
    pub sso_enforced: bool,
    /// Users currently in the directory (deleted ones excluded).
    pub user_count: u64,
    #[serde(default)]
    pub group_count: u64,
}

/// A bearer token. Only the SHA-256 of its secret is kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: TokenId,
    pub name: String,
    pub secret_sha256: [u8; 32],
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

impl TokenRecord {
    /// Whether the token authenticates at `now`.
    pub fn is_valid_at(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|expiry| now < expiry)
    }
}

/// A managed user as the directory holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserRecord {
    pub id: UserId,
    pub profile: UserProfile,
    /// Incremented by every event that changes the user; the SCIM ETag.
    pub version: u64,
    pub created_at: Timestamp,
    pub modified_at: Timestamp,
}

/// What a command or an event needs loaded before `decide` or `apply` can run on a slice.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Footprint {
    pub tokens: Vec<TokenId>,
    pub users: Vec<UserId>,
    /// Folded userNames to resolve.
    pub user_names: Vec<String>,
    pub user_external_ids: Vec<String>,
}

/// Which entries `apply` changed, in the order it changed them.
#[derive(Clone, Debug, Default)]
pub struct Journal(Vec<Touched>);

/// One entry of the state that `apply` changed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Touched {
    Tenant,
    Token(TokenId),
    User(UserId),
    UserName(String),
    UserExternalId(String),
}

impl Journal {
    /// The touched entries, each once.
    pub fn drain(&mut self) -> BTreeSet<Touched> {
        std::mem::take(&mut self.0).into_iter().collect()
    }

    pub(crate) fn touch(&mut self, touched: Touched) {
        self.0.push(touched);
    }
}

/// The journal is bookkeeping for the store, not part of the state's meaning.
impl PartialEq for Journal {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

/// One tenant's directory, complete (tests) or as a loaded slice (engine).
#[derive(Clone, Debug, PartialEq)]
pub struct State {
    pub name: TenantName,
    pub tenant: Option<TenantRecord>,
    pub tokens: BTreeMap<TokenId, Option<TokenRecord>>,
    pub users: BTreeMap<UserId, Option<UserRecord>>,
    /// Folded userName → owner.
    pub user_names: BTreeMap<String, Option<UserId>>,
    /// externalId → owner.
    pub user_external_ids: BTreeMap<String, Option<UserId>>,
    pub journal: Journal,
}

impl State {
    /// An empty directory for `name` (a tenant that does not exist yet).
    pub fn new(name: TenantName) -> Self {
        Self {
            name,
            tenant: None,
            tokens: BTreeMap::new(),
            users: BTreeMap::new(),
            user_names: BTreeMap::new(),
            user_external_ids: BTreeMap::new(),
            journal: Journal::default(),
        }
    }

    /// A copy of the tenant record and of the entries `footprint` names, as they are now: what
    /// one command's caller needs to see of a slice that later commands keep changing.
    pub fn extract(&self, footprint: &Footprint) -> State {
        let mut copy = State::new(self.name.clone());
        copy.tenant = self.tenant.clone();
        for id in &footprint.tokens {
            if let Some(token) = self.tokens.get(id) {
                copy.tokens.insert(id.clone(), token.clone());
            }
        }
        for id in &footprint.users {
            if let Some(user) = self.users.get(id) {
                copy.users.insert(*id, user.clone());
            }
        }
        for name in &footprint.user_names {
            if let Some(owner) = self.user_names.get(name) {
                copy.user_names.insert(name.clone(), *owner);
            }
        }
        for external_id in &footprint.user_external_ids {
            if let Some(owner) = self.user_external_ids.get(external_id) {
                copy.user_external_ids.insert(external_id.clone(), *owner);
            }
        }
        copy
    }

    pub fn user(&self, id: &UserId) -> Option<&UserRecord> {
        self.users.get(id).and_then(Option::as_ref)
    }

    pub fn token(&self, id: &TokenId) -> Option<&TokenRecord> {
        self.tokens.get(id).and_then(Option::as_ref)
    }

    /// The user holding a folded userName.
    pub fn user_id_by_name(&self, folded: &str) -> Option<UserId> {
        self.user_names.get(folded).copied().flatten()
    }

    pub fn user_id_by_external_id(&self, external_id: &str) -> Option<UserId> {
        self.user_external_ids.get(external_id).copied().flatten()
    }
}
