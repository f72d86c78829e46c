//! PATCH bodies: any bytes go through the handlers' own steps short of the engine (the body read
//! as JSON, the PatchOp parsed, the operations applied to a sample user and a sample group, the
//! result read back as a profile); each succeeds or fails with a 400 client error.

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use roster_gateway::scim::{groups, http, users};

fuzz_target!(|data: &[u8]| {
    let body = match http::parse_json_body(data) {
        Ok(body) => body,
        Err(error) => return common::assert_client_error(&error, &["invalidSyntax"]),
    };
    if let Err(error) = users::dry_run_patch(&body, common::USER.clone(), true) {
        common::assert_client_error(&error, &common::CLIENT_ERRORS);
    }
    if let Err(error) = groups::dry_run_patch(&body, common::GROUP.clone()) {
        common::assert_client_error(&error, &common::CLIENT_ERRORS);
    }
});
