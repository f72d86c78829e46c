//! Just-in-time provisioning: the rules for the user behind an SSO login.
//!
//! - **Who**: the user linked to the login's subject; else an unlinked user whose `externalId` or
//!   `userName` is the subject (several users holding the subject as externalId are refused as
//!   ambiguous: externalIds need not be unique), or (exactly one) whose emails hold the login's
//!   email. A match is linked (`UserSsoLinked`), never duplicated. Otherwise a user is created
//!   with a username derived from the email's local part, else the name, else the subject, made
//!   to follow the username rules and de-duplicated with a numeric suffix (`alice`, `alice-2`, …).
//! - **What**: the given and family name and the email follow the claims (`UserUpdated` when
//!   they changed). A deactivated user is refused: SCIM owns the lifecycle.
//! - **Role**: the tenant's claim mappings (dotted claim path → value → org role) applied to the
//!   claims; the most privileged match wins and is kept on the user (`UserClaimRoleChanged`),
//!   where `access` counts it as one more source of the org role.

use serde_json::{Map, Value};

use super::event::EventPayload;
use super::handle::{handle_candidates, handle_from, local_part};
use super::ids::{Role, UserId};
use super::profile;
use super::rejection::Rejection;
use super::rules::{normalize, replace, require_tenant, username_policy};
use super::state::{ClaimRole, ClaimRoleMapping, Footprint, State, UserRecord};
use super::user::{UserProfile, fold};

/// Most claim mappings a tenant may have (they live in the tenant record).
pub const CLAIM_ROLE_MAPPINGS_MAX: usize = 200;
const CLAIM_PATH_MAX: usize = 200;
const CLAIM_VALUE_MAX: usize = 256;
const SUBJECT_MAX: usize = 255;
const EMAIL_MAX: usize = 254;
const NAME_MAX: usize = 256;
/// Most users holding the login's email the caller passes (`JitLogin::email_matches`). It passes
/// one more when there are more: that many holders are ambiguous, whoever is linked among them.
pub const JIT_EMAIL_MATCHES_MAX: usize = 16;

/// An SSO login as the platform reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct JitLogin {
    /// The id the user gets if one is created (made by the caller: no randomness here).
    pub new_user_id: UserId,
    /// The IdP's subject (`sub`).
    pub subject: String,
    pub email: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    /// Every claim of the login, as a JSON object.
    pub claims: Value,
    /// Users the caller found with `email` (a read index the engine does not keep); the rules
    /// check each against the current state.
    pub email_matches: Vec<UserId>,
}

/// Longest issuer kept from a login's `iss` claim.
const ISSUER_MAX: usize = 2048;

/// The login's issuer: its `iss` claim, when a plausible one.
fn login_issuer(login: &JitLogin) -> Option<String> {
    login
        .claims
        .get("iss")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|iss| {
            !iss.is_empty() && iss.len() <= ISSUER_MAX && !iss.chars().any(char::is_control)
        })
        .map(str::to_owned)
}

