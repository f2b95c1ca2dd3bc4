//! The Go release a map follows.
//!
//! Every Go release from 1.19 to 1.24 (built with `GOEXPERIMENT=noswissmap`)
//! ships the classic `hmap`, and they differ in a few places that change what a
//! map looks like (`docs/go-releases.md` has the full table, read from each
//! release's `runtime/map.go`, `alg.go` and `hash64.go`):
//!
//! * the load factor: Go 1.21 computes `loadFactorNum` as
//!   `(bucketCnt*13/16)*loadFactorDen`, which truncates to 12 (6.0 entries per
//!   bucket); every other release has 13 (6.5);
//! * the fallback hash: from Go 1.23 `memhashFallback` and friends are keyed by
//!   `hashkey[1..3]` where older releases used the constants `m1..m4`;
//! * the width of the random draws: Go 1.22 replaced `fastrand()` (32 bits) and
//!   `fastrand64()` by `rand()` (64 bits), which matters for the iteration start
//!   of maps with B > 28 and for the hash of a NaN key.
//!
//! A release is a runtime value of the map (not a type parameter): it selects
//! constants, never code paths on the hot loop beyond one predictable branch.

/// A Go release with the classic map.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GoRelease {
    /// Go 1.19 (Debian bookworm's `golang-go`): the default.
    #[default]
    Go119,
    /// Go 1.20: as 1.19 for everything a map shows (by reading its source).
    Go120,
    /// Go 1.21: load factor 6.0.
    Go121,
    /// Go 1.22: 64-bit `rand()` draws.
    Go122,
    /// Go 1.23: `hashkey`-keyed fallback hash.
    Go123,
    /// Go 1.24 built with `GOEXPERIMENT=noswissmap`: as 1.23.
    Go124,
}

impl GoRelease {
    /// Every release, oldest first.
    pub const ALL: [GoRelease; 6] =
        [GoRelease::Go119, GoRelease::Go120, GoRelease::Go121, GoRelease::Go122, GoRelease::Go123, GoRelease::Go124];

    /// "1.19" … "1.24".
    pub fn name(self) -> &'static str {
        match self {
            GoRelease::Go119 => "1.19",
            GoRelease::Go120 => "1.20",
            GoRelease::Go121 => "1.21",
            GoRelease::Go122 => "1.22",
            GoRelease::Go123 => "1.23",
            GoRelease::Go124 => "1.24",
        }
    }

    /// Parses "1.21", "go1.21" or a full version such as "go1.21.13".
    pub fn parse(s: &str) -> Option<GoRelease> {
        let s = s.strip_prefix("go").unwrap_or(s);
        let mut parts = s.split('.');
        let major = parts.next()?;
        let minor = parts.next()?;
        if let Some(patch) = parts.next() {
            if patch.is_empty() || !patch.bytes().all(|c| c.is_ascii_digit()) || parts.next().is_some() {
                return None;
            }
        }
        if major != "1" {
            return None;
        }
        GoRelease::ALL.into_iter().find(|r| r.name()[2..] == *minor)
    }

    /// `loadFactorNum` (over `loadFactorDen` = 2).
    pub fn load_factor_num(self) -> usize {
        match self {
            GoRelease::Go121 => 12,
            _ => 13,
        }
    }

    /// Whether the fallback hash is keyed by `hashkey[1..3]` (Go 1.23+) rather
    /// than the constants `m1..m4`.
    pub fn keyed_fallback_hash(self) -> bool {
        self >= GoRelease::Go123
    }

    /// Whether the runtime draws with `rand()` (64 bits, Go 1.22+) rather than
    /// `fastrand()`/`fastrand64()`.
    pub fn rand64(self) -> bool {
        self >= GoRelease::Go122
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_release_names_and_versions() {
        for r in GoRelease::ALL {
            assert_eq!(GoRelease::parse(r.name()), Some(r));
            assert_eq!(GoRelease::parse(&format!("go{}", r.name())), Some(r));
            assert_eq!(GoRelease::parse(&format!("go{}.7", r.name())), Some(r));
        }
        for bad in ["", "1", "1.18", "1.25", "2.19", "1.19.", "1.19.x", "1.2", "go", "1.19.1.1"] {
            assert_eq!(GoRelease::parse(bad), None, "{bad:?}");
        }
    }
}
