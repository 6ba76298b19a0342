//! Criterion micro-benches for the sans-IO crypto core: encrypt and decrypt of 16 B, 256 B
//! and 4 KiB values in each mode through a [`KeyRing`] (no database).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
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
        let mut group = c.benchmark_group(mode.name());
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

/// The nonce source's share of a randomized encrypt: the OS RNG (a syscall) vs the
/// thread-local CSPRNG seeded from it.
fn rng(c: &mut Criterion) {
    use rand::{Rng, TryRng};
    let mut group = c.benchmark_group("nonce");
    let mut buf = [0u8; 12];
    group.bench_function("os_rng_12", |b| {
        b.iter(|| rand::rngs::SysRng.try_fill_bytes(black_box(&mut buf)))
    });
    group.bench_function("thread_rng_12", |b| {
        b.iter(|| rand::rng().fill_bytes(black_box(&mut buf)))
    });
    group.finish();
}

criterion_group!(benches, bench, rng);
criterion_main!(benches);