/// The scalar values at a dotted claim path: a string (or number, boolean) or the scalar elements
/// of an array. A top-level key equal to the whole path wins over the dotted walk, so namespaced
/// claims such as `https://example.com/roles` work.
pub fn claim_values(claims: &Value, path: &str) -> Vec<String> {
    let found = match claims.get(path) {
        Some(value) => Some(value),
        None => path
            .split('.')
            .try_fold(claims, |value, segment| value.get(segment)),
    };
    match found {
        Some(Value::Array(items)) => items.iter().filter_map(scalar).collect(),
        Some(value) => scalar(value).into_iter().collect(),
        None => Vec::new(),
    }
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// The most privileged role the mappings grant for `claims` (on a tie, the first mapping in
/// claim-then-value order), with the mapping that grants it.
pub fn role_from_claims(mappings: &[ClaimRoleMapping], claims: &Value) -> Option<ClaimRole> {
    let mut best: Option<ClaimRole> = None;
    for mapping in mappings {
        let wanted = fold(&mapping.value);
        let matched = claim_values(claims, &mapping.claim)
            .iter()
            .any(|value| fold(value) == wanted);
        if matched && best.as_ref().is_none_or(|best| mapping.role > best.role) {
            best = Some(ClaimRole {
                role: mapping.role,
                claim: mapping.claim.clone(),
                value: mapping.value.clone(),
            });
        }
    }
    best
}

/// The username a login's user would get when nothing else holds it: from the email's local
/// part (without a `+tag`), else the given and family name, else the subject, each made a valid
/// handle the way `handle` derives one; `user` when nothing usable is left.
fn base_user_name(login: &JitLogin) -> String {
    let full_name = [login.given_name.as_deref(), login.family_name.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let sources = [
        login.email.as_deref().map(local_part),
        Some(full_name.as_str()),
        Some(login.subject.as_str()),
    ];
    sources
        .into_iter()
        .flatten()
        .find_map(handle_from)
        .unwrap_or_else(|| "user".to_owned())
}

/// The usernames a created user may get, in order of preference: the derived name, then with
/// `-2` … `-9`, then with a suffix taken from the new user's id.
pub fn user_name_candidates(login: &JitLogin) -> Vec<String> {
    handle_candidates(&base_user_name(login), login.new_user_id)
}

pub(super) fn footprint(login: &JitLogin) -> Footprint {
    let login = trimmed(login.clone());
    let mut footprint = Footprint::default();
    footprint.users.push(login.new_user_id);
    footprint.users.extend(login.email_matches.iter().copied());
    footprint.user_subjects.push(login.subject.clone());
    footprint.user_external_ids.push(login.subject.clone());
    footprint.user_names.push(fold(&login.subject));
    let candidates: Vec<String> = user_name_candidates(&login)
        .iter()
        .map(|name| fold(name))
        .collect();
    footprint.user_names.extend(candidates.iter().cloned());
    footprint.user_handles.extend(candidates);
    footprint
}

pub(super) fn dependent_footprint(login: &JitLogin, state: &State) -> Footprint {
    let subject = login.subject.trim();
    let mut footprint = Footprint::default();
    footprint.users.extend(
        [
            state.user_id_by_subject(subject),
            sole_external_id_holder(state, subject),
            state.user_id_by_name(&fold(subject)),
        ]
        .into_iter()
        .flatten(),
    );
    footprint
}

/// The one user holding `external_id`, if exactly one does (several are ambiguous: [`find_user`]
/// refuses them without reading their records).
fn sole_external_id_holder(state: &State, external_id: &str) -> Option<UserId> {
    match state.user_ids_by_external_id(external_id).as_slice() {
        [user] => Some(*user),
        _ => None,
    }
}

fn invalid(message: impl Into<String>) -> Rejection {
    Rejection::InvalidValue(message.into())
}

/// A claim path: non-empty, no empty segment.
fn check_claim_path(claim: &str) -> Result<(), Rejection> {
    if claim.is_empty() || claim.chars().count() > CLAIM_PATH_MAX {
        return Err(invalid(format!(
            "claim must be a dotted attribute path of 1 to {CLAIM_PATH_MAX} characters"
        )));
    }
    if claim.split('.').any(str::is_empty) {
        return Err(invalid(format!(
            "claim {claim:?} has an empty segment: write paths like groups or custom.department"
        )));
    }
    Ok(())
}

pub(super) fn decide_claim_role_mapping(
    state: &State,
    claim: String,
    value: String,
    role: Option<Role>,
) -> Result<Vec<EventPayload>, Rejection> {
    require_tenant(state)?;
    let claim = claim.trim().to_owned();
    let value = value.trim().to_owned();
    check_claim_path(&claim)?;
    if value.is_empty() || value.chars().count() > CLAIM_VALUE_MAX {
        return Err(invalid(format!(
            "the claim value must be 1 to {CLAIM_VALUE_MAX} characters"
        )));
    }
    let mappings = state
        .tenant
        .as_ref()
        .map_or(&[][..], |tenant| &tenant.claim_role_mappings[..]);
    let folded = fold(&value);
    let existing = mappings
        .iter()
        .find(|mapping| mapping.claim == claim && fold(&mapping.value) == folded);
    match (role, existing) {
        (Some(role), Some(existing)) if existing.role == role && existing.value == value => {
            Ok(Vec::new())
        }
        (Some(_), None) if mappings.len() >= CLAIM_ROLE_MAPPINGS_MAX => Err(invalid(format!(
            "a tenant has at most {CLAIM_ROLE_MAPPINGS_MAX} claim mappings"
        ))),
        (Some(role), _) => Ok(vec![EventPayload::ClaimRoleMappingSet {
            claim,
            value,
            role,
        }]),
        (None, Some(existing)) => Ok(vec![EventPayload::ClaimRoleMappingRemoved {
            claim,
            value: existing.value.clone(),
        }]),
        (None, None) => Err(Rejection::ClaimRoleMappingNotFound { claim, value }),
    }
}

/// A trimmed optional text, `None` when empty.
fn trim(value: Option<String>) -> Option<String> {
    value
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

/// The login with its texts trimmed (empty ones absent), as the footprint and the rules see it.
fn trimmed(login: JitLogin) -> JitLogin {
    JitLogin {
        subject: login.subject.trim().to_owned(),
        email: trim(login.email),
        given_name: trim(login.given_name),
        family_name: trim(login.family_name),
        ..login
    }
}

/// An optional text (already trimmed), refused beyond `max` characters.
fn text(value: Option<String>, what: &str, max: usize) -> Result<Option<String>, Rejection> {
    match value {
        Some(value) if value.chars().count() > max || value.chars().any(char::is_control) => Err(
            invalid(format!("{what} must be at most {max} printable characters")),
        ),
        value => Ok(value),
    }
}

/// The login with its texts trimmed and checked.
fn checked(login: JitLogin) -> Result<JitLogin, Rejection> {
    let login = trimmed(login);
    let subject = text(trim(Some(login.subject)), "subject", SUBJECT_MAX)?
        .ok_or_else(|| invalid("subject (the IdP's sub claim) is required"))?;
    let email = text(login.email, "email", EMAIL_MAX)?;
    if let Some(email) = &email {
        let valid = email
            .rsplit_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
            && !email.contains(char::is_whitespace);
        if !valid {
            return Err(invalid(format!("email {email:?} is not an email address")));
        }
    }
    let claims = match login.claims {
        Value::Null => Value::Object(Map::new()),
        claims @ Value::Object(_) => claims,
        _ => return Err(invalid("claims must be a JSON object")),
    };
    Ok(JitLogin {
        subject,
        email,
        given_name: text(login.given_name, "given_name", NAME_MAX)?,
        family_name: text(login.family_name, "family_name", NAME_MAX)?,
        claims,
        ..login
    })
}

fn has_email(user: &UserRecord, email: &str) -> bool {
    user.profile
        .emails()
        .iter()
        .any(|(value, _)| value.eq_ignore_ascii_case(email))
}

/// The existing user behind the login, if any (see the module documentation for the order).
fn find_user<'a>(state: &'a State, login: &JitLogin) -> Result<Option<&'a UserRecord>, Rejection> {
    let subject = &login.subject;
    if let Some(user) = state
        .user_id_by_subject(subject)
        .and_then(|id| state.user(&id))
    {
        return Ok(Some(user));
    }
    let unlinked = |id: UserId| state.user(&id).filter(|user| user.sso.is_none());
    let holders = state.user_ids_by_external_id(subject);
    if holders.len() > 1 {
        // The client lets users share an externalId (RFC 7643 §3.1); linking one of them would
        // be a guess.
        return Err(Rejection::JitAmbiguousExternalId {
            external_id: subject.clone(),
            count: holders.len(),
        });
    }
    if let Some(user) = holders.first().copied().and_then(unlinked) {
        return Ok(Some(user));
    }
    if let Some(user) = state.user_id_by_name(&fold(subject)).and_then(unlinked) {
        return Ok(Some(user));
    }
    if let Some(email) = &login.email {
        if login.email_matches.len() > JIT_EMAIL_MATCHES_MAX {
            return Err(Rejection::JitAmbiguousEmail {
                email: email.clone(),
            });
        }
        let mut matches: Vec<&UserRecord> = login
            .email_matches
            .iter()
            .filter_map(|id| unlinked(*id))
            .filter(|user| has_email(user, email))
            .collect();
        matches.sort_by_key(|user| user.id);
        matches.dedup_by_key(|user| user.id);
        match matches.as_slice() {
            [] => {}
            // Anyone whose IdP lets them set an email claim could otherwise take over a user
            // that has not signed in through SSO yet.
            [_] if !email_verified(&login.claims) => {
                return Err(Rejection::JitEmailUnverified {
                    email: email.clone(),
                });
            }
            [user] => return Ok(Some(user)),
            _ => {
                return Err(Rejection::JitAmbiguousEmail {
                    email: email.clone(),
                });
            }
        }
    }
    Ok(None)
}

/// Whether the claims vouch for the login's email: OpenID Connect's `email_verified`, `true`
/// (or `"true"`, as some IdPs send it).
fn email_verified(claims: &Value) -> bool {
    match claims.get("email_verified") {
        Some(Value::Bool(verified)) => *verified,
        Some(Value::String(text)) => text.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

fn profile_for(login: &JitLogin, base: UserProfile) -> UserProfile {
    let mut profile = base;
    profile::set_login_names(
        &mut profile.attributes,
        login.given_name.as_deref(),
        login.family_name.as_deref(),
    );
    if let Some(email) = &login.email {
        profile::set_login_email(&mut profile.attributes, email);
    }
    profile
}

pub(super) fn decide_jit(state: &State, login: JitLogin) -> Result<Vec<EventPayload>, Rejection> {
    require_tenant(state)?;
    let login = checked(login)?;
    let claim_role = state
        .tenant
        .as_ref()
        .and_then(|tenant| role_from_claims(&tenant.claim_role_mappings, &login.claims));
    let mut events = Vec::new();
    match find_user(state, &login)? {
        Some(user) => {
            if !user.profile.active {
                return Err(Rejection::JitUserDeactivated {
                    user_name: user.profile.user_name.clone(),
                });
            }
            let user_id = user.id;
            if user.sso.is_none() {
                events.push(EventPayload::UserSsoLinked {
                    user_id,
                    subject: login.subject.clone(),
                    issuer: login_issuer(&login),
                });
            }
            let profile = normalize(
                profile_for(&login, user.profile.clone()),
                Some(&user.profile),
                username_policy(state),
            )?;
            // A login never changes the userName: the handle stays.
            events.extend(replace(user, profile, None));
            let current = user.sso.as_ref().and_then(|link| link.claim_role.clone());
            if current != claim_role {
                events.push(EventPayload::UserClaimRoleChanged {
                    user_id,
                    claim_role,
                });
            }
        }
        None => {
            let user_id = login.new_user_id;
            if state.user(&user_id).is_some() {
                return Err(Rejection::UserAlreadyExists(user_id));
            }
            let candidates = user_name_candidates(&login);
            let user_name = candidates
                .iter()
                // Free as a userName and as a handle: the name is its user's handle as well.
                .find(|name| {
                    let folded = fold(name);
                    state.user_id_by_name(&folded).is_none()
                        && state.user_id_by_derived_handle(&folded).is_none()
                })
                .cloned()
                .ok_or_else(|| Rejection::UserNameTaken {
                    user_name: candidates.first().cloned().unwrap_or_default(),
                })?;
            let base = UserProfile {
                user_name,
                external_id: None,
                active: true,
                attributes: Map::new(),
            };
            let profile = normalize(profile_for(&login, base), None, username_policy(state))?;
            events.push(EventPayload::UserProvisioned {
                user_id,
                profile,
                handle: None,
            });
            events.push(EventPayload::UserSsoLinked {
                user_id,
                subject: login.subject.clone(),
                issuer: login_issuer(&login),
            });
            if claim_role.is_some() {
                events.push(EventPayload::UserClaimRoleChanged {
                    user_id,
                    claim_role,
                });
            }
        }
    }
    // While staged, the live directory changes only through promotion, which would delete or
    // revert what a login wrote here: a login may only read.
    let staged = state
        .tenant
        .as_ref()
        .is_some_and(|tenant| tenant.staging.is_some());
    if staged && !events.is_empty() {
        return Err(Rejection::JitWhileStaged);
    }
    Ok(events)
}
