//! Integration tests of the `hmap` engine, written against Go 1.19's
//! `runtime/map.go`:
//!
//! 1. differential runs against `std::collections::HashMap` (long seeded random
//!    operation sequences, several key kinds);
//! 2. the tophash state invariants, checked from `snapshot_buckets` /
//!    `snapshot_oldbuckets` after operations;
//! 3. growth and evacuation step by step (load-factor thresholds, `grow_work`'s
//!    "its bucket plus `nevacuate`", same-size growth, `hash0` draws, the
//!    iteration start draw);
//! 4. iteration semantics with writes, growth and clears under the iterator;
//! 5. drop safety with owned keys (`Box<str>`), iterators held across growth.
//!
//! Knobs (environment):
//! * `GOMAP_TEST_SCALE=n` multiplies the number of random operations (default 1);
//! * `GOMAP_TEST_FULL=1` checks every invariant after every single operation even
//!   on large maps (by default, maps above 512 entries are checked every
//!   `count/512` operations and after every operation that starts a grow).

use gomap::flags::{FlagWord, ITERATOR, OLD_ITERATOR, SAME_SIZE_GROW};
use gomap::hmap::{BucketView, HIter, HMap, OldView, BUCKET_CNT};
use gomap::kinds::MapKey;
use gomap::rand::FastRand;
use gomap::release::GoRelease;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

// ---------------------------------------------------------------------------
// Go's constants and rules, restated here independently of the engine.
// ---------------------------------------------------------------------------

const EMPTY_REST: u8 = 0;
const EMPTY_ONE: u8 = 1;
const EVACUATED_X: u8 = 2;
const EVACUATED_Y: u8 = 3;
const EVACUATED_EMPTY: u8 = 4;
const MIN_TOP_HASH: u8 = 5;

fn go_tophash(hash: u64) -> u8 {
    let top = (hash >> 56) as u8;
    if top < MIN_TOP_HASH {
        top + MIN_TOP_HASH
    } else {
        top
    }
}

/// `overLoadFactor(count, B)`: count > 8 && count > 13 * (2^B / 2).
fn go_over_load(count: usize, b: u8) -> bool {
    count > 8 && count > 13 * ((1usize << b) / 2)
}

/// `tooManyOverflowBuckets(noverflow, B)`: noverflow >= 2^min(B, 15).
fn go_too_many(noverflow: u16, b: u8) -> bool {
    (noverflow as u32) >= 1u32 << b.min(15)
}

fn mask(b: u8) -> usize {
    (1usize << b) - 1
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn scale() -> usize {
    env_usize("GOMAP_TEST_SCALE", 1).max(1)
}

fn full_checks() -> bool {
    env_usize("GOMAP_TEST_FULL", 0) != 0
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e3779b97f4a7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d049bb133111eb);
    x ^ (x >> 31)
}

fn hashkey_for(seed: u64) -> [u64; 4] {
    [splitmix(seed), splitmix(seed ^ 1), splitmix(seed ^ 2), splitmix(seed ^ 3)]
}

// ---------------------------------------------------------------------------
// Key kinds under test.
// ---------------------------------------------------------------------------

/// A key kind plus what the reference model needs: a canonical `M` (one value per
/// Go-equal class: +0.0 and -0.0 share one), an injective generator, and a test
/// that two Go-equal keys have the same representation (for `needkeyupdate`).
trait TK: MapKey<Error = Infallible> + Clone + Debug {
    type M: Eq + Hash + Ord + Clone + Debug;
    fn m(&self) -> Self::M;
    fn from_idx(i: u64) -> Self;
    /// Another key Go-equal to `self` (a differently signed zero).
    fn variant(&self, _rng: &mut StdRng) -> Self {
        self.clone()
    }
    fn same_repr(&self, o: &Self) -> bool;
}

impl TK for i64 {
    type M = i64;
    fn m(&self) -> i64 {
        *self
    }
    fn from_idx(i: u64) -> i64 {
        if i % 2 == 0 {
            (i / 2) as i64
        } else if i == 1 {
            i64::MIN
        } else {
            -(i as i64) * 7919
        }
    }
    fn same_repr(&self, o: &Self) -> bool {
        self == o
    }
}

impl TK for i32 {
    type M = i32;
    fn m(&self) -> i32 {
        *self
    }
    fn from_idx(i: u64) -> i32 {
        assert!(i < 1 << 30);
        if i % 2 == 0 {
            (i / 2) as i32
        } else if i == 1 {
            i32::MIN
        } else {
            -(i as i32)
        }
    }
    fn same_repr(&self, o: &Self) -> bool {
        self == o
    }
}

impl TK for u64 {
    type M = u64;
    fn m(&self) -> u64 {
        *self
    }
    fn from_idx(i: u64) -> u64 {
        if i % 2 == 0 {
            i / 2
        } else {
            u64::MAX - i
        }
    }
    fn same_repr(&self, o: &Self) -> bool {
        self == o
    }
}

impl TK for u32 {
    type M = u32;
    fn m(&self) -> u32 {
        *self
    }
    fn from_idx(i: u64) -> u32 {
        assert!(i < 1 << 30);
        if i % 2 == 0 {
            (i / 2) as u32
        } else {
            u32::MAX - i as u32
        }
    }
    fn same_repr(&self, o: &Self) -> bool {
        self == o
    }
}

impl TK for f64 {
    type M = u64;
    fn m(&self) -> u64 {
        assert!(!self.is_nan());
        if *self == 0.0 {
            0
        } else {
            self.to_bits()
        }
    }
    fn from_idx(i: u64) -> f64 {
        match i {
            0 => 0.0,
            1 => -0.0,
            2 => f64::INFINITY,
            3 => f64::NEG_INFINITY,
            4 => f64::MIN_POSITIVE,
            5 => 5e-324,
            6 => f64::MAX,
            7 => -f64::MIN_POSITIVE,
            _ => (i as f64 + 0.5) * if i % 2 == 0 { 1.0 } else { -1.0 },
        }
    }
    fn variant(&self, rng: &mut StdRng) -> f64 {
        if *self == 0.0 {
            if rng.random_bool(0.5) {
                0.0
            } else {
                -0.0
            }
        } else {
            *self
        }
    }
    fn same_repr(&self, o: &Self) -> bool {
        self.to_bits() == o.to_bits()
    }
}

impl TK for f32 {
    type M = u32;
    fn m(&self) -> u32 {
        assert!(!self.is_nan());
        if *self == 0.0 {
            0
        } else {
            self.to_bits()
        }
    }
    fn from_idx(i: u64) -> f32 {
        assert!(i < 1 << 21);
        match i {
            0 => 0.0,
            1 => -0.0,
            2 => f32::INFINITY,
            3 => f32::NEG_INFINITY,
            _ => (i as f32 + 0.5) * if i % 2 == 0 { 1.0 } else { -1.0 },
        }
    }
    fn variant(&self, rng: &mut StdRng) -> f32 {
        if *self == 0.0 {
            if rng.random_bool(0.5) {
                0.0
            } else {
                -0.0
            }
        } else {
            *self
        }
    }
    fn same_repr(&self, o: &Self) -> bool {
        self.to_bits() == o.to_bits()
    }
}

fn str_of_idx(i: u64) -> String {
    if i == 0 {
        return String::new();
    }
    // A class character, the number, then a run of '~' of varying length, so
    // every memhash length branch (0, <4, 4, <8, 8, <=16, <=48, >48) is used.
    const CLASS: [&str; 4] = ["k", "Z", "é", "/"];
    format!("{}{}{}", CLASS[(i % 4) as usize], i, "~".repeat(((i * 7) % 61) as usize))
}

impl TK for Box<str> {
    type M = Box<str>;
    fn m(&self) -> Box<str> {
        self.clone()
    }
    fn from_idx(i: u64) -> Box<str> {
        str_of_idx(i).into_boxed_str()
    }
    fn same_repr(&self, o: &Self) -> bool {
        self == o
    }
}

impl TK for Box<[u8]> {
    type M = Box<[u8]>;
    fn m(&self) -> Box<[u8]> {
        self.clone()
    }
    fn from_idx(i: u64) -> Box<[u8]> {
        let mut v = str_of_idx(i).into_bytes();
        if i % 3 == 0 {
            v.push(0xff); // not UTF-8
        }
        v.into_boxed_slice()
    }
    fn same_repr(&self, o: &Self) -> bool {
        self == o
    }
}

fn khash<K: TK>(h: &HMap<K, i64>, k: &K) -> u64 {
    MapKey::hash(k, h.hash0 as u64, h.fallback_key(), &h.rand)
}

// ---------------------------------------------------------------------------
// Growth model: which old buckets are evacuated, and `nevacuate`.
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
struct Grow {
    old_n: usize,
    evac: Vec<bool>,
    nevacuate: usize,
    same: bool,
}

impl Grow {
    fn fresh(old_b: u8, same: bool) -> Grow {
        Grow { old_n: 1 << old_b, evac: vec![false; 1 << old_b], nevacuate: 0, same }
    }

    /// `evacuate(oldbucket)` then, if it was `nevacuate`,
    /// `advanceEvacuationMark`. Returns false when growing is done.
    fn evacuate(&mut self, oldbucket: usize) -> bool {
        self.evac[oldbucket] = true;
        if oldbucket == self.nevacuate {
            self.nevacuate += 1;
            let stop = (self.nevacuate + 1024).min(self.old_n);
            while self.nevacuate != stop && self.evac[self.nevacuate] {
                self.nevacuate += 1;
            }
            if self.nevacuate == self.old_n {
                return false;
            }
        }
        true
    }

    /// `growWork(bucket)`: the old bucket of `bucket`, then `nevacuate`.
    fn grow_work(mut self, bucket: usize) -> Option<Grow> {
        if !self.evacuate(bucket & (self.old_n - 1)) {
            return None;
        }
        let n = self.nevacuate;
        if !self.evacuate(n) {
            return None;
        }
        Some(self)
    }
}

fn observe_grow<K: TK>(h: &HMap<K, i64>, fl: &FlagWord) -> Option<Grow> {
    let old = h.snapshot_oldbuckets()?;
    Some(Grow {
        old_n: old.len(),
        evac: old.iter().map(|v| matches!(v, OldView::Evacuated(_))).collect(),
        nevacuate: h.nevacuate,
        same: fl.has(SAME_SIZE_GROW),
    })
}

// ---------------------------------------------------------------------------
// The differential harness.
// ---------------------------------------------------------------------------

