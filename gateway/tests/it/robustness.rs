//! Robustness of the SCIM parsers against hostile input, as properties: filters, PATCH paths and
//! PatchOp bodies never panic, and every rejection is a 400 with a client-error `scimType`. The
//! same properties as the fuzz targets in `gateway/fuzz`, with generators shaped like the grammar
//! (random tokens, unicode, deep nesting, huge numbers, unbalanced brackets and quotes, wrong JSON
//! types). No HTTP: the handlers' own steps short of the engine.

use proptest::prelude::*;
use proptest::sample::select;
use roster_gateway::scim::error::ScimError;
use roster_gateway::scim::{groups, http, users};
use roster_scim::filter::{self, CompareOp, Filter, Literal};
use roster_scim::patch::{self, Op, Operation};
use roster_scim::schema::{GROUP_RESOURCE, PATCH_OP_SCHEMA, USER_RESOURCE};
use serde_json::{Map, Value, json};

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// Every `scimType` a rejected filter, path or PatchOp may carry.
const CLIENT_ERRORS: [&str; 6] = [
    "invalidFilter",
    "invalidPath",
    "invalidValue",
    "invalidSyntax",
    "noTarget",
    "mutability",
];

fn check_client_error(error: &ScimError, allowed: &[&str]) -> Result<(), TestCaseError> {
    prop_assert_eq!(error.status.as_u16(), 400, "{:?}", error);
    prop_assert!(
        error
            .scim_type
            .is_some_and(|scim_type| allowed.contains(&scim_type)),
        "{:?}",
        error
    );
    Ok(())
}

fn user() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "externalId": "Ext-1",
        "userName": "bjensen@example.com",
        "active": true,
        "name": {"familyName": "Jensen", "givenName": "Barbara"},
        "displayName": "Babs Jensen",
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "phoneNumbers": [{"value": "+1 555 555 5555", "type": "mobile"}],
        ENTERPRISE: {
            "employeeNumber": "701984",
            "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}
        },
        "meta": {
            "resourceType": "User",
            "created": "2024-01-02T03:04:05Z",
            "lastModified": "2024-02-02T03:04:05.5Z",
            "version": "W/\"3\""
        }
    })
}

/// A group as the PATCH handler renders it (without members).
fn group() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "id": "e9e30dba-f08f-4109-8486-d5c6a331660a",
        "displayName": "Tour Guides",
        "meta": {"resourceType": "Group", "created": "2024-01-02T03:04:05Z", "version": "W/\"7\""}
    })
}

fn group_with_members() -> Value {
    let mut group = group();
    group["members"] = json!([
        {"value": "2819c223-7f76-453a-919d-413861904646", "display": "bjensen", "type": "User"},
        {"value": "902c246b-6245-4190-8e05-00816be7344a", "display": "mandy", "type": "User"}
    ]);
    group
}

// ---- generators ----------------------------------------------------------------------------

fn any_case(text: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    (text, any::<u8>()).prop_map(|(text, mode)| match mode % 4 {
        0 => text.to_uppercase(),
        1 => text.to_lowercase(),
        _ => text,
    })
}

/// Syntactically valid attribute paths: known, URN-qualified, unknown.
fn attr_path() -> impl Strategy<Value = String> {
    let known = select(vec![
        "userName",
        "id",
        "externalId",
        "active",
        "title",
        "displayName",
        "name.givenName",
        "name.familyName",
        "emails",
        "emails.value",
        "emails.type",
        "phoneNumbers.value",
        "members",
        "members.value",
        "members.display",
        "groups.display",
        "meta.created",
        "meta.lastModified",
        "$ref",
        "urn:ietf:params:scim:schemas:core:2.0:User:userName",
        "urn:ietf:params:scim:schemas:core:2.0:Group:displayName",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
        "urn:nosuch:schema:attr",
    ])
    .prop_map(str::to_owned);
    prop_oneof![
        4 => any_case(known),
        1 => "[a-zA-Z][a-zA-Z0-9_-]{0,8}(\\.[a-zA-Z][a-zA-Z0-9]{0,5})?",
    ]
}

