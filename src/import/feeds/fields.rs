//! Rules RSS, Atom and JSON Lines items share: their id and their language tag.

use crate::domain::WebUrl;

/// The longest external id accepted, in bytes. Ids are unique keys in the store; a feed
/// sending kilobytes of id is broken, not generous.
pub const MAX_EXTERNAL_ID_LEN: usize = 2048;

/// The item's id, or its URL when it has none.
pub(super) fn external_id(id: &str, url: &WebUrl) -> Result<String, String> {
    let id = id.trim();
    if id.len() > MAX_EXTERNAL_ID_LEN {
        return Err(format!(
            "the id is {} bytes long; at most {MAX_EXTERNAL_ID_LEN} are allowed",
            id.len()
        ));
    }
    Ok(if id.is_empty() {
        url.as_str().to_owned()
    } else {
        id.to_owned()
    })
}

/// A BCP 47-shaped language tag, lower-cased, or `None` for junk (see
/// [`crate::domain::language_tag`]).
pub(super) fn language_tag(raw: &str) -> Option<String> {
    crate::domain::language_tag(raw)
}
