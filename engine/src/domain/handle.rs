//! Platform handles and userNames. SCIM `userName` is the IdP's identifier: any non-empty text
//! within its limits, unique per tenant case-insensitively, kept as sent. The **handle** is the
//! username a platform shows, under Hugging Face's rules (2–42 letters, digits and single inner
//! `-`, not digits only), also unique per tenant case-insensitively. A tenant's
//! [`UsernamePolicy`] says how one follows from the other: `strict` (userName must already be a
//! valid handle, and is the handle) or `derive` (the handle is derived from userName here, the
//! same derivation just-in-time provisioning uses for the usernames it makes).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::ids::UserId;

/// How a tenant's handles follow from userNames.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UsernamePolicy {
    /// userName must follow the handle rules, and the handle is the userName.
    #[default]
    Strict,
    /// Any userName; the handle is derived from it.
    Derive,
}

impl UsernamePolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            UsernamePolicy::Strict => "strict",
            UsernamePolicy::Derive => "derive",
        }
    }
}

impl UsernamePolicy {
    /// A policy as messages carry it (events, Admin requests): empty (or blank) means the
    /// default, `strict`.
    pub fn from_message(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        text.parse()
    }
}

impl fmt::Display for UsernamePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for UsernamePolicy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "strict" => Ok(UsernamePolicy::Strict),
            "derive" => Ok(UsernamePolicy::Derive),
            other => Err(format!(
                "unknown username policy {other:?}: use strict or derive"
            )),
        }
    }
}

/// The handle rule a candidate breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandleRule {
    Length,
    Characters,
    LeadingOrTrailingDash,
    DoubleDash,
    DigitsOnly,
}

impl fmt::Display for HandleRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HandleRule::Length => "it must be 2 to 42 characters long",
            HandleRule::Characters => "only letters, digits and '-' are allowed",
            HandleRule::LeadingOrTrailingDash => "it must not start or end with '-'",
            HandleRule::DoubleDash => "'--' (double dash) is not allowed",
            HandleRule::DigitsOnly => "it must not be made of digits only",
        })
    }
}

pub const HANDLE_MIN: usize = 2;
pub const HANDLE_MAX: usize = 42;
/// Most characters of a userName.
pub const USER_NAME_MAX_CHARS: usize = 256;

/// Checks Hugging Face's username rules; returns the first rule broken.
pub fn check_handle(handle: &str) -> Result<(), HandleRule> {
    let length = handle.chars().count();
    if !handle
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(HandleRule::Characters);
    }
    if !(HANDLE_MIN..=HANDLE_MAX).contains(&length) {
        return Err(HandleRule::Length);
    }
    if handle.starts_with('-') || handle.ends_with('-') {
        return Err(HandleRule::LeadingOrTrailingDash);
    }
    if handle.contains("--") {
        return Err(HandleRule::DoubleDash);
    }
    if handle.chars().all(|c| c.is_ascii_digit()) {
        return Err(HandleRule::DigitsOnly);
    }
    Ok(())
}

/// Checks a userName (already trimmed): not empty, at most [`USER_NAME_MAX_CHARS`] characters,
/// no control characters. Returns what is wrong.
pub fn check_user_name(user_name: &str) -> Result<(), &'static str> {
    if user_name.is_empty() {
        return Err("it must not be empty");
    }
    if user_name.chars().count() > USER_NAME_MAX_CHARS {
        return Err("it must be at most 256 characters long");
    }
    if user_name.chars().any(char::is_control) {
        return Err("control characters are not allowed");
    }
    Ok(())
}

