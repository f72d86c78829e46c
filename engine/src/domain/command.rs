//! Commands: what a caller asks the directory to do. New ids, times and token hashes are made by
//! the caller and carried in the command, so `decide` stays a pure function.

use super::ids::{Role, Timestamp, TokenId, UserId};
use super::state::Footprint;
use super::user::{UserProfile, fold};

/// A token to issue; the caller generated its id and secret and passes only the secret's hash.
#[derive(Clone, Debug, PartialEq)]
pub struct NewToken {
    pub id: TokenId,
    pub name: String,
    pub secret_sha256: [u8; 32],
    pub expires_at: Option<Timestamp>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    CreateTenant {
        default_role: Role,
        first_token: Option<NewToken>,
    },
    IssueToken(NewToken),
    RevokeToken {
        token_id: TokenId,
    },
    ProvisionUser {
        user_id: UserId,
        profile: UserProfile,
    },
    /// Full replacement of a user's profile (SCIM PUT, and PATCH once applied to the current
    /// profile). `expected_version` guards against lost updates.
    ReplaceUser {
        user_id: UserId,
        profile: UserProfile,
        expected_version: Option<u64>,
    },
    SetUserActive {
        user_id: UserId,
        active: bool,
        expected_version: Option<u64>,
    },
    DeleteUser {
        user_id: UserId,
        expected_version: Option<u64>,
    },
}

impl Command {
    /// What `decide` needs loaded.
    pub fn footprint(&self) -> Footprint {
        let mut footprint = Footprint::default();
        match self {
            Command::CreateTenant { first_token, .. } => {
                if let Some(token) = first_token {
                    footprint.tokens.push(token.id.clone());
                }
            }
            Command::IssueToken(token) => footprint.tokens.push(token.id.clone()),
            Command::RevokeToken { token_id } => footprint.tokens.push(token_id.clone()),
            Command::ProvisionUser { user_id, profile }
            | Command::ReplaceUser {
                user_id, profile, ..
            } => {
                footprint.users.push(*user_id);
                footprint.user_names.push(fold(&profile.user_name));
                if let Some(external_id) = &profile.external_id {
                    footprint.user_external_ids.push(external_id.clone());
                }
            }
            Command::SetUserActive { user_id, .. } | Command::DeleteUser { user_id, .. } => {
                footprint.users.push(*user_id);
            }
        }
        footprint
    }
}