#[derive(Default, Debug, Clone)]
struct Events {
    ops: usize,
    grows: usize,
    same_size_grows: usize,
    clears: usize,
    hash0_redraws: usize,
    iterations: usize,
    grow_work_ops: usize,
    max_b: u8,
    max_count: usize,
    shrinks: usize,
}

struct Pre {
    count: usize,
    b: u8,
    noverflow: u16,
    hash0: u32,
    grow: Option<Grow>,
}

struct Harness<K: TK> {
    h: HMap<K, i64>,
    fl: FlagWord,
    model: HashMap<K::M, (K, i64)>,
    present: Vec<K::M>,
    pos: HashMap<K::M, usize>,
    ev: Events,
    full: bool,
    since_check: usize,
    ctx: String,
}

impl<K: TK> Harness<K> {
    fn new(hint: usize, seed: u64) -> Harness<K> {
        let h = HMap::makemap(hint, hashkey_for(seed), FastRand::new(splitmix(seed ^ 0x5eed), None), GoRelease::Go119);
        let hs = Harness {
            h,
            fl: FlagWord::new(),
            model: HashMap::new(),
            present: Vec::new(),
            pos: HashMap::new(),
            ev: Events::default(),
            full: full_checks(),
            since_check: 0,
            ctx: format!("{} seed {seed}", K::NAME),
        };
        hs.check_invariants();
        hs
    }

    fn pre(&self) -> Pre {
        Pre {
            count: self.h.count,
            b: self.h.b,
            noverflow: self.h.noverflow,
            hash0: self.h.hash0,
            grow: observe_grow(&self.h, &self.fl),
        }
    }

    fn model_insert(&mut self, k: K, v: i64) -> Option<i64> {
        let m = k.m();
        match self.model.insert(m.clone(), (k, v)) {
            Some((_, old)) => Some(old),
            None => {
                self.pos.insert(m.clone(), self.present.len());
                self.present.push(m);
                None
            }
        }
    }

    fn model_remove(&mut self, m: &K::M) -> Option<(K, i64)> {
        let r = self.model.remove(m)?;
        let p = self.pos.remove(m).unwrap();
        self.present.swap_remove(p);
        if p < self.present.len() {
            let moved = self.present[p].clone();
            self.pos.insert(moved, p);
        }
        Some(r)
    }

    fn random_present(&self, rng: &mut StdRng) -> Option<K> {
        if self.present.is_empty() {
            return None;
        }
        let m = &self.present[rng.random_range(0..self.present.len())];
        Some(self.model[m].0.variant(rng))
    }

    fn assign(&mut self, k: K, v: i64) {
        self.ev.ops += 1;
        let pre = self.pre();
        let hash = khash(&self.h, &k);
        let is_new = !self.model.contains_key(&k.m());
        let got = self.h.mapassign(&self.fl, k.clone(), v).unwrap();
        let want = self.model_insert(k.clone(), v);
        assert_eq!(got, want, "{}: mapassign({k:?}) returned the wrong previous elem", self.ctx);
        let mut started = false;
        let expect = if let Some(g) = pre.grow {
            self.ev.grow_work_ops += 1;
            assert_eq!(self.h.b, pre.b, "{}: B changed during a grow", self.ctx);
            g.grow_work(hash as usize & mask(pre.b))
        } else if is_new && (go_over_load(pre.count + 1, pre.b) || go_too_many(pre.noverflow, pre.b)) {
            let bigger = go_over_load(pre.count + 1, pre.b);
            let nb = pre.b + bigger as u8;
            assert_eq!(
                self.h.b,
                nb,
                "{}: insert #{} (noverflow {}) at B={} should grow to B={nb}",
                self.ctx,
                pre.count + 1,
                pre.noverflow,
                pre.b
            );
            self.ev.grows += 1;
            if !bigger {
                self.ev.same_size_grows += 1;
            }
            started = true;
            Grow::fresh(pre.b, !bigger).grow_work(hash as usize & mask(nb))
        } else {
            assert_eq!(
                self.h.b, pre.b,
                "{}: B changed on an assign that must not grow (count {} noverflow {})",
                self.ctx, pre.count, pre.noverflow
            );
            None
        };
        let got_grow = observe_grow(&self.h, &self.fl);
        assert_eq!(got_grow, expect, "{}: growth state after mapassign({k:?}) (grow started: {started})", self.ctx);
        assert_eq!(self.h.hash0, pre.hash0, "{}: hash0 changed on an assign", self.ctx);
        self.after_op(&k, started);
    }

    fn delete(&mut self, k: &K) {
        self.ev.ops += 1;
        let pre = self.pre();
        let hash = khash(&self.h, k);
        let got = self.h.mapdelete(&self.fl, k).unwrap();
        let want = self.model_remove(&k.m());
        match (&got, &want) {
            (None, None) => {}
            (Some((gk, gv)), Some((wk, wv))) => {
                assert!(gk.same_repr(wk), "{}: mapdelete({k:?}) returned key {gk:?}, stored was {wk:?}", self.ctx);
                assert_eq!(gv, wv, "{}: mapdelete({k:?}) returned the wrong elem", self.ctx);
            }
            _ => panic!("{}: mapdelete({k:?}) returned {got:?}, model says {want:?}", self.ctx),
        }
        let expect = match pre.grow {
            Some(g) if pre.count > 0 => {
                self.ev.grow_work_ops += 1;
                g.grow_work(hash as usize & mask(pre.b))
            }
            g => g,
        };
        assert_eq!(self.h.b, pre.b, "{}: B changed on a delete", self.ctx);
        assert_eq!(observe_grow(&self.h, &self.fl), expect, "{}: growth state after mapdelete({k:?})", self.ctx);
        if got.is_some() && self.h.count == 0 {
            self.ev.hash0_redraws += 1;
            assert_ne!(self.h.hash0, pre.hash0, "{}: delete-to-empty did not draw a new hash0", self.ctx);
        } else {
            assert_eq!(self.h.hash0, pre.hash0, "{}: hash0 changed on a delete", self.ctx);
        }
        self.after_op(k, false);
    }

    fn clear(&mut self) {
        self.ev.ops += 1;
        let pre = self.pre();
        let dropped = self.h.mapclear(&self.fl);
        drop(dropped);
        if pre.count == 0 {
            assert_eq!(self.h.hash0, pre.hash0, "{}: mapclear of an empty map drew", self.ctx);
            assert_eq!(observe_grow(&self.h, &self.fl), pre.grow);
        } else {
            self.ev.clears += 1;
            assert_ne!(self.h.hash0, pre.hash0, "{}: mapclear did not draw a new hash0", self.ctx);
            assert!(!self.h.growing() && !self.fl.has(SAME_SIZE_GROW));
            assert_eq!(self.h.noverflow, 0);
            assert_eq!(self.h.nevacuate, 0);
        }
        assert_eq!(self.h.b, pre.b, "{}: mapclear changed B", self.ctx);
        assert_eq!(self.h.count, 0);
        self.model.clear();
        self.present.clear();
        self.pos.clear();
        self.check_invariants();
    }

    /// `shrink` (gomap's own, not Go's): finishes growth, rebuilds at the
    /// smallest B that holds count, keeps hash0, draws nothing, same contents.
    fn shrink(&mut self) {
        self.ev.ops += 1;
        let pre = self.pre();
        let dropped = self.h.shrink(&self.fl);
        assert!(dropped.len() <= 1);
        drop(dropped);
        let mut want_b = 0u8;
        while go_over_load(pre.count, want_b) {
            want_b += 1;
        }
        assert_eq!(
            self.h.b,
            if pre.b == 0 && self.h.snapshot_buckets().is_none() { 0 } else { want_b },
            "{}: shrink B",
            self.ctx
        );
        assert!(!self.h.growing() && !self.fl.has(SAME_SIZE_GROW));
        assert_eq!(self.h.count, pre.count);
        assert_eq!(self.h.hash0, pre.hash0, "{}: shrink changed hash0", self.ctx);
        self.ev.shrinks += 1;
        self.check_invariants();
    }

    fn lookup(&self, k: &K) {
        let want = self.model.get(&k.m());
        let got = self.h.mapaccess(&self.fl, k).unwrap();
        assert_eq!(got, want.map(|x| &x.1), "{}: mapaccess({k:?})", self.ctx);
        let got_k = self.h.mapaccess_k(&self.fl, k).unwrap();
        match (got_k, want) {
            (None, None) => {}
            (Some((gk, gv)), Some((wk, wv))) => {
                assert!(gk.same_repr(wk), "{}: mapaccess_k({k:?}) gave stored key {gk:?}, want {wk:?}", self.ctx);
                assert_eq!(gv, wv);
            }
            (g, w) => panic!("{}: mapaccess_k({k:?}) = {g:?}, model {w:?}", self.ctx),
        }
    }

    fn after_op(&mut self, k: &K, force: bool) {
        self.lookup(k);
        assert_eq!(self.h.count, self.model.len(), "{}: count", self.ctx);
        self.ev.max_b = self.ev.max_b.max(self.h.b);
        self.ev.max_count = self.ev.max_count.max(self.h.count);
        self.since_check += 1;
        let every = if self.full {
            1
        } else if cfg!(miri) {
            // Miri is ~1000x slower; keep the checks, thin them out.
            25
        } else {
            self.h.count.div_ceil(512).max(1)
        };
        if force || self.since_check >= every {
            self.since_check = 0;
            self.check_invariants();
        }
    }

