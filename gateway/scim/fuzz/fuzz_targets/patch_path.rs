//! PATCH paths: any UTF-8 text parses against the user and group schemas or is rejected with
//! `invalidPath`; a parsed path is then applied (add, replace, remove of a fixed value) to a
//! sample document, which succeeds or fails with a client error.

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use roster_scim::patch::{self, Op, Operation};
use roster_scim::schema::{GROUP_RESOURCE, USER_RESOURCE};
use serde_json::{Value, json};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for (schema, document) in [
        (&USER_RESOURCE, &*common::USER),
        (&GROUP_RESOURCE, &*common::GROUP_WITH_MEMBERS),
    ] {
        let path = match patch::parse_path(text, schema) {
            Ok(path) => path,
            Err(error) => {
                common::assert_client_error(&error, &["invalidPath"]);
                continue;
            }
        };
        for (op, value) in [
            (Op::Add, json!("x")),
            (Op::Replace, json!({"value": "x", "type": "work"})),
            (Op::Remove, Value::Null),
        ] {
            let Value::Object(mut document) = document.clone() else {
                return;
            };
            let operation = Operation {
                op,
                path: Some(path.clone()),
                value: (op != Op::Remove).then_some(value),
            };
            if let Err(error) = patch::apply(&mut document, &[operation], schema) {
                common::assert_client_error(&error, &common::CLIENT_ERRORS);
            }
        }
    }
});
