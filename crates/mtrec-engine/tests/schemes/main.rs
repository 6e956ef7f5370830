//! Loss weightings and training schemes through the engine, in one test binary (each test
//! binary links the whole tensor library, so fewer binaries build faster).

#[path = "../common/mod.rs"]
mod common;

mod cross_distil;
mod csm;
mod lt4rec;
mod weighting;
