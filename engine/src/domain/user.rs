//! A managed user's profile and the rules it must follow: Hugging Face's username rules,
//! case-insensitive `userName` identity, and the attributes roster never stores (`password`).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::profile;
pub use super::profile::Attributes;

/// What an identity provider says about a user.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserProfile {
    pub user_name: String,
    pub external_id: Option<String>,
    pub active: bool,
    pub attributes: Attributes,
}

/// The username rule a candidate breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserNameRule {
    Length,
    Characters,
    LeadingOrTrailingDash,
    DoubleDash,
    DigitsOnly,
}

impl fmt::Display for UserNameRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UserNameRule::Length => "it must be 2 to 42 characters long",
            UserNameRule::Characters => "only letters, digits and '-' are allowed",
            UserNameRule::LeadingOrTrailingDash => "it must not start or end with '-'",
            UserNameRule::DoubleDash => "'--' (double dash) is not allowed",
            UserNameRule::DigitsOnly => "it must not be made of digits only",
        })
    }
}

pub const USER_NAME_MIN: usize = 2;
pub const USER_NAME_MAX: usize = 42;

/// Checks Hugging Face's username rules; returns the first rule broken.
pub fn check_user_name(user_name: &str) -> Result<(), UserNameRule> {
    let length = user_name.chars().count();
    if !user_name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(UserNameRule::Characters);
    }
    if !(USER_NAME_MIN..=USER_NAME_MAX).contains(&length) {
        return Err(UserNameRule::Length);
    }
    if user_name.starts_with('-') || user_name.ends_with('-') {
        return Err(UserNameRule::LeadingOrTrailingDash);
    }
    if user_name.contains("--") {
        return Err(UserNameRule::DoubleDash);
    }
    if user_name.chars().all(|c| c.is_ascii_digit()) {
        return Err(UserNameRule::DigitsOnly);
    }
    Ok(())
}

/// The form under which names are unique: userName and group displayName compare
/// case-insensitively.
pub fn fold(name: &str) -> String {
    name.to_lowercase()
}

impl UserProfile {
    /// The addresses in `emails`, with their `type` when given, for indexing.
    pub fn emails(&self) -> Vec<(String, Option<String>)> {
        profile::emails(&self.attributes)
    }

    /// Removes what roster never stores: a `password` at any depth, URN-qualified or not (an
    /// extension may carry one too).
    pub(crate) fn without_secrets(mut self) -> Self {
        profile::strip_passwords(&mut self.attributes);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_dropped_at_any_depth_and_under_any_schema() {
        let attributes = serde_json::json!({
            "Password": "a",
            "urn:ietf:params:scim:schemas:core:2.0:User:password": "b",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:PASSWORD": "c",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                "department": "R&D", "password": "d", "manager": {"value": "m", "password": "e"}
            },
            "urn:example:custom": [{"password": "f", "kept": 1}],
            "passwordHint": "kept: not a password",
        });
        let serde_json::Value::Object(attributes) = attributes else {
            unreachable!()
        };
        let profile = UserProfile {
            user_name: "bob".into(),
            external_id: None,
            active: true,
            attributes,
        }
        .without_secrets();
        let text = serde_json::to_string(&profile.attributes).unwrap();
        for secret in ["\"a\"", "\"b\"", "\"c\"", "\"d\"", "\"e\"", "\"f\""] {
            assert!(!text.contains(secret), "{secret} survived: {text}");
        }
        assert!(
            text.contains("R&D") && text.contains("\"kept\":1") && text.contains("passwordHint")
        );
    }

    #[test]
    fn valid_user_names_pass() {
        for name in [
            "ab",
            "alice",
            "Alice-Smith",
            "a1",
            "00ujl29u0le5T6Aj10h7",
            &"x".repeat(42),
        ] {
            assert_eq!(check_user_name(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn each_user_name_rule_is_named() {
        assert_eq!(check_user_name("a"), Err(UserNameRule::Length));
        assert_eq!(check_user_name(&"x".repeat(43)), Err(UserNameRule::Length));
        assert_eq!(check_user_name("a.b"), Err(UserNameRule::Characters));
        assert_eq!(check_user_name("a_b"), Err(UserNameRule::Characters));
        assert_eq!(check_user_name("jörg"), Err(UserNameRule::Characters));
        assert_eq!(
            check_user_name("-ab"),
            Err(UserNameRule::LeadingOrTrailingDash)
        );
        assert_eq!(
            check_user_name("ab-"),
            Err(UserNameRule::LeadingOrTrailingDash)
        );
        assert_eq!(check_user_name("a--b"), Err(UserNameRule::DoubleDash));
        assert_eq!(check_user_name("12345"), Err(UserNameRule::DigitsOnly));
    }
}
