//! Filters (`?filter=`): any UTF-8 text parses or is rejected with `invalidFilter`; a parsed
//! filter validates against the user and group schemas or is rejected likewise, and evaluates
//! against sample resources without panicking (validated or not).

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use roster_scim::filter;
use roster_scim::schema::{GROUP_RESOURCE, USER_RESOURCE};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = match filter::parse(text) {
        Ok(parsed) => parsed,
        Err(error) => return common::assert_client_error(&error, &["invalidFilter"]),
    };
    for (schema, document) in [
        (&USER_RESOURCE, &*common::USER),
        (&GROUP_RESOURCE, &*common::GROUP_WITH_MEMBERS),
    ] {
        if let Err(error) = filter::validate(&parsed, schema) {
            common::assert_client_error(&error, &["invalidFilter"]);
        }
        let _ = filter::matches(&parsed, document, schema);
    }
});