    /// Walks one chain: the EMPTY_REST rule, tophash and bucket index of every
    /// live slot. Returns the number of live slots.
    fn check_chain(
        &self,
        chain: &[BucketView<'_, K, i64>],
        j: usize,
        m: usize,
        live: &mut Vec<(K::M, K, i64)>,
        what: &str,
    ) -> usize {
        let ctx = &self.ctx;
        let mut rest = false;
        let mut n = 0;
        let mut last_nonrest_live = true;
        for (bi, bv) in chain.iter().enumerate() {
            for i in 0..BUCKET_CNT {
                let top = bv.tophash[i];
                if rest {
                    assert_eq!(top, EMPTY_REST, "{ctx}: {what} chain {j} bucket {bi} slot {i}: {top} after EMPTY_REST");
                }
                match top {
                    EMPTY_REST => {
                        rest = true;
                        assert!(bv.entries[i].is_none());
                    }
                    EMPTY_ONE => {
                        assert!(bv.entries[i].is_none());
                        last_nonrest_live = false;
                    }
                    EVACUATED_X..=EVACUATED_EMPTY => {
                        panic!("{ctx}: evacuation mark {top} in {what} live chain {j} bucket {bi} slot {i}")
                    }
                    _ => {
                        let (k, v) = bv.entries[i].unwrap_or_else(|| panic!("{ctx}: live tophash without entry"));
                        let hash = khash(&self.h, k);
                        assert_eq!(top, go_tophash(hash), "{ctx}: {what} chain {j} slot {i}: tophash of {k:?}");
                        assert_eq!(
                            hash as usize & m,
                            j,
                            "{ctx}: {k:?} sits in {what} chain {j}, hash says {}",
                            hash as usize & m
                        );
                        live.push((k.m(), k.clone(), *v));
                        n += 1;
                        last_nonrest_live = true;
                    }
                }
            }
        }
        // Go's mapdelete turns a run of EMPTY_ONE reaching the end of the chain
        // into EMPTY_REST, and mapassign fills the first empty slot: an EMPTY_ONE
        // is always followed by a live slot somewhere later in its chain.
        assert!(last_nonrest_live, "{ctx}: {what} chain {j} ends in EMPTY_ONE (should be EMPTY_REST)");
        n
    }

    fn check_invariants(&self) {
        let ctx = &self.ctx;
        let h = &self.h;
        let b = h.b;
        let nb = 1usize << b;
        let same = self.fl.has(SAME_SIZE_GROW);
        let old = h.snapshot_oldbuckets();
        assert_eq!(h.growing(), old.is_some());
        if old.is_none() {
            assert!(!same, "{ctx}: SAME_SIZE_GROW set while not growing");
        }
        let old_n = old.as_ref().map_or(0, |o| o.len());
        if old.is_some() {
            assert_eq!(old_n, if same { nb } else { nb / 2 }, "{ctx}: old array size");
        }
        let mut live = Vec::new();
        let snap = h.snapshot_buckets();
        match &snap {
            None => {
                assert_eq!(h.count, 0, "{ctx}: entries without buckets");
                assert!(old.is_none());
            }
            Some(chains) => {
                assert_eq!(chains.len(), nb, "{ctx}: number of chains != 2^B");
                for (j, chain) in chains.iter().enumerate() {
                    let n = self.check_chain(chain, j, nb - 1, &mut live, "new");
                    if let Some(o) = &old {
                        if !matches!(o[j & (old_n - 1)], OldView::Evacuated(_)) {
                            assert_eq!(n, 0, "{ctx}: new chain {j} has entries before its old bucket was evacuated");
                        }
                    }
                }
            }
        }
        if let Some(o) = &old {
            for (j, v) in o.iter().enumerate() {
                match v {
                    OldView::Evacuated(th) => {
                        for (i, &t) in th.iter().enumerate() {
                            assert!(
                                (EVACUATED_X..=EVACUATED_EMPTY).contains(&t),
                                "{ctx}: evacuated old bucket {j} slot {i} has tophash {t}"
                            );
                            if same {
                                assert_ne!(t, EVACUATED_Y, "{ctx}: EVACUATED_Y in a same-size grow");
                            }
                        }
                    }
                    OldView::Chain(c) => {
                        self.check_chain(c, j, old_n - 1, &mut live, "old");
                    }
                }
            }
        }
        assert_eq!(live.len(), h.count, "{ctx}: live slots != count");
        assert_eq!(h.count, self.model.len(), "{ctx}: count != model");
        let mut seen = HashSet::with_capacity(live.len());
        for (m, k, v) in &live {
            assert!(seen.insert(m), "{ctx}: key {k:?} stored twice");
            let (wk, wv) = self.model.get(m).unwrap_or_else(|| panic!("{ctx}: stored key {k:?} is not in the model"));
            assert!(k.same_repr(wk), "{ctx}: stored key {k:?}, model {wk:?}");
            assert_eq!(v, wv, "{ctx}: elem of {k:?}");
        }
        let st = h.stats();
        assert_eq!(st.count, h.count);
        assert_eq!(st.b, b);
        assert_eq!(st.buckets, if snap.is_some() { nb } else { 0 });
        assert_eq!(st.old_buckets, old_n);
        assert_eq!(st.growing, h.growing());
        if b < 16 {
            assert_eq!(
                st.noverflow as usize, st.overflow_buckets,
                "{ctx}: noverflow != overflow buckets of the current array"
            );
        }
    }

    /// The order Go's mapiternext produces with no writes under it, from a
    /// snapshot and the iterator's start bucket and offset.
    fn predict_order(&self, start: usize, offset: u8) -> Vec<(K::M, i64)> {
        let mut out = Vec::new();
        if self.h.count == 0 {
            return out;
        }
        let b = self.h.b;
        let nb = 1usize << b;
        let chains = self.h.snapshot_buckets().unwrap();
        let old = self.h.snapshot_oldbuckets();
        let same = self.fl.has(SAME_SIZE_GROW);
        let walk = |chain: &[BucketView<'_, K, i64>], filter: Option<usize>, out: &mut Vec<(K::M, i64)>| {
            for bv in chain {
                for i in 0..BUCKET_CNT {
                    let offi = (i + offset as usize) & (BUCKET_CNT - 1);
                    if let Some((k, v)) = bv.entries[offi] {
                        if let Some(j) = filter {
                            if khash(&self.h, k) as usize & mask(b) != j {
                                continue;
                            }
                        }
                        out.push((k.m(), *v));
                    }
                }
            }
        };
        for j in (start..nb).chain(0..start) {
            match &old {
                Some(o) => match &o[j & (o.len() - 1)] {
                    OldView::Chain(c) => walk(c, if same { None } else { Some(j) }, &mut out),
                    OldView::Evacuated(_) => walk(&chains[j], None, &mut out),
                },
                None => walk(&chains[j], None, &mut out),
            }
        }
        out
    }

    /// A full iteration with no writes: Go's exact order, and the model's contents.
    fn check_iteration(&mut self) {
        self.ev.iterations += 1;
        let mut it = self.h.mapiterinit(&self.fl);
        let (start, offset) = it.start();
        assert!(offset < 8);
        if self.h.count > 0 {
            assert!(start < 1 << self.h.b);
            assert!(self.fl.has(ITERATOR) && self.fl.has(OLD_ITERATOR));
        } else {
            assert!(it.finished());
        }
        let mut got = Vec::new();
        while let Some((k, v)) = self.h.mapiternext(&self.fl, &mut it).unwrap() {
            let (wk, _) =
                self.model.get(&k.m()).unwrap_or_else(|| panic!("{}: iteration produced {k:?} not in map", self.ctx));
            assert!(k.same_repr(wk), "{}: iteration key repr {k:?} vs {wk:?}", self.ctx);
            got.push((k.m(), *v));
            assert!(got.len() <= self.model.len(), "{}: iteration produced more entries than the map holds", self.ctx);
        }
        assert!(it.finished());
        assert!(self.h.mapiternext(&self.fl, &mut it).unwrap().is_none(), "a finished iterator produced more");
        let want_order = self.predict_order(start, offset);
        assert_eq!(got, want_order, "{}: iteration order from start ({start}, {offset})", self.ctx);
        let mut got_sorted = got;
        got_sorted.sort();
        let mut want: Vec<(K::M, i64)> = self.model.iter().map(|(m, (_, v))| (m.clone(), *v)).collect();
        want.sort();
        assert_eq!(got_sorted, want, "{}: iteration multiset", self.ctx);
    }
}

// ---------------------------------------------------------------------------
// 1 + 2. Differential runs; invariants after each op.
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    Grow,
    Churn,
    Shrink,
}

fn run_differential<K: TK>(seed: u64, ops: usize, max_size: usize, hint: usize) -> Events {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut hs = Harness::<K>::new(hint, seed);
    let mut next_idx: u64 = 0;
    let mut phase = Phase::Grow;
    let mut phase_left = 0usize;
    for op in 0..ops {
        if phase_left == 0 {
            phase = match rng.random_range(0..10) {
                0..=3 => Phase::Grow,
                4..=7 => Phase::Churn,
                _ => Phase::Shrink,
            };
            phase_left = rng.random_range(50..(max_size * 2).max(100));
        }
        phase_left -= 1;
        if phase == Phase::Grow && hs.h.count >= max_size {
            phase = Phase::Churn;
        }
        if phase == Phase::Shrink && hs.h.count == 0 {
            phase = Phase::Grow;
        }
        let r = rng.random_range(0..100);
        let fresh = |n: &mut u64| {
            *n += 1;
            K::from_idx(*n - 1)
        };
        let v: i64 = rng.random();
        match (phase, r) {
            (_, 0) if rng.random_range(0..20) == 0 => hs.clear(),
            (Phase::Shrink, 1) if rng.random_range(0..10) == 0 => hs.shrink(),
            (Phase::Churn, 0..=79) => {
                // Hold the count at max_size, replacing keys: deletes leave holes,
                // fresh keys land elsewhere, chains overflow, and overflow buckets
                // pile up until a same-size grow packs them.
                if hs.h.count < max_size {
                    let k = fresh(&mut next_idx);
                    hs.assign(k, v)
                } else {
                    let k = hs.random_present(&mut rng).unwrap();
                    hs.delete(&k)
                }
            }
            (Phase::Grow, 0..=54) | (Phase::Shrink, 0..=4) => {
                let k = fresh(&mut next_idx);
                hs.assign(k, v)
            }
            (Phase::Grow, 55..=64) => {
                // Re-insert (or overwrite) an earlier key.
                let k = K::from_idx(rng.random_range(0..next_idx.max(1)));
                let k = k.variant(&mut rng);
                hs.assign(k, v)
            }
            (Phase::Grow, 65..=74) | (Phase::Churn, 80..=84) | (Phase::Shrink, 5..=9) => {
                match hs.random_present(&mut rng) {
                    Some(k) => hs.assign(k, v),
                    None => hs.lookup(&K::from_idx(next_idx)),
                }
            }
            (Phase::Grow, 75..=81) | (Phase::Shrink, 10..=64) => match hs.random_present(&mut rng) {
                Some(k) => hs.delete(&k),
                None => hs.delete(&K::from_idx(next_idx + 5)),
            },
            (Phase::Grow, 82..=86) | (Phase::Churn, 85..=89) | (Phase::Shrink, 65..=74) => {
                // Delete a key that may or may not be present, or surely is not.
                let k = if rng.random_bool(0.5) {
                    K::from_idx(rng.random_range(0..next_idx.max(1)))
                } else {
                    K::from_idx(next_idx + rng.random_range(0..1000))
                };
                hs.delete(&k)
            }
            _ => {
                let k = match hs.random_present(&mut rng) {
                    Some(k) if rng.random_bool(0.7) => k,
                    _ => K::from_idx(rng.random_range(0..next_idx + 10)),
                };
                hs.lookup(&k)
            }
        }
        if op % 397 == 0 {
            hs.check_invariants();
            hs.check_iteration();
        }
    }
    hs.check_invariants();
    hs.check_iteration();
    // And empty it completely: delete-to-empty must draw.
    while let Some(k) = hs.random_present(&mut rng) {
        hs.delete(&k);
    }
    hs.check_invariants();
    hs.check_iteration();
    hs.ev
}

