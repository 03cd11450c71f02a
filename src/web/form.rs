//! Minimal form-body parsing for POSTs: `application/x-www-form-urlencoded` and
//! `multipart/form-data` (RFC 7578), text fields only.
//!
//! axum's `Form` extractor answers 415 to multipart bodies, but RFC 8058 §3.1 says a one-click
//! unsubscribe POST SHOULD be `multipart/form-data` (and MAY be urlencoded), so the handlers
//! take the raw body and the `Content-Type` and call [`parse`]. The bodies we accept are tiny
//! (the router caps them), so a straightforward in-memory parser is enough.

/// Form fields in the order they came, names and values decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields(Vec<(String, String)>);

impl Fields {
    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name` (checkbox groups), in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why a body could not be read as a form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed form body: {0}")]
pub struct FormError(&'static str);

/// Why an upload was refused: [`FormError::is_encoding`] tells a page to say so.
const NOT_UTF8_FILE: &str = "an uploaded file is not UTF-8 text";

impl FormError {
    /// The body was a well-formed form, but an uploaded file in it is not UTF-8.
    pub fn is_encoding(&self) -> bool {
        self.0 == NOT_UTF8_FILE
    }
}

/// The most parts a multipart body may have; ours have one or two.
const MAX_PARTS: usize = 256;

/// Parses a POST body by its `Content-Type`: urlencoded when the type says so or is absent,
/// multipart when it says so, and no fields for any other type (the body is then ignored).
pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Fields, FormError> {
    let ct = content_type.unwrap_or("").trim();
    let (essence, params) = ct.split_once(';').unwrap_or((ct, ""));
    let essence = essence.trim().to_ascii_lowercase();
    match essence.as_str() {
        "" | "application/x-www-form-urlencoded" => Ok(Fields(
            form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )),
        "multipart/form-data" => {
            let boundary = param(params, "boundary").ok_or(FormError("no multipart boundary"))?;
            // RFC 2046 §5.1.1: 1 to 70 characters.
            if boundary.is_empty() || boundary.len() > 70 {
                return Err(FormError("bad multipart boundary"));
            }
            multipart(body, &boundary).map(Fields)
        }
        _ => Ok(Fields::default()),
    }
}

/// A `key=value` parameter of a header value such as `; boundary="x"`, unquoted.
fn param(params: &str, key: &str) -> Option<String> {
    params.split(';').find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim().eq_ignore_ascii_case(key).then(|| {
            let v = v.trim();
            v.strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v)
                .to_owned()
        })
    })
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// RFC 7578 / RFC 2046 §5.1: parts separated by `--boundary` lines, each with headers, a
/// blank line and the value; `--boundary--` ends the body. Bare LF line ends are tolerated.
fn multipart(body: &[u8], boundary: &str) -> Result<Vec<(String, String)>, FormError> {
    let delim = format!("--{boundary}");
    let d = delim.as_bytes();
    let broken = FormError("bad multipart structure");
    let mut pos = find(body, d, 0).ok_or(broken.clone())? + d.len();
    let mut out = Vec::new();
    loop {
        if body[pos..].starts_with(b"--") {
            return Ok(out);
        }
        if out.len() >= MAX_PARTS {
            return Err(FormError("too many multipart parts"));
        }
        // The rest of the delimiter line (transport padding) and its line end.
        pos = find(body, b"\n", pos).ok_or(broken.clone())? + 1;
        // The next delimiter starts on a new line.
        let mut next_line = Vec::with_capacity(d.len() + 1);
        next_line.push(b'\n');
        next_line.extend_from_slice(d);
        let end = find(body, &next_line, pos).ok_or(broken.clone())?;
        let mut part = &body[pos..end];
        if let Some(p) = part.strip_suffix(b"\r") {
            part = p;
        }
        let (head, value) = match find(part, b"\r\n\r\n", 0) {
            Some(i) => (&part[..i], &part[i + 4..]),
            None => {
                let i = find(part, b"\n\n", 0).ok_or(broken.clone())?;
                (&part[..i], &part[i + 2..])
            }
        };
        let head = String::from_utf8_lossy(head);
        let named = head.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            if !k.trim().eq_ignore_ascii_case("content-disposition") {
                return None;
            }
            let (kind, params) = v.split_once(';').unwrap_or((v, ""));
            if !kind.trim().eq_ignore_ascii_case("form-data") {
                return None;
            }
            Some((param(params, "name")?, param(params, "filename").is_some()))
        });
        if let Some((name, file)) = named {
            // A browser sends typed text as UTF-8 (the pages say so); an uploaded file is sent
            // as it is on disk, and one in another encoding (a spreadsheet's Windows-1252 CSV)
            // would have its names silently replaced by U+FFFD: refused instead.
            let value = match std::str::from_utf8(value) {
                Ok(v) => v.to_owned(),
                Err(_) if file => return Err(FormError(NOT_UTF8_FILE)),
                Err(_) => String::from_utf8_lossy(value).into_owned(),
            };
            out.push((name, value));
        }
        pos = end + next_line.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urlencoded_one_click_and_checkbox_groups() {
        let f = parse(
            Some("application/x-www-form-urlencoded; charset=utf-8"),
            b"List-Unsubscribe=One-Click",
        )
        .unwrap();
        assert_eq!(f.get("List-Unsubscribe"), Some("One-Click"));
        let f = parse(None, b"cat.1=General+News&cat.1=Sport&x=%D8%A7").unwrap();
        assert_eq!(
            f.all("cat.1").collect::<Vec<_>>(),
            ["General News", "Sport"]
        );
        assert_eq!(f.get("x"), Some("ا"));
        assert_eq!(
            parse(Some("text/plain"), b"a=b").unwrap(),
            Fields::default()
        );
    }

    #[test]
    fn multipart_as_mail_providers_send_it() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--XyZ\r\ncontent-disposition: form-data; name=scope; filename=\"x\"\r\nContent-Type: text/plain\r\n\r\nall\r\n--XyZ--\r\n";
        let f = parse(Some("multipart/form-data; boundary=\"XyZ\""), body).unwrap();
        assert_eq!(f.get("List-Unsubscribe"), Some("One-Click"));
        assert_eq!(f.get("scope"), Some("all"));
        // Bare LF line ends.
        let f = parse(
            Some("Multipart/Form-Data; boundary=b"),
            b"--b\nContent-Disposition: form-data; name=\"a\"\n\n1\n--b--\n",
        )
        .unwrap();
        assert_eq!(f.get("a"), Some("1"));
    }

    #[test]
    fn an_uploaded_file_that_is_not_utf8_is_refused_and_a_field_is_read_lossily() {
        let upload = b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"r.csv\"\r\n\r\nemail,name\r\na@example.org,Jos\xe9\r\n--b--\r\n";
        let err = parse(Some("multipart/form-data; boundary=b"), upload).unwrap_err();
        assert!(err.is_encoding(), "{err}");
        let field =
            b"--b\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nJos\xe9\r\n--b--\r\n";
        let f = parse(Some("multipart/form-data; boundary=b"), field).unwrap();
        assert_eq!(f.get("note"), Some("Jos\u{fffd}"));
        assert!(
            !parse(Some("multipart/form-data"), b"--b--")
                .unwrap_err()
                .is_encoding()
        );
    }

    #[test]
    fn broken_multipart_is_an_error_not_a_panic() {
        for body in [
            &b""[..],
            b"--b",
            b"--b\r\n",
            b"--b\r\nno blank line\r\n--b--",
            b"garbage",
        ] {
            assert!(parse(Some("multipart/form-data; boundary=b"), body).is_err());
        }
        assert!(parse(Some("multipart/form-data"), b"--b--").is_err());
    }
}