/// A common Latin letter without its accent.
fn unaccented(c: char) -> Option<&'static str> {
    Some(match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' => "a",
        'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' | 'Ā' => "A",
        'ç' | 'ć' | 'č' => "c",
        'Ç' | 'Ć' | 'Č' => "C",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ę' | 'ě' => "e",
        'È' | 'É' | 'Ê' | 'Ë' | 'Ē' | 'Ę' | 'Ě' => "E",
        'ì' | 'í' | 'î' | 'ï' | 'ī' => "i",
        'Ì' | 'Í' | 'Î' | 'Ï' | 'Ī' => "I",
        'ñ' | 'ń' | 'ň' => "n",
        'Ñ' | 'Ń' | 'Ň' => "N",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' => "o",
        'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' | 'Ø' | 'Ō' => "O",
        'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' => "u",
        'Ù' | 'Ú' | 'Û' | 'Ü' | 'Ū' | 'Ů' => "U",
        'ý' | 'ÿ' => "y",
        'Ý' => "Y",
        'ś' | 'š' => "s",
        'Ś' | 'Š' => "S",
        'ź' | 'ż' | 'ž' => "z",
        'Ź' | 'Ż' | 'Ž' => "Z",
        'ł' => "l",
        'Ł' => "L",
        'ř' => "r",
        'Ř' => "R",
        'ß' => "ss",
        'æ' => "ae",
        'Æ' => "AE",
        'œ' => "oe",
        'Œ' => "OE",
        _ => return None,
    })
}