/// (seed, ops, max size, hint). Small maps churn into same-size growth; the
/// large ones grow through several B.
fn configs() -> Vec<(u64, usize, usize, usize)> {
    let s = scale();
    vec![
        (1, 3000 * s, 12, 0),
        (2, 3000 * s, 25, 0),
        (3, 4000 * s, 50, 0),
        (8, 4000 * s, 100, 0),
        (4, 5000 * s, 400, 0),
        (5, 6000 * s, 1500, 0),
        (6, 3000 * s, 200, 300),
        (7, 4000 * s, 3000, 0),
    ]
}

fn differential<K: TK>(seed_base: u64) -> Events {
    let mut total = Events::default();
    for (seed, ops, max_size, hint) in configs() {
        let ev = run_differential::<K>(seed_base * 1000 + seed, ops, max_size, hint);
        total.ops += ev.ops;
        total.grows += ev.grows;
        total.same_size_grows += ev.same_size_grows;
        total.clears += ev.clears;
        total.hash0_redraws += ev.hash0_redraws;
        total.iterations += ev.iterations;
        total.grow_work_ops += ev.grow_work_ops;
        total.max_b = total.max_b.max(ev.max_b);
        total.max_count = total.max_count.max(ev.max_count);
        total.shrinks += ev.shrinks;
    }
    // The runs must actually reach what they claim to test.
    assert!(total.grows >= 20, "{total:?}");
    assert!(total.same_size_grows >= 1, "no same-size growth happened: {total:?}");
    assert!(total.clears >= 1, "{total:?}");
    assert!(total.hash0_redraws >= 2, "{total:?}");
    assert!(total.max_b >= 8, "{total:?}");
    assert!(total.grow_work_ops >= 100, "{total:?}");
    assert!(total.shrinks >= 1, "{total:?}");
    eprintln!("{}: {total:?}", K::NAME);
    total
}

#[test]
fn differential_i64() {
    differential::<i64>(1);
}

#[test]
fn differential_i32() {
    differential::<i32>(2);
}

#[test]
fn differential_u64() {
    differential::<u64>(3);
}

#[test]
fn differential_str() {
    differential::<Box<str>>(4);
}

#[test]
fn differential_f64() {
    differential::<f64>(5);
}

#[test]
fn differential_u32_f32_bytes_short() {
    for (seed, ops, max_size) in [(11u64, 3000usize, 30usize), (12, 3000, 700)] {
        run_differential::<u32>(seed, ops * scale(), max_size, 0);
        run_differential::<f32>(seed, ops * scale(), max_size, 0);
        run_differential::<Box<[u8]>>(seed, ops * scale(), max_size, 0);
    }
}

/// +0.0 and -0.0 are one key; the last assignment's sign is the stored key
/// (`needkeyupdate`), and either sign finds and deletes it.
#[test]
fn float_zero_is_one_key_and_key_is_updated() {
    let mut hs = Harness::<f64>::new(0, 99);
    hs.assign(0.0, 1);
    hs.assign(-0.0, 2);
    assert_eq!(hs.h.count, 1);
    let (k, v) = hs.h.mapaccess_k(&hs.fl, &0.0).unwrap().unwrap();
    assert_eq!((k.to_bits(), *v), ((-0.0f64).to_bits(), 2));
    // Also across a grow: the key update happens in the new array.
    for i in 10..200 {
        hs.assign(i as f64, i);
    }
    hs.assign(0.0, 3);
    let (k, _) = hs.h.mapaccess_k(&hs.fl, &-0.0).unwrap().unwrap();
    assert_eq!(k.to_bits(), 0.0f64.to_bits());
    hs.delete(&-0.0);
    hs.lookup(&0.0);
    hs.check_iteration();
}

// ---------------------------------------------------------------------------
// 3. Growth and evacuation, step by step.
// ---------------------------------------------------------------------------

const HK: [u64; 4] = [0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210, 7, 9];

/// A fresh i64 key (>= *next) whose hash under the map's current hash0
/// satisfies `pred`.
fn find_key(h: &HMap<i64, i64>, next: &mut i64, pred: impl Fn(u64) -> bool) -> i64 {
    loop {
        let k = *next;
        *next += 1;
        if pred(khash(h, &k)) {
            return k;
        }
    }
}

