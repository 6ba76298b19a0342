//! Tests of the generated [`super`] table: names unique, codes well-formed, a few codes as
//! PostgreSQL documents them.

use std::collections::HashSet;

use super::*;

#[test]
fn names_are_unique_and_codes_well_formed() {
    let names: HashSet<&str> = ALL.iter().map(|(n, _)| *n).collect();
    assert_eq!(names.len(), ALL.len(), "a constant name is defined twice");
    // errcodes.txt gives a few codes two names (22008 is also datetime_value_out_of_range).
    let codes: HashSet<&str> = ALL.iter().map(|(_, c)| *c).collect();
    assert!(
        ALL.len() - codes.len() < 10,
        "{} codes for {} names",
        codes.len(),
        ALL.len()
    );
    assert_eq!(DATETIME_VALUE_OUT_OF_RANGE, DATETIME_FIELD_OVERFLOW);
    assert!(ALL.len() > 250, "{} codes", ALL.len());
    for (name, code) in ALL {
        assert_eq!(code.len(), 5, "{name}");
        assert!(
            code.bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
        );
    }
}

#[test]
fn a_few_codes_are_postgresqls() {
    assert_eq!(SUCCESSFUL_COMPLETION, "00000");
    assert_eq!(FEATURE_NOT_SUPPORTED, "0A000");
    assert_eq!(PROTOCOL_VIOLATION, "08P01");
    assert_eq!(INVALID_PASSWORD, "28P01");
    assert_eq!(UNIQUE_VIOLATION, "23505");
    assert_eq!(INVALID_TEXT_REPRESENTATION, "22P02");
    assert_eq!(STRING_DATA_RIGHT_TRUNCATION, "22001");
    assert_eq!(WARNING_STRING_DATA_RIGHT_TRUNCATION, "01004");
    assert_eq!(ADMIN_SHUTDOWN, "57P01");
    assert_eq!(DATA_CORRUPTED, "XX001");
}
