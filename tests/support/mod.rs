//! Helpers shared by the integration tests. Each test binary includes this with `mod support;`
//! and uses only some of it, hence the `dead_code` allowance for the whole tree.
#![allow(dead_code)]

pub mod cli;
