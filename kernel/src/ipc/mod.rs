//! Inter-process communication objects (pipes today).

pub mod pipe;