/// Multi-valued complex attributes (and some that are not), for value filters.
fn value_path_attr() -> impl Strategy<Value = String> {
    any_case(
        select(vec![
            "emails",
            "members",
            "phoneNumbers",
            "addresses",
            "roles",
            "groups",
            "name",
            "userName",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
        ])
        .prop_map(str::to_owned),
    )
}

fn sub_attr() -> impl Strategy<Value = String> {
    any_case(
        select(vec![
            "value", "type", "display", "primary", "$ref", "nosuch",
        ])
        .prop_map(str::to_owned),
    )
}

fn compare_op() -> impl Strategy<Value = String> {
    any_case(
        select(vec!["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"]).prop_map(str::to_owned),
    )
}

/// Literal values as they appear in a filter: quoted (any unicode, escaped), bare words,
/// keywords, and numbers of every size.
fn literal_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => any::<String>().prop_map(|text| Value::String(text).to_string()),
        1 => select(vec![
            "\"bjensen@example.com\"", "\"work\"", "\"2024-01-02T03:04:05Z\"",
            "\"2819c223-7f76-453a-919d-413861904646\"", "\"\\u00e9\\ud83d\\ude00\"", "\"\"",
        ]).prop_map(str::to_owned),
        1 => "[a-zA-Z0-9@._+-]{1,12}",
        1 => any_case(select(vec!["true", "false", "null"]).prop_map(str::to_owned)),
        1 => any::<f64>().prop_map(|number| number.to_string()),
        1 => any::<i64>().prop_map(|number| number.to_string()),
        1 => select(vec!["1e999", "-1e-999", "99999999999999999999999999999", "-0", "NaN", "inf", "0x10", "1e308"])
            .prop_map(str::to_owned),
    ]
}

/// Well-formed filters, nested well under the parser's depth limit.
fn filter_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        3 => (attr_path(), compare_op(), literal_text()).prop_map(|(path, op, value)| format!("{path} {op} {value}")),
        1 => (attr_path(), any_case(Just("pr".to_owned()))).prop_map(|(path, pr)| format!("{path} {pr}")),
    ];
    leaf.prop_recursive(5, 48, 4, |inner| {
        prop_oneof![
            (
                inner.clone(),
                any_case(Just("and".to_owned())),
                inner.clone()
            )
                .prop_map(|(left, and, right)| format!("{left} {and} {right}")),
            (
                inner.clone(),
                any_case(Just("or".to_owned())),
                inner.clone()
            )
                .prop_map(|(left, or, right)| format!("{left} {or} {right}")),
            (inner.clone(), any::<bool>()).prop_map(|(inner, space)| if space {
                format!("not ({inner})")
            } else {
                format!("NOT({inner})")
            }),
            inner.clone().prop_map(|inner| format!("({inner})")),
            (value_path_attr(), inner.clone()).prop_map(|(path, inner)| format!("{path}[{inner}]")),
            (
                value_path_attr(),
                inner,
                sub_attr(),
                compare_op(),
                literal_text()
            )
                .prop_map(|(path, inner, sub, op, value)| format!(
                    "{path}[{inner}].{sub} {op} {value}"
                )),
        ]
    })
}

fn hostile_filter_token() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => select(vec![
            "(", ")", "[", "]", "\"", "\\", "\\\"", "not", "NOT(", "not (", "and", "or", "pr", "eq", "Ne",
            "co", "sw", "ew", "gt", "ge", "lt", "le", "zz", ".value", ".", "..", ":", "urn:", "urn:x:",
            "urn:é:a", "emails", "members", "userName", "name.givenName", "$ref", "true", "null",
            "\"\\ud800\"", "\"\\u0000\"", "\"unterminated", "é", "abcé", "ab€", "\u{feff}", "\u{3000}",
            "\u{1F600}", "emails[type eq \"work\"]", ENTERPRISE, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
        ]).prop_map(str::to_owned),
        1 => any::<String>(),
        1 => "[0-9]{1,40}(\\.[0-9]{1,40})?(e[+-]?[0-9]{1,5})?",
        1 => literal_text(),
        1 => attr_path(),
    ]
}

