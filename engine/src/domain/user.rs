//! A managed user's profile: case-insensitive `userName` identity and the attributes roster never
//! stores (`password`). The userName and handle rules are `handle`'s.

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

    /// The address that names the user to other systems: the one marked `primary`, else the
    /// `work` one, else the first.
    pub fn primary_email(&self) -> Option<String> {
        let Some(serde_json::Value::Array(emails)) = self.attributes.get("emails") else {
            return None;
        };
        let value = |email: &serde_json::Value| {
            email
                .get("value")
                .and_then(|value| value.as_str())
                .filter(|value| !value.is_empty())
                .map(str::to_owned)
        };
        let flagged = |test: &dyn Fn(&serde_json::Value) -> bool| {
            emails.iter().filter(|email| test(email)).find_map(value)
        };
        flagged(&|email| email.get("primary") == Some(&serde_json::Value::Bool(true)))
            .or_else(|| {
                flagged(&|email| email.get("type").and_then(|t| t.as_str()) == Some("work"))
            })
            .or_else(|| emails.iter().find_map(value))
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
    #[test]
    fn the_primary_email_is_the_flagged_one_then_work_then_the_first() {
        let profile = |emails: serde_json::Value| UserProfile {
            user_name: "ada".into(),
            external_id: None,
            active: true,
            attributes: [("emails".to_owned(), emails)].into_iter().collect(),
        };
        let emails = serde_json::json!([
            {"value": "a@home.example", "type": "home"},
            {"value": "a@work.example", "type": "work"},
            {"value": "a@main.example", "primary": true},
        ]);
        assert_eq!(
            profile(emails).primary_email().as_deref(),
            Some("a@main.example")
        );
        let emails = serde_json::json!([
            {"value": "a@home.example", "type": "home"},
            {"value": "a@work.example", "type": "work"},
        ]);
        assert_eq!(
            profile(emails).primary_email().as_deref(),
            Some("a@work.example")
        );
        let emails = serde_json::json!([{"value": "a@home.example"}]);
        assert_eq!(
            profile(emails).primary_email().as_deref(),
            Some("a@home.example")
        );
        assert_eq!(profile(serde_json::json!([])).primary_email(), None);
    }

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
}
