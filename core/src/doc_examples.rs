//! The Rust code blocks of the README and docs/ pages, compiled and run by
//! `cargo test --doc` so no example rots (the other languages' blocks run in
//! `tests/docs/run_blocks.py`, which also checks that every page with Rust blocks is
//! included here).

#[doc = include_str!("../../README.md")]
pub struct Readme;

#[doc = include_str!("../../docs/rust.md")]
pub struct RustPage;

#[doc = include_str!("../../docs/websockets.md")]
pub struct WebsocketsPage;

#[doc = include_str!("../../docs/fairness.md")]
pub struct FairnessPage;

#[doc = include_str!("../../docs/tls.md")]
pub struct TlsPage;
