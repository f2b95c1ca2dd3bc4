//! Benchmarks of the Rust core (`HMap`) against hashbrown's and std's `HashMap`,
//! on the workloads of `benches/go/main.go` and `benches/test_bench_map.py`:
//! 1M random int64 keys and 1M 16-byte strings; insert into a fresh map, hit,
//! miss, delete, iterate. One op is one key (or one entry visited).
//!
//! Two modes, one binary:
//!
//! * `cargo bench --bench core` — criterion (small samples: the whole run stays
//!   under a few minutes). Extra arguments filter as usual, e.g.
//!   `cargo bench --bench core -- int64/hit`.
//! * `GOMAP_BENCH_JSON=table cargo bench --bench core` — no criterion: median of
//!   `GOMAP_BENCH_REPS` (5) timed passes per workload, printed as one JSON line
//!   in the shape the Go program prints (`{"n":…,"int64":{"core":{"insert":ns,…},
//!   "hashbrown":…,"std":…},"string":…}`). `GOMAP_BENCH_JSON=sweep` prints get-hit
//!   ns/op against map size (`GOMAP_BENCH_SIZES`, default 1k…10M).
//!   `benches/run_all.py` uses these.
//!
//! The keys are the Go program's (same splitmix64 generator and seeds), so the
//! Rust and Go maps see the same key sets in the same order.

use std::collections::HashMap as StdMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use gomap::flags::FlagWord;
use gomap::hmap::HMap;
use gomap::kinds::MapKey;
use gomap::rand::FastRand;

const N: usize = 1_000_000;

// ---------------------------------------------------------------- keys

struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    }
}

/// `n` present keys (even) and `n` absent keys (odd), as `keysInt` in main.go.
fn keys_int(n: usize, seed: u64) -> (Vec<i64>, Vec<i64>) {
    let mut r = SplitMix(seed);
    let mut hit = Vec::with_capacity(n);
    let mut miss = Vec::with_capacity(n);
    for _ in 0..n {
        hit.push((r.next() & !1) as i64);
        miss.push((r.next() | 1) as i64);
    }
    (hit, miss)
}

const ALPHABET: &[u8; 64] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";

fn str16(r: &mut SplitMix, last: u8) -> Box<str> {
    let mut b = [0u8; 16];
    let (mut x, mut y) = (r.next(), r.next());
    for c in b.iter_mut().take(10) {
        *c = ALPHABET[(x & 63) as usize];
        x >>= 6;
    }
    for c in b.iter_mut().take(15).skip(10) {
        *c = ALPHABET[(y & 63) as usize];
        y >>= 6;
    }
    b[15] = last;
    std::str::from_utf8(&b).unwrap().into()
}

/// 16-byte strings: present keys end in 'h', absent in 'm' (as `keysStr`).
fn keys_str(n: usize, seed: u64) -> (Vec<Box<str>>, Vec<Box<str>>) {
    let mut r = SplitMix(seed);
    let mut hit = Vec::with_capacity(n);
    let mut miss = Vec::with_capacity(n);
    for _ in 0..n {
        hit.push(str16(&mut r, b'h'));
        miss.push(str16(&mut r, b'm'));
    }
    (hit, miss)
}

// ---------------------------------------------------------------- maps

trait Key: Clone + Eq + std::hash::Hash + MapKey<Error = std::convert::Infallible> {
    fn mix(&self) -> i64;
}
impl Key for i64 {
    fn mix(&self) -> i64 {
        *self
    }
}
impl Key for Box<str> {
    fn mix(&self) -> i64 {
        self.len() as i64
    }
}

trait Map<K: Key> {
    const NAME: &'static str;
    fn new() -> Self;
    fn insert(&mut self, k: K, v: i64);
    fn get(&self, k: &K) -> Option<i64>;
    fn remove(&mut self, k: &K);
    fn fold(&self) -> i64;
}

struct Core<K: Key> {
    fl: FlagWord,
    h: HMap<K, i64>,
}

impl<K: Key> Map<K> for Core<K> {
    const NAME: &'static str = "core";
    fn new() -> Self {
        Core {
            fl: FlagWord::new(),
            h: HMap::makemap(0, [1, 3, 5, 7], FastRand::from_os(None), gomap::release::GoRelease::Go119),
        }
    }
    #[inline]
    fn insert(&mut self, k: K, v: i64) {
        // The only error of an integer or string key is an allocation failure.
        if self.h.mapassign(&self.fl, k, v).is_err() {
            panic!("core bench: out of memory");
        }
    }
    #[inline]
    fn get(&self, k: &K) -> Option<i64> {
        let Ok(v) = self.h.mapaccess(&self.fl, k);
        v.copied()
    }
    #[inline]
    fn remove(&mut self, k: &K) {
        if self.h.mapdelete(&self.fl, k).is_err() {
            panic!("core bench: out of memory");
        }
    }
    fn fold(&self) -> i64 {
        let mut s = 0i64;
        let mut it = self.h.mapiterinit(&self.fl);
        while let Ok(Some((k, v))) = self.h.mapiternext(&self.fl, &mut it) {
            s = s.wrapping_add(k.mix() ^ *v);
        }
        s
    }
}

