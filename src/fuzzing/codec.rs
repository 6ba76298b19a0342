//! Harness for the text and binary codecs: every logical type, a range of session settings,
//! and the round trips deterministic encryption relies on (the same value must always give
//! the same canonical bytes, whichever format and rendering it went through).

use crate::codec::{self, LogicalType, TextContext, array};

const ZONES: [&str; 6] = [
    "UTC",
    "Europe/Paris",
    "America/New_York",
    "Asia/Kolkata",
    "<+02>-02",
    "Australia/Lord_Howe",
];
const DATE_STYLES: [&str; 3] = ["ISO, MDY", "ISO, DMY", "ISO, YMD"];
const FLOAT_DIGITS: [&str; 4] = ["1", "3", "0", "-5"];

/// Session settings chosen by one byte.
fn context(b: u8) -> TextContext {
    let mut ctx = TextContext::default();
    let b = usize::from(b);
    ctx.set_parameter("TimeZone", ZONES[b % ZONES.len()]);
    ctx.set_parameter("DateStyle", DATE_STYLES[(b / 8) % DATE_STYLES.len()]);
    ctx.set_parameter(
        "extra_float_digits",
        FLOAT_DIGITS[(b / 32) % FLOAT_DIGITS.len()],
    );
    ctx.set_bytea_output(if b & 0x80 == 0 { "hex" } else { "escape" });
    ctx
}

/// Byte 0 picks the type and the input format, byte 1 the session settings, the rest is the
/// value.
pub fn codecs(data: &[u8]) {
    let [sel, settings, value @ ..] = data else {
        return;
    };
    let ty = LogicalType::ALL[usize::from(*sel & 0x7f) % LogicalType::ALL.len()];
    let ctx = context(*settings);
    let canonical = if sel & 0x80 == 0 {
        codec::text_to_canonical(ty, value, &ctx)
    } else {
        codec::binary_to_canonical(ty, value)
    };
    if let Ok(c) = canonical {
        round_trips(ty, &c, &ctx);
    }
    // Whatever a (decrypted) canonical value holds, rendering it must not panic.
    let _ = codec::canonical_to_text(ty, value, &ctx);
    let _ = codec::canonical_to_binary(ty, value);
    if let Ok(items) = array::parse_text(value) {
        assert!(
            items.len() <= value.len() + 1,
            "more array items than bytes"
        );
    }
    let _ = array::parse_binary(value);
}

/// A canonical value renders in both formats, and each rendering parses back to it (text only
/// when the rendering is exact: `extra_float_digits` below 1 rounds floats, as in PostgreSQL).
fn round_trips(ty: LogicalType, c: &[u8], ctx: &TextContext) {
    let bin = codec::canonical_to_binary(ty, c).expect("a canonical value renders as binary");
    let again = codec::binary_to_canonical(ty, &bin).expect("its binary form parses");
    assert_eq!(again, c, "{} binary round trip", ty.name());
    let text = codec::canonical_to_text(ty, c, ctx).expect("a canonical value renders as text");
    let lossy =
        matches!(ty, LogicalType::Float4 | LogicalType::Float8) && ctx.extra_float_digits() < 1;
    if !lossy {
        let again = codec::text_to_canonical(ty, &text, ctx).expect("its text form parses");
        assert_eq!(again, c, "{} text round trip", ty.name());
    }
}
