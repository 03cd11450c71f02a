//! Reading outside data into plain, validated records: subscriber CSV files and article feeds.
//!
//! Nothing here touches the database. Each reader turns bytes into records the store can write
//! as they are, and reports every rejected row or item with its position and a reason a person
//! can act on, while the good rows keep coming.
//!
//! - [`subscribers_csv`]: the streaming subscriber CSV reader and the export writer.
//! - [`feeds`]: articles from RSS 2.0, Atom and JSON Lines.

pub mod feeds;
pub mod subscribers_csv;