/// The competitors: both have the same HashMap API, so one wrapper serves both.
macro_rules! hashmap_wrapper {
    ($name:ident, $label:literal, $map:ident) => {
        struct $name<K>($map<K, i64>);

        impl<K: Key> Map<K> for $name<K> {
            const NAME: &'static str = $label;
            fn new() -> Self {
                $name($map::new())
            }
            #[inline]
            fn insert(&mut self, k: K, v: i64) {
                self.0.insert(k, v);
            }
            #[inline]
            fn get(&self, k: &K) -> Option<i64> {
                self.0.get(k).copied()
            }
            #[inline]
            fn remove(&mut self, k: &K) {
                self.0.remove(k);
            }
            fn fold(&self) -> i64 {
                self.0.iter().fold(0i64, |s, (k, v)| s.wrapping_add(k.mix() ^ *v))
            }
        }
    };
}

use hashbrown::HashMap as BrownMap;
hashmap_wrapper!(Brown, "hashbrown", BrownMap);
hashmap_wrapper!(Std, "std", StdMap);

// ---------------------------------------------------------------- timed passes
// Each returns the time of one pass over all the keys (setup and drop untimed).

fn filled<K: Key, M: Map<K>>(hit: &[K]) -> M {
    let mut m = M::new();
    for (i, k) in hit.iter().enumerate() {
        m.insert(k.clone(), i as i64);
    }
    m
}

fn pass_insert<K: Key, M: Map<K>>(hit: &[K]) -> Duration {
    let owned: Vec<K> = hit.to_vec();
    let mut m = M::new();
    let t = Instant::now();
    for (i, k) in owned.into_iter().enumerate() {
        m.insert(k, i as i64);
    }
    let d = t.elapsed();
    black_box(&m);
    d
}

fn pass_hit<K: Key, M: Map<K>>(m: &M, hit: &[K]) -> Duration {
    let t = Instant::now();
    let mut s = 0i64;
    for k in hit {
        s = s.wrapping_add(m.get(black_box(k)).unwrap_or(0));
    }
    let d = t.elapsed();
    black_box(s);
    d
}

fn pass_miss<K: Key, M: Map<K>>(m: &M, miss: &[K]) -> Duration {
    let t = Instant::now();
    let mut s = 0usize;
    for k in miss {
        s += m.get(black_box(k)).is_some() as usize;
    }
    let d = t.elapsed();
    black_box(s);
    d
}

fn pass_iterate<K: Key, M: Map<K>>(m: &M) -> Duration {
    let t = Instant::now();
    let s = m.fold();
    let d = t.elapsed();
    black_box(s);
    d
}

fn pass_delete<K: Key, M: Map<K>>(hit: &[K]) -> Duration {
    let mut m: M = filled(hit);
    let t = Instant::now();
    for k in hit {
        m.remove(black_box(k));
    }
    let d = t.elapsed();
    black_box(&m);
    d
}

// ---------------------------------------------------------------- JSON mode

fn reps() -> usize {
    std::env::var("GOMAP_BENCH_REPS").ok().and_then(|s| s.parse().ok()).unwrap_or(5)
}