/// Filters that are mostly wrong: token soup, unbalanced or very deep nesting, long chains,
/// truncated or spliced well-formed filters, and arbitrary text.
fn hostile_filter() -> impl Strategy<Value = String> {
    let separator = select(vec![" ", "", "  ", "\t", "\n", "\u{3000}"]);
    prop_oneof![
        3 => prop::collection::vec((hostile_filter_token(), separator), 1..24).prop_map(|tokens| {
            tokens.into_iter().map(|(token, separator)| token + separator).collect()
        }),
        1 => (0usize..100, 0usize..100, filter_text()).prop_map(|(open, close, inner)| {
            format!("{}{inner}{}", "(".repeat(open), ")".repeat(close))
        }),
        1 => (0usize..60, filter_text()).prop_map(|(depth, inner)| {
            format!("{}{inner}{}", "not (".repeat(depth), ")".repeat(depth))
        }),
        1 => (0usize..60, 0usize..60).prop_map(|(open, close)| {
            format!("{}value pr{}", "emails[".repeat(open), "]".repeat(close))
        }),
        1 => (1usize..2_000, select(vec![" and ", " or ", " AND "])).prop_map(|(length, joiner)| {
            vec!["a pr"; length].join(joiner)
        }),
        1 => (filter_text(), any::<prop::sample::Index>()).prop_map(|(text, cut)| {
            let boundaries: Vec<usize> = text.char_indices().map(|(index, _)| index).collect();
            let cut = boundaries.get(cut.index(boundaries.len().max(1))).copied().unwrap_or(0);
            text[..cut].to_owned()
        }),
        1 => (filter_text(), filter_text(), any::<prop::sample::Index>()).prop_map(|(host, guest, at)| {
            let boundaries: Vec<usize> = host.char_indices().map(|(index, _)| index).collect();
            let at = boundaries.get(at.index(boundaries.len().max(1))).copied().unwrap_or(0);
            format!("{}{guest}{}", &host[..at], &host[at..])
        }),
        1 => any::<String>(),
        1 => "\\PC{0,64}",
    ]
}

fn path_text() -> impl Strategy<Value = String> {
    let head = prop_oneof![
        4 => attr_path(),
        1 => any_case(Just(ENTERPRISE.to_owned())),
        1 => any_case(Just("urn:ietf:params:scim:schemas:core:2.0:Group".to_owned())),
        1 => "\\PC{0,12}",
    ];
    let fragment = select(vec![
        "emails",
        "members",
        "[",
        "]",
        "type eq \"work\"",
        "value eq \"x\"",
        ".value",
        ".",
        "\"",
        "\\",
        "]\"",
        "\"]",
        " ",
        "é",
        "urn:",
        ":manager",
        ENTERPRISE,
        "not (",
        ")",
        "[[",
        "]]",
    ]);
    prop_oneof![
        3 => (value_path_attr(), prop_oneof![filter_text(), hostile_filter()], prop::option::of(sub_attr()))
            .prop_map(|(head, filter, sub)| match sub {
                Some(sub) => format!("{head}[{filter}].{sub}"),
                None => format!("{head}[{filter}]"),
            }),
        2 => head,
        2 => prop::collection::vec(fragment, 1..12).prop_map(|fragments| fragments.concat()),
        1 => any::<String>(),
    ]
}

/// JSON strings a client might send: member ids, booleans as text, dotted and URN keys, unicode.
fn json_string() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => select(vec![
            "2819c223-7f76-453a-919d-413861904646", "902c246b-6245-4190-8e05-00816be7344a", "True",
            "false", "", "work", "x@example.com", "2024-01-02T03:04:05Z", "42", "1e999",
        ]).prop_map(str::to_owned),
        1 => any::<String>(),
        1 => path_text(),
    ]
}

fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => any_case(select(vec![
            "value", "display", "type", "primary", "id", "schemas", "meta", "userName", "active",
            "displayName", "externalId", "members", "emails", "name", "name.givenName", "givenName",
            "groups", "password", "manager", "employeeNumber", ENTERPRISE,
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
            "urn:ietf:params:scim:schemas:core:2.0:User:userName",
            "emails[type eq \"work\"].value", "$ref",
        ]).prop_map(str::to_owned)),
        1 => any::<String>(),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        json_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 40, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((json_key(), inner), 0..6)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

fn operation_json() -> impl Strategy<Value = Value> {
    let op = prop_oneof![
        12 => any_case(select(vec!["add", "replace", "remove"]).prop_map(str::to_owned)).prop_map(Value::String),
        1 => json_value(),
    ];
    let path = prop_oneof![
        4 => attr_path().prop_map(Value::String),
        2 => (value_path_attr(), filter_text(), prop::option::of(sub_attr())).prop_map(|(head, filter, sub)| {
            Value::String(match sub {
                Some(sub) => format!("{head}[{filter}].{sub}"),
                None => format!("{head}[{filter}]"),
            })
        }),
        2 => path_text().prop_map(Value::String),
        1 => json_value(),
    ];
    let key = |name: &'static str| any_case(Just(name.to_owned()));
    prop_oneof![
        16 => (
            prop::option::weighted(0.97, (key("op"), op)),
            prop::option::weighted(0.7, (key("path"), path)),
            prop::option::weighted(0.8, (key("value"), json_value())),
        )
            .prop_map(|(op, path, value)| {
                Value::Object([op, path, value].into_iter().flatten().collect::<Map<_, _>>())
            }),
        1 => json_value(),
    ]
}

fn patch_body() -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => prop::collection::vec(operation_json(), 0..5)
            .prop_map(|operations| json!({"schemas": [PATCH_OP_SCHEMA], "Operations": operations})),
        1 => json_value().prop_map(|operations| json!({"operations": operations})),
        1 => json_value(),
    ]
}

/// Body bytes: a PatchOp serialized, then cut short or with bytes spliced in.
fn body_bytes() -> impl Strategy<Value = Vec<u8>> {
    (
        patch_body(),
        any::<prop::sample::Index>(),
        prop::collection::vec(any::<u8>(), 0..8),
        0u8..3,
    )
        .prop_map(|(body, at, noise, mode)| {
            let mut bytes = body.to_string().into_bytes();
            let at = at.index(bytes.len() + 1);
            match mode {
                0 => bytes.truncate(at),
                1 => {
                    bytes.splice(at..at, noise);
                }
                _ => {}
            }
            bytes
        })
}

// ---- a printer for the round trip ----------------------------------------------------------

fn op_text(op: CompareOp) -> &'static str {
    match op {
        CompareOp::Eq => "eq",
        CompareOp::Ne => "ne",
        CompareOp::Co => "co",
        CompareOp::Sw => "sw",
        CompareOp::Ew => "ew",
        CompareOp::Gt => "gt",
        CompareOp::Ge => "ge",
        CompareOp::Lt => "lt",
        CompareOp::Le => "le",
    }
}

/// A filter back in filter syntax, parenthesized only where precedence needs it.
fn render(filter: &Filter) -> String {
    match filter {
        Filter::Compare { path, op, value } => {
            let value = match value {
                Literal::Null => "null".to_owned(),
                Literal::Bool(flag) => flag.to_string(),
                Literal::Number(number) => number.to_string(),
                Literal::String(text) => Value::String(text.clone()).to_string(),
            };
            format!("{path} {} {value}", op_text(*op))
        }
        Filter::Present(path) => format!("{path} pr"),
        Filter::Or(left, right) => format!(
            "{} or {}",
            render(left),
            grouped(right, matches!(**right, Filter::Or(..)))
        ),
        Filter::And(left, right) => format!(
            "{} and {}",
            grouped(left, matches!(**left, Filter::Or(..))),
            grouped(right, matches!(**right, Filter::Or(..) | Filter::And(..)))
        ),
        Filter::Not(inner) => format!("not ({})", render(inner)),
        Filter::ValuePath { path, filter } => format!("{path}[{}]", render(filter)),
    }
}

