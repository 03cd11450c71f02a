//! The integration tests' rule for external tools (`tests/support/tools.rs`), for the unit
//! tests: the same file is compiled in here, so a missing `openssl` or dkimpy skips a unit
//! test with a notice, or fails it under `DISPATCH_REQUIRE_TOOLS=1`, exactly as it does an
//! integration test. The rule's own tests are here because this binary runs them once; in
//! the shared file every integration test binary would run them again.

#[allow(dead_code)] // the unit tests need only some of the tools
#[path = "../tests/support/tools.rs"]
mod shared;
/// The name `postgres.rs` reaches the rule by, as in `tests/support/`.
use shared as tools;

/// The throwaway PostgreSQL cluster the store's tests run on.
#[allow(dead_code)] // the unit tests need only a fresh database per test
#[path = "../tests/support/postgres.rs"]
pub(crate) mod postgres;

pub(crate) use shared::{
    DKIMPY, DKIMPY_ED25519, OPENSSL, PYTHON, PYTHON_EMAIL, require, require_all,
};

use std::ffi::OsStr;

use shared::{Tool, find_all, on_missing, required_by};

const NOWHERE: Tool = Tool::program("dispatch-no-such-tool", "dispatch-nothing");

#[test]
fn a_present_program_is_found_with_its_path() {
    let paths = find_all(&[Tool::program("sh", "dash")]).expect("sh is installed");
    assert!(
        paths[0].is_absolute() && paths[0].ends_with("sh"),
        "{paths:?}"
    );
}

#[test]
fn the_notice_names_each_missing_tool_and_the_packages_to_install() {
    let missing = find_all(&[
        Tool::program("sh", "dash"),
        NOWHERE,
        Tool::python("dispatch_no_such_module", "python3-nothing python3"),
        Tool::python("dispatch_no_such_module_either", "python3"),
    ])
    .unwrap_err();
    assert_eq!(
        missing.sentence("mime::tests::x"),
        "mime::tests::x: dispatch-no-such-tool, /usr/bin/python3 with `import \
         dispatch_no_such_module`, /usr/bin/python3 with `import dispatch_no_such_module_either` \
         not installed (apt-get install dispatch-nothing python3-nothing python3)"
    );
}

#[test]
fn a_missing_tool_skips_the_test_with_a_notice_when_tools_are_not_required() {
    let mut notices = Vec::new();
    let paths = on_missing(
        "t: x not installed (apt-get install x)",
        false,
        &mut notices,
    );
    assert_eq!(paths, None);
    assert_eq!(
        String::from_utf8(notices).unwrap(),
        "SKIP t: x not installed (apt-get install x)\n"
    );
}

#[test]
#[should_panic(expected = "t: x not installed (apt-get install x); DISPATCH_REQUIRE_TOOLS=1")]
fn a_missing_tool_fails_the_test_when_tools_are_required() {
    on_missing(
        "t: x not installed (apt-get install x)",
        true,
        &mut Vec::new(),
    );
}

#[test]
fn only_exactly_1_requires_the_tools() {
    assert!(required_by(Some(OsStr::new("1"))));
    for v in [None, Some(""), Some("0"), Some("yes"), Some(" 1")] {
        assert!(!required_by(v.map(OsStr::new)), "{v:?}");
    }
}