fn median_ns(reps: usize, ops: usize, mut f: impl FnMut() -> Duration) -> f64 {
    let mut v: Vec<f64> = (0..reps).map(|_| f().as_nanos() as f64 / ops as f64).collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn json_impl<K: Key, M: Map<K>>(hit: &[K], miss: &[K]) -> String {
    let r = reps();
    let n = hit.len();
    let insert = median_ns(r, n, || pass_insert::<K, M>(hit));
    let delete = median_ns(r, n, || pass_delete::<K, M>(hit));
    let m: M = filled(hit);
    let hitv = median_ns(r, n, || pass_hit(&m, hit));
    let missv = median_ns(r, n, || pass_miss(&m, miss));
    let iter = median_ns(r, n, || pass_iterate(&m));
    format!(
        "\"{}\":{{\"insert\":{insert:.3},\"hit\":{hitv:.3},\"miss\":{missv:.3},\"delete\":{delete:.3},\"iterate\":{iter:.3}}}",
        M::NAME
    )
}

fn json_table() {
    let n = std::env::var("GOMAP_BENCH_N").ok().and_then(|s| s.parse().ok()).unwrap_or(N);
    let (hi, mi) = keys_int(n, 1);
    let ints = [
        json_impl::<i64, Core<i64>>(&hi, &mi),
        json_impl::<i64, Brown<i64>>(&hi, &mi),
        json_impl::<i64, Std<i64>>(&hi, &mi),
    ]
    .join(",");
    drop((hi, mi));
    let (hs, ms) = keys_str(n, 2);
    let strs = [
        json_impl::<Box<str>, Core<Box<str>>>(&hs, &ms),
        json_impl::<Box<str>, Brown<Box<str>>>(&hs, &ms),
        json_impl::<Box<str>, Std<Box<str>>>(&hs, &ms),
    ]
    .join(",");
    println!("{{\"n\":{n},\"int64\":{{{ints}}},\"string\":{{{strs}}}}}");
}

fn sweep_one<M: Map<i64>>(sizes: &[usize]) -> String {
    const LOOKUPS: usize = 1_000_000;
    let mut parts = Vec::new();
    for &n in sizes {
        let (hit, _) = keys_int(n, 3);
        let m: M = filled(&hit);
        let mut r = SplitMix(4);
        let probe: Vec<i64> = (0..LOOKUPS).map(|_| hit[(r.next() % n as u64) as usize]).collect();
        let ns = median_ns(reps(), LOOKUPS, || pass_hit(&m, &probe));
        parts.push(format!("\"{n}\":{ns:.3}"));
    }
    format!("\"{}\":{{{}}}", M::NAME, parts.join(","))
}

fn json_sweep() {
    let sizes: Vec<usize> = std::env::var("GOMAP_BENCH_SIZES")
        .unwrap_or_else(|_| "1000,10000,100000,1000000,10000000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("GOMAP_BENCH_SIZES: comma-separated integers"))
        .collect();
    let core = sweep_one::<Core<i64>>(&sizes);
    let brown = sweep_one::<Brown<i64>>(&sizes);
    println!("{{\"get_hit\":{{{core},{brown}}}}}");
}

// ---------------------------------------------------------------- criterion mode

fn group<K: Key>(c: &mut Criterion, kind: &str, hit: &[K], miss: &[K]) {
    fn one<K: Key, M: Map<K>>(c: &mut Criterion, kind: &str, hit: &[K], miss: &[K]) {
        let n = hit.len();
        let per_pass = |iters: u64, f: &mut dyn FnMut() -> Duration| (0..iters).map(|_| f()).sum::<Duration>();
        let m: M = filled(hit);
        for work in ["insert", "hit", "miss", "delete", "iterate"] {
            let mut g = c.benchmark_group(format!("{kind}/{work}"));
            g.throughput(Throughput::Elements(n as u64));
            g.sample_size(10);
            g.warm_up_time(Duration::from_millis(300));
            g.measurement_time(Duration::from_millis(1500));
            g.bench_function(M::NAME, |b| {
                b.iter_custom(|iters| match work {
                    "insert" => per_pass(iters, &mut || pass_insert::<K, M>(hit)),
                    "hit" => per_pass(iters, &mut || pass_hit(&m, hit)),
                    "miss" => per_pass(iters, &mut || pass_miss(&m, miss)),
                    "delete" => per_pass(iters, &mut || pass_delete::<K, M>(hit)),
                    _ => per_pass(iters, &mut || pass_iterate(&m)),
                })
            });
            g.finish();
        }
    }
    one::<K, Core<K>>(c, kind, hit, miss);
    one::<K, Brown<K>>(c, kind, hit, miss);
    one::<K, Std<K>>(c, kind, hit, miss);
}

fn criterion_mode() {
    let mut c = Criterion::default().configure_from_args();
    let (hi, mi) = keys_int(N, 1);
    group(&mut c, "int64", &hi, &mi);
    drop((hi, mi));
    let (hs, ms) = keys_str(N, 2);
    group(&mut c, "string", &hs, &ms);
    c.final_summary();
}

fn main() {
    match std::env::var("GOMAP_BENCH_JSON").as_deref() {
        Ok("table") => json_table(),
        Ok("sweep") => json_sweep(),
        Ok(other) => {
            eprintln!("GOMAP_BENCH_JSON={other}: expected `table` or `sweep`");
            std::process::exit(2)
        }
        Err(_) => criterion_mode(),
    }
}
