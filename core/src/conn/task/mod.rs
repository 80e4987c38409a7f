//! The pieces of a connection task that other threads touch: its run state and its
//! reply slots. Each is small and self-contained so that `loom` can check it under
//! every interleaving (`make loom`).

pub(crate) mod replies;
pub(crate) mod state;
