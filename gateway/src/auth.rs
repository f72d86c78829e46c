//! Bearer tokens: made random and shown once, stored as the SHA-256 of their secret part, and
//! checked in constant time. A token reads `rst_<id>_<secret>`: the id finds the stored record
//! within the tenant the request names, the secret proves possession.

use rand::RngCore;
use roster_engine::domain::{NewToken, Timestamp, TokenId, TokenRecord, TokenScope};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const PREFIX: &str = "rst_";

/// A freshly made token: the bearer string to show once, and what the directory stores.
pub struct IssuedToken {
    pub bearer: String,
    pub token: NewToken,
}

/// Makes a random token named `name` for `scope`, expiring at `expires_at` if given.
pub fn issue(name: &str, scope: TokenScope, expires_at: Option<Timestamp>) -> IssuedToken {
    let mut id = [0u8; 8];
    let mut secret = [0u8; 32];
    let mut rng = rand::rng();
    rng.fill_bytes(&mut id);
    rng.fill_bytes(&mut secret);
    let id = hex::encode(id);
    let secret = hex::encode(secret);
    IssuedToken {
        bearer: format!("{PREFIX}{id}_{secret}"),
        token: NewToken {
            id: TokenId(id),
            name: name.to_owned(),
            secret_sha256: digest(&secret),
            expires_at,
            scope,
        },
    }
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// A bearer token split into its id and secret, if it has the right shape.
#[derive(Debug, PartialEq, Eq)]
pub struct PresentedToken<'a> {
    pub id: TokenId,
    pub secret: &'a str,
}

/// Reads `Bearer <token>` (scheme case-insensitive).
pub fn parse_authorization(header: &str) -> Option<PresentedToken<'_>> {
    let (scheme, token) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    parse_token(token.trim())
}

pub fn parse_token(token: &str) -> Option<PresentedToken<'_>> {
    let rest = token.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    if id.is_empty() || secret.is_empty() {
        return None;
    }
    Some(PresentedToken {
        id: TokenId(id.to_owned()),
        secret,
    })
}

/// Whether `presented` proves possession of `record` and `record` is valid at `now`.
pub fn verify(record: &TokenRecord, presented: &PresentedToken<'_>, now: Timestamp) -> bool {
    let matches: bool = digest(presented.secret).ct_eq(&record.secret_sha256).into();
    matches && record.is_valid_at(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(issued: &IssuedToken) -> TokenRecord {
        TokenRecord {
            id: issued.token.id.clone(),
            name: issued.token.name.clone(),
            secret_sha256: issued.token.secret_sha256,
            created_at: Timestamp::from_micros(0),
            expires_at: issued.token.expires_at,
            revoked_at: None,
            last_used_at: None,
            scope: Default::default(),
        }
    }

    #[test]
    fn an_issued_token_verifies_and_a_tampered_one_does_not() {
        let issued = issue("default", TokenScope::Scim, None);
        let stored = record(&issued);
        let header = format!("Bearer {}", issued.bearer);
        let presented = parse_authorization(&header).unwrap();
        assert_eq!(presented.id, issued.token.id);
        assert!(verify(&stored, &presented, Timestamp::from_micros(1)));
        let mut forged = issued.bearer.clone();
        forged.pop();
        forged.push('x');
        let presented = parse_token(&forged).unwrap();
        assert!(!verify(&stored, &presented, Timestamp::from_micros(1)));
    }

    #[test]
    fn tokens_are_random_and_the_secret_is_not_stored() {
        let first = issue("a", TokenScope::Scim, None);
        let second = issue("a", TokenScope::Scim, None);
        assert_ne!(first.bearer, second.bearer);
        assert_ne!(first.token.id, second.token.id);
        let secret = first.bearer.rsplit('_').next().unwrap();
        assert!(!hex::encode(first.token.secret_sha256).contains(secret));
    }

    #[test]
    fn expired_tokens_do_not_verify() {
        let issued = issue("a", TokenScope::Scim, Some(Timestamp::from_micros(10)));
        let stored = record(&issued);
        let presented = parse_token(&issued.bearer).unwrap();
        assert!(verify(&stored, &presented, Timestamp::from_micros(9)));
        assert!(!verify(&stored, &presented, Timestamp::from_micros(10)));
    }

    #[test]
    fn malformed_headers_are_rejected() {
        for header in [
            "",
            "Bearer",
            "Basic abc",
            "Bearer rst_",
            "Bearer rst_abc",
            "Bearer xyz_a_b",
            "Bearer rst__x",
        ] {
            assert!(parse_authorization(header).is_none(), "{header:?}");
        }
        assert!(parse_authorization("bearer rst_a_b").is_some());
    }
}