fn grouped(filter: &Filter, needs_parentheses: bool) -> String {
    if needs_parentheses {
        format!("({})", render(filter))
    } else {
        render(filter)
    }
}

// ---- properties ----------------------------------------------------------------------------

fn check_filter(text: &str) -> Result<(), TestCaseError> {
    let parsed = match filter::parse(text) {
        Ok(parsed) => parsed,
        Err(error) => return check_client_error(&error, &["invalidFilter"]),
    };
    for (schema, document) in [
        (&USER_RESOURCE, user()),
        (&GROUP_RESOURCE, group_with_members()),
    ] {
        if let Err(error) = filter::validate(&parsed, schema) {
            check_client_error(&error, &["invalidFilter"])?;
        }
        let _ = filter::matches(&parsed, &document, schema);
    }
    Ok(())
}

fn check_path(text: &str) -> Result<(), TestCaseError> {
    for (schema, document) in [
        (&USER_RESOURCE, user()),
        (&GROUP_RESOURCE, group_with_members()),
    ] {
        let path = match patch::parse_path(text, schema) {
            Ok(path) => path,
            Err(error) => {
                check_client_error(&error, &["invalidPath"])?;
                continue;
            }
        };
        for (op, value) in [
            (Op::Add, Some(json!("x"))),
            (Op::Replace, Some(json!({"value": "x", "type": "work"}))),
            (Op::Remove, None),
        ] {
            let Value::Object(mut document) = document.clone() else {
                return Err(TestCaseError::fail("sample documents are objects"));
            };
            let operation = Operation {
                op,
                path: Some(path.clone()),
                value,
            };
            if let Err(error) = patch::apply(&mut document, &[operation], schema) {
                check_client_error(&error, &CLIENT_ERRORS)?;
            }
        }
    }
    Ok(())
}

fn check_patch(body: &Value) -> Result<(), TestCaseError> {
    if let Err(error) = users::dry_run_patch(body, user(), true) {
        check_client_error(&error, &CLIENT_ERRORS)?;
    }
    if let Err(error) = groups::dry_run_patch(body, group()) {
        check_client_error(&error, &CLIENT_ERRORS)?;
    }
    Ok(())
}

proptest! {
    #[test]
    fn well_formed_filters_parse_and_evaluate(text in filter_text()) {
        let parsed = filter::parse(&text);
        prop_assert!(parsed.is_ok(), "{text:?}: {parsed:?}");
        check_filter(&text)?;
    }

    #[test]
    fn filters_round_trip_through_a_printer(text in filter_text()) {
        let Ok(parsed) = filter::parse(&text) else {
            return Err(TestCaseError::fail(format!("{text:?} did not parse")));
        };
        let printed = render(&parsed);
        prop_assert_eq!(filter::parse(&printed), Ok(parsed), "{:?} printed as {:?}", text, printed);
    }

    #[test]
    fn hostile_filters_never_panic_and_fail_as_invalid_filter(text in hostile_filter()) {
        check_filter(&text)?;
    }

    #[test]
    fn attribute_paths_round_trip_through_display(text in prop_oneof![attr_path(), "\\PC{0,24}"]) {
        if let Ok(path) = filter::parse_attr_path(&text) {
            prop_assert_eq!(filter::parse_attr_path(&path.to_string()), Ok(path));
        }
    }

    #[test]
    fn patch_paths_never_panic_and_fail_as_invalid_path(text in path_text()) {
        check_path(&text)?;
    }

    #[test]
    fn patch_bodies_never_panic_and_fail_as_client_errors(body in patch_body()) {
        check_patch(&body)?;
    }

    #[test]
    fn patch_body_bytes_never_panic_and_fail_as_client_errors(bytes in body_bytes()) {
        match http::parse_json_body(&bytes) {
            Ok(body) => check_patch(&body)?,
            Err(error) => check_client_error(&error, &["invalidSyntax"])?,
        }
    }
}
