//! Architecture support. Only x86_64 exists; the split keeps `unsafe` hardware access in one place.

pub mod x86_64;
