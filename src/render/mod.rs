//! Rendering an edition: Maud HTML, plain text, subject and preheader.

pub mod template;

pub use template::{Hole, Segment, TOKEN_LEN, Template};
