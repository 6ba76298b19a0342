//! Criterion micro-benches for the sans-IO crypto core: encrypt and decrypt of 16 B, 256 B
//! and 4 KiB values in each mode through a [`KeyRing`] (no database).

use criterion::{BenchmarkId, Criterion, Throughput, black_box, criterion_group, criterion_main};
use pgcloak::config::Mode;
use pgcloak::crypto::{Algorithm, DataKey, KeyRing};

fn ring() -> KeyRing {
    KeyRing::from_data_keys(vec![
        DataKey::generate("rand", 1, Algorithm::Aes256Gcm),
        DataKey::generate("det", 1, Algorithm::Aes256Siv),
    ])
    .expect("fresh keys build a ring")
}

fn bench(c: &mut Criterion) {
    let ring = ring();
    for (key, mode) in [("rand", Mode::Randomized), ("det", Mode::Deterministic)] {
        let mut group = c.benchmark_group(format!("{}", mode.name()));
        for size in [16usize, 256, 4096] {
            let plaintext = vec![0x5au8; size];
            let stored = ring.encrypt(key, mode, &plaintext).expect("encrypt");
            group.throughput(Throughput::Bytes(size as u64));
            group.bench_with_input(BenchmarkId::new("encrypt", size), &plaintext, |b, p| {
                b.iter(|| ring.encrypt(black_box(key), mode, black_box(p)))
            });
            group.bench_with_input(BenchmarkId::new("decrypt", size), &stored, |b, s| {
                b.iter(|| ring.decrypt(black_box(key), black_box(s)))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
