//! gomap: Go's classic runtime map (Go 1.19–1.24 `runtime/map.go`, chosen per map) in Rust, for
//! Python. The engine is [`hmap`]; [`python`] is the thin PyO3 layer over it.

pub mod flags;
pub mod group;
pub mod hash;
pub mod hmap;
pub mod kinds;
pub mod python;
pub mod rand;
pub mod release;
