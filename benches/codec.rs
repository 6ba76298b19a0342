//! Criterion micro-benches for the value codecs: text → canonical and canonical → text for
//! each logical type (no database).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use pgcloak::codec::{LogicalType, TextContext, canonical_to_text, text_to_canonical};

fn sample(ty: LogicalType) -> &'static str {
    use LogicalType as T;
    match ty {
        T::Text | T::Varchar => "alice@example.com",
        T::Int2 => "1234",
        T::Int4 => "123456789",
        T::Int8 => "-1234567890123",
        T::Float4 => "3.14159",
        T::Float8 => "2.718281828459045",
        T::Numeric => "12345.6789",
        T::Bool => "true",
        T::Date => "2024-02-29",
        T::Time => "12:34:56.789",
        T::Timestamp => "2024-02-29 12:34:56.789",
        T::Timestamptz => "2024-02-29 12:34:56.789+01",
        T::Uuid => "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        T::Json | T::Jsonb => r#"{"name": "alice", "tags": [1, 2, 3], "ok": true}"#,
        T::Bytea => "\\xdeadbeefcafebabe0011223344556677",
    }
}

fn bench(c: &mut Criterion) {
    let mut ctx = TextContext::default();
    ctx.set_parameter("TimeZone", "Europe/Paris");
    for ty in LogicalType::ALL {
        let text = sample(ty).as_bytes();
        let canon = text_to_canonical(ty, text, &ctx).unwrap();
        c.bench_function(&format!("text_to_canonical/{ty}"), |b| {
            b.iter(|| text_to_canonical(ty, black_box(text), &ctx).unwrap())
        });
        c.bench_function(&format!("canonical_to_text/{ty}"), |b| {
            b.iter(|| canonical_to_text(ty, black_box(&canon), &ctx).unwrap())
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