/// Every slot of every bucket of a chain, in order.
fn chain_slots<K: TK>(chain: &[BucketView<'_, K, i64>]) -> Vec<Option<K>> {
    chain.iter().flat_map(|bv| bv.entries.iter().map(|e| e.map(|(k, _)| k.clone()))).collect()
}

fn chain_keys<K: TK>(chain: &[BucketView<'_, K, i64>]) -> Vec<K> {
    chain_slots(chain).into_iter().flatten().collect()
}

#[test]
fn load_factor_thresholds_are_exact() {
    // makemap(hint): the smallest B that does not overload.
    for (hint, want_b) in
        [(0, 0), (8, 0), (9, 1), (13, 1), (14, 2), (26, 2), (27, 3), (52, 3), (53, 4), (104, 4), (105, 5)]
    {
        let h = HMap::<i64, i64>::makemap(hint, HK, FastRand::new(1, None), GoRelease::Go119);
        assert_eq!(h.b, want_b, "makemap({hint})");
        assert_eq!(h.snapshot_buckets().is_some(), want_b > 0, "makemap({hint}) allocates buckets iff B > 0");
    }
    // Inserting n keys one by one: B goes up exactly on the insert that makes
    // count > 8 and count > 6.5 * 2^B, i.e. the 9th, 14th, 27th, 53rd, ... key.
    let mut hs = Harness::<i64>::new(0, 5);
    assert!(hs.h.snapshot_buckets().is_none());
    let mut grow_at = Vec::new();
    for n in 1..=1700u64 {
        let b = hs.h.b;
        if go_over_load(hs.h.count + 1, b) {
            assert!(!hs.h.growing(), "previous grow unfinished at insert {n}");
        }
        hs.assign(n as i64 * 3, 0);
        if hs.h.b != b {
            assert_eq!(hs.h.b, b + 1);
            grow_at.push(n);
        }
        // Finish growing before the next threshold is reached, as Go does
        // naturally; speeds nothing up, only makes the sequence exact.
        if hs.h.growing() && n % 3 == 0 {
            hs.delete(&-1); // a missing key still does grow work
        }
    }
    assert_eq!(grow_at, vec![9, 14, 27, 53, 105, 209, 417, 833, 1665]);
    // An overwrite at the threshold does not grow; the next new key does.
    let mut hs = Harness::<i64>::new(0, 6);
    for k in 0..8 {
        hs.assign(k, 0);
    }
    hs.assign(3, 1);
    assert_eq!((hs.h.b, hs.h.growing()), (0, false));
    hs.assign(100, 0);
    assert_eq!(hs.h.b, 1);
    assert!(!hs.h.growing(), "B=0 -> 1: one old bucket, evacuated by the insert itself");
}

/// Before/after a step of a growing map: old bucket `j`'s chain and the new
/// chains it fed.
fn check_evacuated_from(
    h: &HMap<i64, i64>,
    same: bool,
    before: &[Vec<Option<i64>>],
    which: &[usize],
    inserted: Option<i64>,
) {
    let old = h.snapshot_oldbuckets();
    let new = h.snapshot_buckets().unwrap();
    let old_n = before.len();
    for &j in which {
        if let Some(o) = &old {
            let OldView::Evacuated(th) = &o[j] else { panic!("old bucket {j} not evacuated") };
            for i in 0..BUCKET_CNT {
                let want = match before[j][i] {
                    None => EVACUATED_EMPTY,
                    Some(k) if !same && khash(h, &k) as usize & old_n != 0 => EVACUATED_Y,
                    Some(_) => EVACUATED_X,
                };
                assert_eq!(th[i], want, "old bucket {j} slot {i} marker");
            }
        }
        let dests: Vec<usize> = if same { vec![j] } else { vec![j, j + old_n] };
        for d in dests {
            let mut want: Vec<i64> =
                before[j].iter().flatten().copied().filter(|k| khash(h, k) as usize & mask(h.b) == d).collect();
            if let Some(k) = inserted {
                if khash(h, &k) as usize & mask(h.b) == d {
                    want.push(k);
                }
            }
            assert_eq!(chain_keys(&new[d]), want, "new chain {d} after evacuating old bucket {j}: packed, in order");
            // Packed: no hole before the last entry.
            let slots = chain_slots(&new[d]);
            let n = slots.iter().filter(|s| s.is_some()).count();
            assert!(slots[..n].iter().all(|s| s.is_some()), "new chain {d} has holes");
        }
    }
}

fn old_chains(h: &HMap<i64, i64>) -> Vec<Vec<Option<i64>>> {
    match h.snapshot_oldbuckets() {
        Some(o) => o
            .iter()
            .map(|v| match v {
                OldView::Chain(c) => chain_slots(c),
                OldView::Evacuated(_) => Vec::new(),
            })
            .collect(),
        None => h.snapshot_buckets().unwrap().iter().map(|c| chain_slots(c)).collect(),
    }
}

fn evacuated_set(h: &HMap<i64, i64>) -> Vec<usize> {
    h.snapshot_oldbuckets()
        .map(|o| o.iter().enumerate().filter(|(_, v)| matches!(v, OldView::Evacuated(_))).map(|(j, _)| j).collect())
        .unwrap_or_default()
}

#[test]
fn insert_during_growth_evacuates_its_bucket_plus_nevacuate() {
    let mut hs = Harness::<i64>::new(0, 77);
    let mut next = 1000;
    for _ in 0..52 {
        let k = next;
        next += 1;
        hs.assign(k, k * 10);
    }
    while hs.h.growing() {
        hs.delete(&-5);
    }
    assert_eq!((hs.h.b, hs.h.count), (3, 52));

    // 53rd key, in old bucket 0: B 3 -> 4; evacuates 0, then nevacuate (1).
    let before = old_chains(&hs.h);
    let k = find_key(&hs.h, &mut next, |hash| hash & 7 == 0);
    hs.assign(k, 1);
    assert_eq!(hs.h.b, 4);
    assert!(hs.h.growing() && !hs.fl.has(SAME_SIZE_GROW));
    assert_eq!(evacuated_set(&hs.h), vec![0, 1]);
    assert_eq!(hs.h.nevacuate, 2);
    check_evacuated_from(&hs.h, false, &before, &[0, 1], Some(k));

    // Old bucket 5: evacuates 5 and then 2; nevacuate 3.
    let before = old_chains(&hs.h);
    let k = find_key(&hs.h, &mut next, |hash| hash & 7 == 5);
    hs.assign(k, 2);
    assert_eq!(evacuated_set(&hs.h), vec![0, 1, 2, 5]);
    assert_eq!(hs.h.nevacuate, 3);
    check_evacuated_from(&hs.h, false, &before, &[2, 5], Some(k));

    // An overwrite of an existing key in old bucket 3 also does grow work:
    // 3 (== nevacuate, so the mark moves to 4), then 4; the mark skips 5 -> 6.
    let before = old_chains(&hs.h);
    let existing = *before[3].iter().flatten().next().expect("old bucket 3 is empty; pick another seed");
    hs.assign(existing, 3);
    assert_eq!(evacuated_set(&hs.h), vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(hs.h.nevacuate, 6);
    check_evacuated_from(&hs.h, false, &before, &[3, 4], None);

    // A delete of a missing key in old bucket 7: evacuates 7, then 6; done.
    let before = old_chains(&hs.h);
    let missing = find_key(&hs.h, &mut next, |hash| hash & 7 == 7);
    let count = hs.h.count;
    hs.delete(&missing);
    assert_eq!(hs.h.count, count);
    assert!(!hs.h.growing(), "old array not dropped when evacuation completed");
    assert_eq!(hs.h.snapshot_oldbuckets().map(|o| o.len()), None);
    assert_eq!(hs.h.nevacuate, 8);
    check_evacuated_from(&hs.h, false, &before, &[6, 7], None);
    hs.check_iteration();
}

#[test]
fn lookups_read_unevacuated_old_buckets() {
    // B=5 -> 6: 32 old buckets, each op evacuates at most two; check every key
    // (in evacuated and not-yet-evacuated buckets) after each op.
    let mut hs = Harness::<i64>::new(0, 31);
    hs.full = true;
    for k in 0..208 {
        hs.assign(k, k);
    }
    while hs.h.growing() {
        hs.delete(&-1);
    }
    assert_eq!(hs.h.b, 5);
    hs.assign(208, 208);
    assert!(hs.h.growing());
    let mut steps = 0;
    while hs.h.growing() {
        for k in 0..=210 {
            hs.lookup(&k);
        }
        hs.check_iteration(); // started mid-grow: the check_bucket path
        hs.assign((steps % 5 + 1000) as i64, 0);
        steps += 1;
    }
    assert!(steps >= 4, "grow finished too fast to exercise anything ({steps})");
}

#[test]
fn same_size_growth_when_too_many_overflow_buckets() {
    let mut hs = Harness::<i64>::new(14, 4242); // B = 2
    hs.full = true;
    assert_eq!(hs.h.b, 2);
    let mut next = 0;
    // One resident key per bucket, so the map never empties (which would redraw hash0).
    for j in 0..4u64 {
        let k = find_key(&hs.h, &mut next, |hash| hash & 3 == j);
        hs.assign(k, 0);
    }
    // For buckets 0..3: overflow the chain with 8 more keys, then delete them.
    for j in 0..4u64 {
        let ks: Vec<i64> = (0..8).map(|_| find_key(&hs.h, &mut next, |hash| hash & 3 == j)).collect();
        for &k in &ks {
            assert!(!hs.h.growing());
            hs.assign(k, 1);
        }
        assert_eq!(hs.h.noverflow as u64, j + 1, "the 9th key of chain {j} allocates one overflow bucket");
        assert_eq!(hs.h.count, 4 + 8, "count stays below the load factor");
        if j < 3 {
            for &k in &ks {
                hs.delete(&k);
            }
            // Overwrites, deletes and lookups never start a grow; nor does an
            // insert while noverflow < 2^B.
            let k = find_key(&hs.h, &mut next, |hash| hash & 3 == j);
            hs.assign(k, 5);
            hs.delete(&k);
            assert!(!hs.h.growing());
        }
    }
    assert_eq!(hs.h.noverflow, 4);
    assert_eq!(hs.h.stats().overflow_buckets, 4);
    assert!(!hs.h.growing());
    // An overwrite does not grow even now.
    let resident = *hs.model.keys().next().unwrap();
    hs.assign(resident, 9);
    assert!(!hs.h.growing());
    // The next new key does: same size, flag set. Its bucket is 2, so grow work
    // evacuates 2 and then 0 (nevacuate), leaving 1 and 3.
    let before = old_chains(&hs.h);
    let k = find_key(&hs.h, &mut next, |hash| hash & 3 == 2);
    hs.assign(k, 7);
    assert_eq!(hs.h.b, 2, "same-size growth keeps B");
    assert!(hs.h.growing());
    assert!(hs.fl.has(SAME_SIZE_GROW));
    assert_eq!(hs.h.snapshot_oldbuckets().unwrap().len(), 4);
    assert_eq!(evacuated_set(&hs.h), vec![0, 2]);
    assert_eq!(hs.h.nevacuate, 1);
    check_evacuated_from(&hs.h, true, &before, &[0, 2], Some(k));
    hs.check_iteration();
    // Finish with a lookup-free delete of a missing key in bucket 3: 3 then 1.
    let before = old_chains(&hs.h);
    let missing = find_key(&hs.h, &mut next, |hash| hash & 3 == 3);
    hs.delete(&missing);
    assert!(!hs.h.growing());
    assert!(!hs.fl.has(SAME_SIZE_GROW), "SAME_SIZE_GROW not cleared when growth completed");
    check_evacuated_from(&hs.h, true, &before, &[1, 3], None);
    // Packed: bucket 3 holds 9 keys (one overflow), the others one each.
    assert_eq!(hs.h.noverflow, 1);
    assert_eq!(hs.h.stats().overflow_buckets, 1);
    hs.check_iteration();
}

/// An external source of draws that counts what it hands out.
struct Draws {
    v: VecDeque<u64>,
    used: Arc<AtomicUsize>,
}

impl Iterator for Draws {
    type Item = u64;
    fn next(&mut self) -> Option<u64> {
        let x = self.v.pop_front();
        if x.is_some() {
            self.used.fetch_add(1, Ordering::SeqCst);
        }
        x
    }
}

fn external(vals: &[u64]) -> (FastRand, Arc<AtomicUsize>) {
    let used = Arc::new(AtomicUsize::new(0));
    let d = Draws { v: vals.iter().copied().collect(), used: used.clone() };
    (FastRand::new(12345, Some(Box::new(d))), used)
}

#[test]
fn hash0_draws_on_makemap_clear_and_delete_to_empty() {
    let draws = [
        0xaaaa_bbbb_1111_2222u64, // makemap: hash0 = low 32 bits
        0x0000_0001_3333_4444,    // mapclear
        0xffff_ffff_5555_6666,    // delete to empty
        0x1234_5678_9abc_def7,    // mapiterinit (B = 4: low 32 bits -> r)
        0x0000_0000_0000_0000,    // mapclear with an iterator open
    ];
    let (r, used) = external(&draws);
    let fl = FlagWord::new();
    let mut h = HMap::<i64, i64>::makemap(0, HK, r, GoRelease::Go119);
    assert_eq!(h.hash0, 0x1111_2222);
    assert_eq!(used.load(Ordering::SeqCst), 1);
    for k in 0..100 {
        h.mapassign(&fl, k, k).unwrap();
    }
    h.finish_growth(&fl).unwrap();
    assert_eq!((h.b, h.count), (4, 100));
    assert_eq!(used.load(Ordering::SeqCst), 1, "inserts below B=16 draw nothing");

    let dropped = h.mapclear(&fl);
    assert_eq!(dropped.len(), 1);
    drop(dropped);
    assert_eq!(h.hash0, 0x3333_4444);
    assert_eq!(used.load(Ordering::SeqCst), 2);
    assert_eq!((h.b, h.count, h.noverflow), (4, 0, 0), "mapclear keeps B");
    let snap = h.snapshot_buckets().unwrap();
    assert_eq!(snap.len(), 16);
    for c in &snap {
        assert_eq!(c.len(), 1, "cleared array has no overflow chains");
        assert_eq!(c[0].tophash, [EMPTY_REST; 8]);
    }
    drop(snap);
    for k in 0..100 {
        assert_eq!(h.mapaccess(&fl, &k).unwrap(), None);
    }

    // No draws: clearing an empty map, deleting from it, iterating it.
    assert!(h.mapclear(&fl).is_empty());
    assert_eq!(h.mapdelete(&fl, &5).unwrap(), None);
    let mut it = h.mapiterinit(&fl);
    assert!(it.finished());
    assert!(h.mapiternext(&fl, &mut it).unwrap().is_none());
    assert_eq!(used.load(Ordering::SeqCst), 2);

    // Delete-to-empty draws; deletes that leave entries, and missing keys, do not.
    h.mapassign(&fl, 7, 70).unwrap();
    h.mapassign(&fl, 8, 80).unwrap();
    assert_eq!(h.mapdelete(&fl, &9).unwrap(), None);
    assert_eq!(h.mapdelete(&fl, &7).unwrap(), Some((7, 70)));
    assert_eq!(h.hash0, 0x3333_4444);
    assert_eq!(h.mapdelete(&fl, &8).unwrap(), Some((8, 80)));
    assert_eq!(h.hash0, 0x5555_6666);
    assert_eq!(used.load(Ordering::SeqCst), 3);

    // Iteration start: r = fastrand() (low 32 bits) = 0x9abcdef7 with B = 4:
    // start bucket r & 15 = 7, offset (r >> 4) & 7 = 7.
    for k in 0..60 {
        h.mapassign(&fl, k, k).unwrap();
    }
    assert_eq!(h.b, 4);
    assert!(!h.growing());
    let mut it = h.mapiterinit(&fl);
    assert_eq!(used.load(Ordering::SeqCst), 4);
    assert_eq!(it.start(), (0x9abc_def7 & 15, ((0x9abc_def7u64 >> 4) & 7) as u8));
    let first = *h.mapiternext(&fl, &mut it).unwrap().unwrap().0;
    // mapclear under the open iterator: draws, and the iterator stops.
    drop(h.mapclear(&fl));
    assert_eq!(h.hash0, 0);
    assert_eq!(used.load(Ordering::SeqCst), 5);
    h.mapassign(&fl, first, 1).unwrap();
    h.mapassign(&fl, 1000, 1).unwrap();
    assert!(h.mapiternext(&fl, &mut it).unwrap().is_none(), "iterator produced entries after mapclear");
    assert!(h.mapiternext(&fl, &mut it).unwrap().is_none());
    // The external source is exhausted: later draws come from the own generator.
    h.mapdelete(&fl, &first).unwrap();
    h.mapdelete(&fl, &1000).unwrap();
    assert_eq!(used.load(Ordering::SeqCst), 5);
}

#[test]
fn nodraw_iterator_reset_tables_and_shrink_draw_nothing() {
    let (r, used) = external(&[0x77, 1, 2, 3, 4, 5, 6, 7, 8]);
    let mut hs = Harness::<i64> {
        h: HMap::makemap(0, HK, r, GoRelease::Go119),
        fl: FlagWord::new(),
        model: HashMap::new(),
        present: Vec::new(),
        pos: HashMap::new(),
        ev: Events::default(),
        full: true,
        since_check: 0,
        ctx: "nodraw".into(),
    };
    assert_eq!(used.load(Ordering::SeqCst), 1);
    for k in 0..300 {
        hs.assign(k, k);
    }
    // mapiterinit_nodraw: bucket 0, offset 0, every entry once, no draw.
    let mut it = hs.h.mapiterinit_nodraw();
    assert_eq!(it.start(), (0, 0));
    let mut got = Vec::new();
    while let Some((k, v)) = hs.h.mapiternext(&hs.fl, &mut it).unwrap() {
        got.push((*k, *v));
    }
    assert_eq!(got.len(), 300);
    assert_eq!(got.iter().map(|x| (x.0, x.1)).collect::<Vec<_>>(), hs.predict_order(0, 0));
    assert_eq!(used.load(Ordering::SeqCst), 1);
    // Shrink after deleting most entries: B drops, no draw, an open iterator ends.
    let mut li = hs.start_iter();
    assert_eq!(used.load(Ordering::SeqCst), 2);
    assert!(hs.step(&mut li));
    for k in 20..300 {
        hs.delete(&k);
    }
    let b_before = hs.h.b;
    hs.shrink();
    assert!(hs.h.b < b_before);
    assert_eq!(hs.h.b, 2, "20 entries: B=2");
    assert!(!hs.step(&mut li), "iterator produced after shrink");
    assert_eq!(used.load(Ordering::SeqCst), 2, "shrink drew from the external source");
    // reset_tables: like mapclear without the draw.
    let h0 = hs.h.hash0;
    drop(hs.h.reset_tables(&hs.fl));
    assert_eq!((hs.h.count, hs.h.b, hs.h.hash0), (0, 2, h0));
    assert_eq!(used.load(Ordering::SeqCst), 2);
}

#[test]
fn shrink_mid_growth_and_with_held_iterators() {
    let mut rng = StdRng::seed_from_u64(3);
    let mut hs = Harness::<Box<str>>::new(0, 3);
    hs.full = !cfg!(miri);
    let mut its = Vec::new();
    for i in 0..420u64 {
        if i % 50 == 0 {
            its.push(hs.start_iter());
        }
        hs.assign(Box::<str>::from_idx(i), i as i64);
        for li in &mut its {
            if rng.random_bool(0.5) {
                hs.step(li);
            }
        }
    }
    assert!(hs.h.growing() && hs.h.b == 7, "420 entries: B 6 -> 7 still in progress");
    // Mid-growth: the grow is finished first; 420 entries need B=7 (> 6.5 * 64).
    hs.shrink();
    assert_eq!(hs.h.b, 7);
    for li in &mut its {
        assert!(!hs.step(li), "iterator produced after shrink");
    }
    let mut its = vec![hs.start_iter(), hs.start_iter()];
    hs.step(&mut its[0]);
    for i in 0..400u64 {
        let k = Box::<str>::from_idx(i);
        for li in &mut its {
            li.deleted.insert(k.clone());
        }
        hs.delete(&k);
    }
    hs.shrink();
    assert_eq!(hs.h.b, 2);
    for li in &mut its {
        assert!(!hs.step(li), "iterator produced after shrink");
    }
    for i in 1000..1100u64 {
        hs.assign(Box::<str>::from_idx(i), 0);
    }
    hs.check_iteration();
    drop(its);
}

/// B >= 16: noverflow counts overflow buckets only approximately (a draw per
/// new overflow bucket); everything else must still hold.
#[test]
#[cfg_attr(debug_assertions, ignore = "large; run with --release")]
fn large_map_past_b16() {
    let fl = FlagWord::new();
    let mut h = HMap::<u64, i64>::makemap(0, HK, FastRand::new(5, None), GoRelease::Go119);
    let n = 13 * (1u64 << 14) + 1000; // past the B=15 -> 16 threshold (13 * 2^15 / 2)
    for k in 0..n {
        assert_eq!(h.mapassign(&fl, u64::from_idx(k), k as i64).unwrap(), None);
    }
    assert_eq!(h.b, 16);
    assert_eq!(h.count as u64, n);
    for k in (0..n).step_by(7) {
        assert_eq!(h.mapaccess(&fl, &u64::from_idx(k)).unwrap(), Some(&(k as i64)));
    }
    for k in (0..n).step_by(3) {
        assert!(h.mapdelete(&fl, &u64::from_idx(k)).unwrap().is_some());
    }
    let st = h.stats();
    assert!((st.noverflow as usize) <= st.overflow_buckets);
    let mut it = h.mapiterinit(&fl);
    let mut seen = 0u64;
    while let Some((k, v)) = h.mapiternext(&fl, &mut it).unwrap() {
        assert_eq!(u64::from_idx(*v as u64), *k);
        assert!(*v % 3 != 0);
        seen += 1;
    }
    assert_eq!(seen, h.count as u64);
}

#[test]
fn iteration_start_bucket_and_offset_from_draw() {
    // For several B and draws: start() == (r & (2^B-1), (r >> B) & 7), and the
    // produced order is Go's for that start (checked by check_iteration's
    // prediction, here with the start fixed by the draw).
    for (n, want_b) in [(5usize, 0u8), (12, 1), (20, 2), (40, 3), (100, 4), (400, 6)] {
        for r in [0u64, 1, 7, 0x5a5a_5a5a, 0xffff_ffff, 0x0123_4567_89ab_cdef, 1 << 40 | 0x38] {
            let (fr, used) = external(&[0xdead_beef, r]);
            let mut hs = Harness::<i64> {
                h: HMap::makemap(0, HK, fr, GoRelease::Go119),
                fl: FlagWord::new(),
                model: HashMap::new(),
                present: Vec::new(),
                pos: HashMap::new(),
                ev: Events::default(),
                full: false,
                since_check: 0,
                ctx: format!("start n={n} r={r:#x}"),
            };
            for k in 0..n as i64 {
                hs.assign(k * 11, k);
            }
            hs.h.finish_growth(&hs.fl).unwrap();
            assert_eq!(hs.h.b, want_b);
            let r32 = r as u32 as usize;
            let it = hs.h.mapiterinit(&hs.fl);
            assert_eq!(used.load(Ordering::SeqCst), 2);
            assert_eq!(it.start(), (r32 & mask(want_b), ((r32 >> want_b) & 7) as u8), "n={n} r={r:#x}");
            drop(it);
            // The next iteration uses the own generator; its order is still Go's.
            hs.check_iteration();
        }
    }
}

#[test]
fn clone_with_mid_growth_behaves_like_the_original() {
    let mut rng = StdRng::seed_from_u64(8);
    let mut a = Harness::<Box<str>>::new(0, 8);
    for i in 0..300 {
        a.assign(Box::<str>::from_idx(i), i as i64);
        if a.h.growing() && i > 200 {
            break;
        }
    }
    assert!(a.h.growing());
    let mut b = Harness::<Box<str>> {
        h: a.h.clone_with(|v| *v),
        fl: FlagWord::new(),
        model: a.model.clone(),
        present: a.present.clone(),
        pos: a.pos.clone(),
        ev: Events::default(),
        full: !cfg!(miri),
        since_check: 0,
        ctx: "clone".into(),
    };
    if a.fl.has(SAME_SIZE_GROW) {
        b.fl.set(SAME_SIZE_GROW);
    }
    b.check_invariants();
    assert_eq!(observe_grow(&a.h, &a.fl), observe_grow(&b.h, &b.fl));
    for i in 0..400u64 {
        let k = Box::<str>::from_idx(rng.random_range(0..500));
        if i % 3 == 0 {
            a.delete(&k);
            b.delete(&k);
        } else {
            a.assign(k.clone(), i as i64);
            b.assign(k, i as i64);
        }
    }
    a.check_invariants();
    b.check_invariants();
    b.check_iteration();
}

// ---------------------------------------------------------------------------
// 4. Iteration semantics with writes under the iterator.
// ---------------------------------------------------------------------------

struct LiveIter<K: TK> {
    it: HIter<K, i64>,
    produced: HashSet<K::M>,
    at_start: HashSet<K::M>,
    deleted: HashSet<K::M>,
    cleared: bool,
    b_at_start: u8,
    grows_seen: usize,
}

impl<K: TK> Harness<K> {
    fn start_iter(&self) -> LiveIter<K> {
        LiveIter {
            it: self.h.mapiterinit(&self.fl),
            produced: HashSet::new(),
            at_start: self.model.keys().cloned().collect(),
            deleted: HashSet::new(),
            cleared: false,
            b_at_start: self.h.b,
            grows_seen: 0,
        }
    }

    /// One mapiternext step, checked: no key twice, only keys in the map right
    /// now, with their current elem. False when the iteration has ended.
    fn step(&self, li: &mut LiveIter<K>) -> bool {
        match self.h.mapiternext(&self.fl, &mut li.it).unwrap() {
            None => {
                assert!(li.it.finished());
                false
            }
            Some((k, v)) => {
                let ctx = &self.ctx;
                assert!(!li.cleared, "{ctx}: iterator produced {k:?} after mapclear");
                let m = k.m();
                assert!(!li.deleted.contains(&m), "{ctx}: iterator produced deleted key {k:?}");
                let (wk, wv) =
                    self.model.get(&m).unwrap_or_else(|| panic!("{ctx}: iterator produced {k:?}, not in the map"));
                assert!(k.same_repr(wk), "{ctx}: produced key {k:?}, stored {wk:?}");
                assert_eq!(v, wv, "{ctx}: produced a stale elem for {k:?}");
                assert!(li.produced.insert(m), "{ctx}: iterator produced {k:?} twice");
                true
            }
        }
    }

    fn finish_iter(&self, li: &LiveIter<K>) {
        assert!(li.it.finished());
        if li.cleared {
            return;
        }
        for m in &li.at_start {
            if !li.deleted.contains(m) {
                assert!(li.produced.contains(m), "{}: key {m:?} present throughout was never produced", self.ctx);
            }
        }
    }
}

/// Random ops with several iterators open. Keys deleted under an iterator are
/// never re-inserted while it is open (Go may produce a re-inserted key twice).
fn run_iter_interleaved<K: TK>(seed: u64, ops: usize, max_size: usize) -> (usize, usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut finished = 0;
    let mut across_growth = 0;
    let mut done_ops = 0;
    let mut epoch = 0;
    // Epochs: a fresh map filled from empty to max_size (doubling grows under
    // the iterators), then held at max_size while keys are replaced (same-size
    // grows), up to 4 iterators open at any time.
    while done_ops < ops {
        let mut hs = Harness::<K>::new(0, seed * 1000 + epoch);
        epoch += 1;
        let mut next_idx: u64 = 0;
        let mut iters: Vec<LiveIter<K>> = Vec::new();
        let epoch_ops = (max_size * 3).min(ops - done_ops).max(1);
        for op in 0..epoch_ops {
            if iters.len() < 4 && rng.random_range(0..8) == 0 {
                iters.push(hs.start_iter());
            }
            let grows_before = hs.ev.grows;
            let filling = op < epoch_ops / 2 && hs.h.count < max_size;
            let r = rng.random_range(0..100);
            match r {
                0 if rng.random_range(0..50) == 0 => {
                    hs.clear();
                    for li in &mut iters {
                        li.cleared = true;
                        // Go would read the cleared array: nothing more.
                        assert!(!hs.step(li), "iterator produced after mapclear");
                    }
                }
                0..=59 if filling || hs.h.count < max_size => {
                    let k = K::from_idx(next_idx);
                    next_idx += 1;
                    hs.assign(k, rng.random());
                }
                0..=74 => {
                    if let Some(k) = hs.random_present(&mut rng) {
                        hs.assign(k, rng.random());
                    }
                }
                75..=94 => {
                    if let Some(k) = hs.random_present(&mut rng) {
                        for li in &mut iters {
                            li.deleted.insert(k.m());
                        }
                        hs.delete(&k);
                    }
                }
                _ => hs.delete(&K::from_idx(next_idx + 3)),
            }
            if hs.ev.grows != grows_before {
                for li in &mut iters {
                    li.grows_seen += 1;
                }
            }
            // Advance the iterators a little.
            let mut i = 0;
            while i < iters.len() {
                let n = rng.random_range(0..3);
                let mut alive = true;
                for _ in 0..n {
                    if !hs.step(&mut iters[i]) {
                        alive = false;
                        break;
                    }
                }
                if alive {
                    i += 1;
                } else {
                    let li = iters.swap_remove(i);
                    hs.finish_iter(&li);
                    finished += 1;
                    if li.grows_seen > 0 {
                        across_growth += 1;
                    }
                }
            }
        }
        done_ops += epoch_ops;
        hs.check_invariants();
        for mut li in iters {
            while hs.step(&mut li) {}
            hs.finish_iter(&li);
            finished += 1;
            if li.grows_seen > 0 {
                across_growth += 1;
            }
        }
    }
    (finished, across_growth)
}

#[test]
fn iteration_with_writes_underneath() {
    let s = scale();
    let mut finished = 0;
    let mut across = 0;
    for seed in 0..4 {
        let (f, a) = run_iter_interleaved::<i64>(100 + seed, 4000 * s, [30, 120, 600, 2000][seed as usize]);
        finished += f;
        across += a;
        let (f, a) = run_iter_interleaved::<Box<str>>(200 + seed, 3000 * s, [30, 120, 600, 1000][seed as usize]);
        finished += f;
        across += a;
        let (f, a) = run_iter_interleaved::<f64>(300 + seed, 2000 * s, [20, 300, 800, 900][seed as usize]);
        finished += f;
        across += a;
    }
    eprintln!("iterations finished {finished}, across growth {across}");
    assert!(finished >= 200 && across >= 50, "finished {finished}, across growth {across}");
}

#[test]
fn iteration_without_writes_produces_each_key_once() {
    for (n, seed) in [(0usize, 1u64), (1, 2), (8, 3), (9, 4), (13, 5), (100, 6), (1000, 7)] {
        let mut hs = Harness::<Box<str>>::new(0, seed);
        for i in 0..n as u64 {
            hs.assign(Box::<str>::from_idx(i), i as i64);
        }
        hs.h.finish_growth(&hs.fl).unwrap();
        hs.check_iteration();
        hs.check_iteration();
    }
}

/// The iterator is started before a doubling grow and walks its (now old)
/// array across the whole grow, with deletes, overwrites and inserts.
#[test]
fn iterator_started_before_growth_walks_across_it() {
    for seed in 0..20u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut hs = Harness::<Box<str>>::new(0, 500 + seed);
        hs.full = true;
        let mut next = 0u64;
        for _ in 0..52 {
            hs.assign(Box::<str>::from_idx(next), next as i64);
            next += 1;
        }
        hs.h.finish_growth(&hs.fl).unwrap();
        assert_eq!((hs.h.b, hs.h.growing()), (3, false));
        let mut li = hs.start_iter();
        let mut before = 0;
        for _ in 0..rng.random_range(0..20) {
            assert!(hs.step(&mut li));
            before += 1;
        }
        // Grow: the 53rd key.
        hs.assign(Box::<str>::from_idx(next), 0);
        next += 1;
        assert!(hs.h.growing() && hs.h.b == 4);
        assert!(hs.fl.has(OLD_ITERATOR));
        let mut steps = 0;
        while hs.h.growing() {
            match rng.random_range(0..4) {
                0 => {
                    if let Some(k) = hs.random_present(&mut rng) {
                        li.deleted.insert(k.m());
                        hs.delete(&k);
                    }
                }
                1 => {
                    if let Some(k) = hs.random_present(&mut rng) {
                        hs.assign(k, rng.random());
                    }
                }
                _ => {
                    hs.assign(Box::<str>::from_idx(next), 0);
                    next += 1;
                }
            }
            if rng.random_bool(0.5) && !hs.step(&mut li) {
                break;
            }
            steps += 1;
        }
        while hs.step(&mut li) {}
        hs.finish_iter(&li);
        assert!(steps > 0 || before > 0);
    }
}

/// Started in the middle of a grow (the check_bucket path), advanced while
/// that grow completes and a second one starts.
#[test]
fn iterator_started_mid_growth_across_two_grows() {
    for seed in 0..20u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut hs = Harness::<i64>::new(0, 900 + seed);
        let mut next = 0i64;
        for _ in 0..105 {
            hs.assign(next, next);
            next += 1;
        }
        assert!(hs.h.growing(), "B 4 -> 5 must still be in progress");
        let mut li = hs.start_iter();
        assert_eq!(li.b_at_start, 5);
        let mut grows = 0;
        while hs.step(&mut li) {
            let b = hs.h.b;
            for _ in 0..rng.random_range(0..4) {
                if rng.random_range(0..5) == 0 {
                    if let Some(k) = hs.random_present(&mut rng) {
                        li.deleted.insert(k);
                        hs.delete(&k);
                    }
                } else {
                    hs.assign(next, next);
                    next += 1;
                }
            }
            if hs.h.b != b {
                grows += 1;
            }
        }
        hs.finish_iter(&li);
        assert!(grows >= 1, "seed {seed}: no second grow under the iterator");
    }
}

#[test]
fn iterator_across_mapclear_produces_nothing_more() {
    for (n, grow_first) in [(5, false), (60, false), (53, true), (300, true)] {
        let mut hs = Harness::<Box<str>>::new(0, n as u64);
        for i in 0..n as u64 {
            hs.assign(Box::<str>::from_idx(i), i as i64);
        }
        let mut li = hs.start_iter();
        assert!(hs.step(&mut li));
        if grow_first {
            // Grow under the iterator, then clear mid-grow.
            let mut i = n as u64;
            let b = hs.h.b;
            while hs.h.b == b {
                hs.assign(Box::<str>::from_idx(i), 0);
                i += 1;
            }
            assert!(hs.h.growing());
        }
        hs.clear();
        li.cleared = true;
        for i in 0..20u64 {
            hs.assign(Box::<str>::from_idx(i * 3), 1);
        }
        assert!(!hs.step(&mut li));
        assert!(!hs.step(&mut li));
        // A new iterator sees the new entries.
        hs.check_iteration();
    }
}

// ---------------------------------------------------------------------------
// 5. Drop safety with owned keys.
// ---------------------------------------------------------------------------

/// Box<str> keys, iterators held across grows (so evacuation retains key
/// copies in old arrays), deletes, clears, a clone, and dropping everything in
/// an awkward order: the map before its iterators. Run under valgrind or Miri
/// to see leaks / invalid reads (see the report); under plain `cargo test` it
/// still catches double frees through the allocator's checks.
#[test]
fn drop_safety_owned_keys() {
    let rounds = env_usize("GOMAP_DROP_ROUNDS", if cfg!(miri) { 1 } else { 6 });
    for round in 0..rounds as u64 {
        let mut rng = StdRng::seed_from_u64(round);
        let mut hs = Harness::<Box<str>>::new(0, 7000 + round);
        let mut held: Vec<LiveIter<Box<str>>> = Vec::new();
        let mut next = 0u64;
        let target = [40usize, 120, 300][round as usize % 3];
        for step in 0..target * 4 {
            if step % 17 == 0 {
                held.push(hs.start_iter());
            }
            if rng.random_range(0..4) == 0 {
                if let Some(k) = hs.random_present(&mut rng) {
                    for li in &mut held {
                        li.deleted.insert(k.clone());
                    }
                    hs.delete(&k);
                }
            } else {
                hs.assign(Box::<str>::from_idx(next), next as i64);
                next += 1;
            }
            for li in &mut held {
                if rng.random_bool(0.3) {
                    hs.step(li);
                }
            }
            if step == target * 2 {
                // Clear mid-way with iterators open, then refill.
                hs.clear();
                for li in &mut held {
                    li.cleared = true;
                }
            }
        }
        let copy = hs.h.clone_with(|v| *v);
        // Drop the map while iterators (holding old and current arrays) live.
        let Harness { h, .. } = hs;
        let mut keep_one = held.pop();
        drop(h);
        drop(held);
        if let Some(li) = keep_one.as_mut() {
            // Still valid to drop; not to advance (the map is gone).
            li.produced.clear();
        }
        drop(keep_one);
        drop(copy);
    }
}

/// Retained keys: an iterator on the old array reads evacuated slots' keys (to
/// look them up again), so those keys must outlive the evacuation.
#[test]
fn old_iterator_reads_retained_keys_after_evacuation() {
    let mut hs = Harness::<Box<str>>::new(0, 31337);
    for i in 0..52u64 {
        hs.assign(Box::<str>::from_idx(i + 100), i as i64);
    }
    hs.h.finish_growth(&hs.fl).unwrap();
    let mut li = hs.start_iter();
    // Grow and finish it completely before the iterator takes a single step:
    // every old slot it reads is evacuated, its key a retained copy.
    let mut i = 200u64;
    while hs.h.b == 3 {
        hs.assign(Box::<str>::from_idx(i), 0);
        i += 1;
    }
    hs.h.finish_growth(&hs.fl).unwrap();
    assert!(!hs.h.growing());
    // Delete half of the original keys, overwrite some others.
    for j in 0..52u64 {
        let k = Box::<str>::from_idx(j + 100);
        if j % 2 == 0 {
            li.deleted.insert(k.clone());
            hs.delete(&k);
        } else if j % 3 == 0 {
            hs.assign(k, -1);
        }
    }
    while hs.step(&mut li) {}
    hs.finish_iter(&li);
    assert_eq!(li.produced.iter().filter(|k| hs.model.contains_key(*k)).count(), li.produced.len());
}

/// Small enough for Miri (`cargo +nightly miri test --test rust_core -- miri_smoke`):
/// every unsafe path once with owned keys: growth 0 -> 3 with iterators open
/// (retained keys), overflow buckets allocated one by one (B < 4 has no
/// preallocated ones), same-size-grow churn, clone, shrink, clear, and drops in
/// an awkward order.
#[test]
fn miri_smoke_owned_keys() {
    let mut rng = StdRng::seed_from_u64(1);
    let mut hs = Harness::<Box<str>>::new(0, 11);
    let mut its: Vec<LiveIter<Box<str>>> = Vec::new();
    for next in 0..170u64 {
        if next % 20 == 0 {
            its.push(hs.start_iter());
        }
        if hs.h.count >= 48 {
            let k = hs.random_present(&mut rng).unwrap();
            for li in &mut its {
                li.deleted.insert(k.clone());
            }
            hs.delete(&k);
        }
        hs.assign(Box::<str>::from_idx(next), next as i64);
        for li in &mut its {
            if rng.random_bool(0.4) {
                hs.step(li);
            }
        }
    }
    assert!(hs.h.stats().overflow_buckets + hs.ev.same_size_grows > 0, "{:?}", hs.ev);
    let copy = hs.h.clone_with(|v| *v);
    hs.check_invariants();
    hs.shrink();
    for li in &mut its {
        assert!(!hs.step(li));
    }
    let mut li = hs.start_iter();
    hs.step(&mut li);
    hs.clear();
    assert!(!hs.step(&mut li));
    for i in 0..20u64 {
        hs.assign(Box::<str>::from_idx(1000 + i), 0);
    }
    hs.check_iteration();
    let Harness { h, .. } = hs;
    drop(copy);
    drop(h);
    drop(its);
    drop(li);
}

// ---------------------------------------------------------------------------
// Go releases (docs/go-releases.md): what differs between 1.19 and 1.24.
// ---------------------------------------------------------------------------

/// Inserts 1..=n (as n*3) into a fresh map of release `go`, finishing every
/// grow at once; the counts at which B went up.
fn grow_points(go: GoRelease, n: i64) -> Vec<i64> {
    let fl = FlagWord::new();
    let mut h = HMap::<i64, i64>::makemap(0, HK, FastRand::new(1, None), go);
    let mut at = Vec::new();
    for i in 1..=n {
        let b = h.b;
        h.mapassign(&fl, i * 3, 0).unwrap();
        if h.b != b {
            at.push(i);
        }
        if h.growing() {
            h.finish_growth(&fl).unwrap();
        }
    }
    at
}

#[test]
fn go121_load_factor_is_six_the_others_six_and_a_half() {
    // Go 1.21: loadFactorNum = (bucketCnt*13/16)*loadFactorDen = 6*2 = 12.
    for (hint, want_b) in [(8, 0), (9, 1), (12, 1), (13, 2), (24, 2), (25, 3), (48, 3), (49, 4), (96, 4), (97, 5)] {
        let h = HMap::<i64, i64>::makemap(hint, HK, FastRand::new(1, None), GoRelease::Go121);
        assert_eq!(h.b, want_b, "Go 1.21 makemap({hint})");
    }
    assert_eq!(grow_points(GoRelease::Go121, 800), vec![9, 13, 25, 49, 97, 193, 385, 769]);
    for go in GoRelease::ALL.into_iter().filter(|&g| g != GoRelease::Go121) {
        for (hint, want_b) in [(9, 1), (13, 1), (14, 2), (26, 2), (27, 3), (52, 3), (53, 4)] {
            let h = HMap::<i64, i64>::makemap(hint, HK, FastRand::new(1, None), go);
            assert_eq!(h.b, want_b, "{go:?} makemap({hint})");
        }
        assert_eq!(grow_points(go, 800), vec![9, 14, 27, 53, 105, 209, 417], "{go:?}");
    }
}

/// Where each of `keys` lands (bucket index, tophash) in a map of release `go`
/// with hint 1000 (B = 8), the same hashkey and hash0.
fn placements<K: MapKey + Clone>(go: GoRelease, keys: &[K]) -> Vec<(usize, u8)> {
    let h = HMap::<K, i64>::makemap(1000, HK, FastRand::new(1, Some(Box::new(vec![77u64].into_iter()))), go);
    assert_eq!(h.hash0, 77);
    keys.iter()
        .map(|k| {
            let hash = MapKey::hash(k, h.hash0 as u64, h.fallback_key(), &h.rand);
            (hash as usize & ((1 << h.b) - 1), (hash >> 56) as u8)
        })
        .collect()
}

#[test]
fn go123_fallback_hash_uses_every_hashkey_word() {
    let ints: Vec<i64> = (0..64).map(|i| i * 7919).collect();
    let strs: Vec<Box<str>> = (0..64).map(|i| format!("key-{i}-{}", "x".repeat(i % 60)).into()).collect();
    let base = placements(GoRelease::Go119, &ints);
    let base_s = placements(GoRelease::Go119, &strs);
    for go in GoRelease::ALL {
        let old = go < GoRelease::Go123;
        assert_eq!(placements(go, &ints) == base, old, "{go:?} int64 placement");
        assert_eq!(placements(go, &strs) == base_s, old, "{go:?} string placement");
    }
    assert_eq!(placements(GoRelease::Go123, &strs), placements(GoRelease::Go124, &strs));
}

#[test]
fn release_survives_copy_and_draw_widths_follow_it() {
    let fl = FlagWord::new();
    for go in GoRelease::ALL {
        // hash0, then the iteration start: a 64-bit draw whose low bits pick bucket 5,
        // offset 3 at B = 3 (the high bits only matter for B > 28).
        let draws = vec![0x1234_5678_9abc_def0u64, 0xffff_ffff_0000_0000 | 5 | (3 << 3)];
        let mut h = HMap::<i64, i64>::makemap(40, HK, FastRand::new(1, Some(Box::new(draws.into_iter()))), go);
        assert_eq!(h.hash0, 0x9abc_def0, "{go:?}: hash0 is the low 32 bits of a draw");
        assert_eq!(h.b, 3);
        for i in 0..20 {
            h.mapassign(&fl, i, i).unwrap();
        }
        let it = h.mapiterinit(&fl);
        assert_eq!(it.start(), (5, 3), "{go:?}");
        let c = h.clone_with(|v| *v);
        assert_eq!(c.go, go);
        assert_eq!(c.fallback_key(), h.fallback_key());
    }
}

/// `mapaccess_mut` (read-modify-write in one search): against a std HashMap
/// through growth, same-size growth and deletes, the elem it returns is the
/// one later lookups see, and it never finds a missing key.
#[test]
fn mapaccess_mut_vs_std() {
    let fl = FlagWord::new();
    let mut rng = StdRng::seed_from_u64(7);
    let mut h = HMap::<i64, i64>::makemap(0, hashkey_for(7), FastRand::new(7, None), GoRelease::Go119);
    let mut model: HashMap<i64, i64> = HashMap::new();
    for step in 0..60_000 {
        let k: i64 = rng.random_range(0..4000);
        match rng.random_range(0..4) {
            0 | 1 => {
                let d: i64 = rng.random_range(-5..5);
                match h.mapaccess_mut(&fl, &k).unwrap() {
                    Some(v) => {
                        assert!(model.contains_key(&k), "step {step}: found a missing key {k}");
                        *v += d;
                    }
                    None => {
                        assert!(!model.contains_key(&k), "step {step}: key {k} not found");
                        h.mapassign(&fl, k, d).unwrap();
                    }
                }
                *model.entry(k).or_insert(0) += d;
            }
            2 => {
                assert_eq!(h.mapdelete(&fl, &k).unwrap().map(|e| e.1), model.remove(&k));
            }
            _ => assert_eq!(h.mapaccess(&fl, &k).unwrap().copied(), model.get(&k).copied()),
        }
        assert_eq!(h.count, model.len());
    }
    for (k, v) in &model {
        assert_eq!(h.mapaccess(&fl, k).unwrap(), Some(v));
    }
}