/// `text` made of letters, digits and single inner dashes, at most `max` characters: accents
/// folded, every other run of characters one `-`.
pub(super) fn sanitize(text: &str, max: usize) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if let Some(plain) = unaccented(c) {
            out.push_str(plain);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let mut out: String = out.trim_matches('-').chars().take(max).collect();
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// A handle made of `source` when it can be: sanitized, digits only prefixed with `user-`.
pub(super) fn handle_from(source: &str) -> Option<String> {
    let mut candidate = sanitize(source, HANDLE_MAX);
    if !candidate.is_empty() && candidate.chars().all(|c| c.is_ascii_digit()) {
        candidate = sanitize(&format!("user-{candidate}"), HANDLE_MAX);
    }
    check_handle(&candidate).is_ok().then_some(candidate)
}

/// The local part of an email-shaped value (without a `+tag`); the value itself otherwise.
pub(super) fn local_part(value: &str) -> &str {
    match value.rsplit_once('@') {
        Some((local, domain)) if !local.is_empty() && !domain.is_empty() => {
            local.split('+').next().unwrap_or(local)
        }
        _ => value,
    }
}

/// The handle a userName derives to when nothing else holds it: from the local part of an
/// email-shaped userName, else the whole userName; `user` when nothing usable is left.
pub fn base_handle(user_name: &str) -> String {
    handle_from(local_part(user_name))
        .or_else(|| handle_from(user_name))
        .unwrap_or_else(|| "user".to_owned())
}

/// Numeric suffixes tried after the base handle itself (`-2` … `-9`).
const NUMERIC_SUFFIXES: std::ops::RangeInclusive<u32> = 2..=9;

/// `base` with `-suffix`, shortened so that the whole stays within the length rule.
fn with_suffix(base: &str, suffix: &str) -> String {
    let keep = HANDLE_MAX.saturating_sub(suffix.len() + 1);
    let mut stem: String = base.chars().take(keep).collect();
    while stem.ends_with('-') {
        stem.pop();
    }
    format!("{stem}-{suffix}")
}

/// The handles a user may get, in order of preference: `base`, then with `-2` … `-9`, then with
/// a suffix taken from the user's id (unique in practice).
pub fn handle_candidates(base: &str, user_id: UserId) -> Vec<String> {
    let id = user_id.0.simple().to_string();
    let id_suffix = &id[id.len() - 8..];
    std::iter::once(base.to_owned())
        .chain(NUMERIC_SUFFIXES.map(|n| with_suffix(base, &n.to_string())))
        .chain(std::iter::once(with_suffix(base, id_suffix)))
        .filter(|name| check_handle(name).is_ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_handles_pass() {
        for name in [
            "ab",
            "alice",
            "Alice-Smith",
            "a1",
            "00ujl29u0le5T6Aj10h7",
            &"x".repeat(42),
        ] {
            assert_eq!(check_handle(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn each_handle_rule_is_named() {
        assert_eq!(check_handle("a"), Err(HandleRule::Length));
        assert_eq!(check_handle(&"x".repeat(43)), Err(HandleRule::Length));
        assert_eq!(check_handle("a.b"), Err(HandleRule::Characters));
        assert_eq!(check_handle("a_b"), Err(HandleRule::Characters));
        assert_eq!(check_handle("jörg"), Err(HandleRule::Characters));
        assert_eq!(check_handle("-ab"), Err(HandleRule::LeadingOrTrailingDash));
        assert_eq!(check_handle("ab-"), Err(HandleRule::LeadingOrTrailingDash));
        assert_eq!(check_handle("a--b"), Err(HandleRule::DoubleDash));
        assert_eq!(check_handle("12345"), Err(HandleRule::DigitsOnly));
    }

    #[test]
    fn user_names_are_any_printable_text_within_the_limit() {
        for name in [
            "alice.smith@acme.com",
            "Test_User_0f6c4a2e-1b7d-4c8e-9f00-123456789abc",
            "Zoë Ørsted",
            "张伟",
            "a",
        ] {
            assert_eq!(check_user_name(name), Ok(()), "{name}");
        }
        assert!(check_user_name("").is_err());
        assert!(check_user_name("a\u{0}b").is_err());
        assert!(check_user_name("a\nb").is_err());
        assert!(check_user_name(&"x".repeat(257)).is_err());
    }

    #[test]
    fn handles_derive_from_what_idps_send() {
        assert_eq!(base_handle("alice.smith@acme.com"), "alice-smith");
        assert_eq!(base_handle("alice@contoso.com"), "alice");
        assert_eq!(
            base_handle("Test_User_0f6c4a2e-1b7d-4c8e-9f00-123456789abc"),
            "Test-User-0f6c4a2e-1b7d-4c8e-9f00-12345678"
        );
        assert_eq!(base_handle("jörg.müller+work@x.de"), "jorg-muller");
        assert_eq!(base_handle("Zoë Ørsted"), "Zoe-Orsted");
        assert_eq!(base_handle("12345"), "user-12345");
        assert_eq!(base_handle("张伟"), "user");
        // A valid handle derives to itself.
        assert_eq!(base_handle("Alice-Smith"), "Alice-Smith");
        // An at sign without a local part is not an email: the whole value is used.
        assert_eq!(base_handle("@team"), "team");
        for name in [
            "alice.smith@acme.com",
            "Test_User_x",
            "Zoë",
            "张伟",
            "12345",
        ] {
            assert_eq!(check_handle(&base_handle(name)), Ok(()), "{name}");
        }
    }

    #[test]
    fn collisions_get_numbers_then_a_suffix_from_the_id() {
        let id = UserId(uuid::Uuid::from_u128(0xabcdef12));
        let candidates = handle_candidates("alice", id);
        assert_eq!(candidates[0], "alice");
        assert_eq!(candidates[1], "alice-2");
        assert_eq!(candidates[8], "alice-9");
        assert_eq!(candidates[9], "alice-abcdef12");
        let long = handle_candidates(&"a".repeat(42), id);
        for name in &long {
            assert_eq!(check_handle(name), Ok(()), "{name}");
        }
        assert_eq!(long[1], format!("{}-2", "a".repeat(40)));
    }

    #[test]
    fn policies_read_and_print() {
        assert_eq!("derive".parse(), Ok(UsernamePolicy::Derive));
        assert_eq!(" Strict ".parse(), Ok(UsernamePolicy::Strict));
        assert!("loose".parse::<UsernamePolicy>().is_err());
        assert_eq!(UsernamePolicy::default().to_string(), "strict");
    }
}
