//! What the SIMD tophash scan buys: matching a tophash byte (and finding the
//! first empty slot) in 8-byte groups with the native group (SSE2 / NEON), the
//! portable SWAR group, and a plain byte loop as Go writes it.
//!
//! `cargo bench --bench group`

use criterion::{criterion_group, criterion_main, Criterion};
use gomap::group::{generic, Group};
use std::hint::black_box;

/// 4096 buckets' tophash bytes, filled like a map at load ~6.5/8 with a few
/// empty slots, and the byte looked up in each.
fn buckets() -> (Vec<[u8; 8]>, Vec<u8>) {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut tops = Vec::new();
    let mut probes = Vec::new();
    for _ in 0..4096 {
        let r = next();
        let mut b = [0u8; 8];
        for (i, t) in b.iter_mut().enumerate() {
            let x = (r >> (8 * i)) as u8;
            *t = if i < 6 || x & 1 == 1 { x.max(5) } else { 0 };
        }
        tops.push(b);
        probes.push(((next() >> 56) as u8).max(5));
    }
    (tops, probes)
}

/// Go's loop: compare each byte, stop at an empty-rest slot.
fn byte_loop(tophash: &[u8; 8], top: u8) -> (u32, Option<usize>) {
    let mut matches = 0u32;
    let mut first_empty = None;
    for (i, &t) in tophash.iter().enumerate() {
        if t == top {
            matches |= 1 << i;
        }
        if t <= 1 && first_empty.is_none() {
            first_empty = Some(i);
        }
        if t == 0 {
            break;
        }
    }
    (matches, first_empty)
}

fn bench(c: &mut Criterion) {
    let (tops, probes) = buckets();
    let mut g = c.benchmark_group("tophash-scan-4096-buckets");
    g.bench_function(format!("native-{}", Group::NAME), |b| {
        b.iter(|| {
            let mut acc = 0u32;
            for (t, &p) in tops.iter().zip(&probes) {
                let grp = Group::load(black_box(t));
                let stop = grp.match_byte(0).lowest().unwrap_or(8);
                acc = acc.wrapping_add(grp.match_byte(p).below(stop).0 as u32);
                acc = acc.wrapping_add(grp.match_empty().lowest().unwrap_or(8) as u32);
            }
            acc
        })
    });
    g.bench_function("portable-swar", |b| {
        b.iter(|| {
            let mut acc = 0u32;
            for (t, &p) in tops.iter().zip(&probes) {
                let grp = generic::Group::load(black_box(t));
                let stop = grp.match_byte(0).lowest().unwrap_or(8);
                acc = acc.wrapping_add(grp.match_byte(p).below(stop).0 as u32);
                acc = acc.wrapping_add(grp.match_empty().lowest().unwrap_or(8) as u32);
            }
            acc
        })
    });
    g.bench_function("byte-loop", |b| {
        b.iter(|| {
            let mut acc = 0u32;
            for (t, &p) in tops.iter().zip(&probes) {
                let (m, e) = byte_loop(black_box(t), p);
                acc = acc.wrapping_add(m).wrapping_add(e.unwrap_or(8) as u32);
            }
            acc
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
