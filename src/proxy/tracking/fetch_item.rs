//! Which FETCH item a literal belongs to, read from the line announcing it, and
//! which part of the tracking block that item shows.

/// A FETCH item whose literal starts with the top-level header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// BODY[], RFC822, BINARY[]: the whole message.
    Whole,
    /// BODY[HEADER], RFC822.HEADER.
    Header,
    /// BODY[HEADER.FIELDS (names)], names lower-case.
    HeaderFields(Vec<String>),
}

/// The item announced at the end of `line` (`… BODY[] {123}` CRLF), when it is one
/// that shows the tracking block. Partial fetches (`BODY[]<0>`) are not: their
/// data would no longer match the range the client asked for.
pub fn announced_item(line: &[u8]) -> Option<Item> {
    let text = std::str::from_utf8(line).ok()?;
    let text = text.trim_end_matches(['\r', '\n']);
    let brace = text.rfind('{')?;
    let before = text[..brace].trim_end_matches('~').trim_end();
    if before.ends_with(']') {
        let upper = before.to_ascii_uppercase();
        let start = ["BODY[", "BINARY["]
            .iter()
            .filter_map(|p| upper.rfind(p).map(|i| i + p.len()))
            .max()?;
        let section = &upper[start..upper.len() - 1];
        return match section {
            "" => Some(Item::Whole),
            "HEADER" => Some(Item::Header),
            s => {
                let list = s.strip_prefix("HEADER.FIELDS")?.trim();
                let list = list.strip_prefix('(')?.strip_suffix(')')?;
                Some(Item::HeaderFields(
                    list.split_whitespace()
                        .map(|n| n.trim_matches('"').to_ascii_lowercase())
                        .collect(),
                ))
            }
        };
    }
    let last = before
        .rsplit([' ', '('])
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    match last.as_str() {
        "RFC822" => Some(Item::Whole),
        "RFC822.HEADER" => Some(Item::Header),
        _ => None,
    }
}

/// A partial item announced at the end of `line` (`… BODY[]<512> {100}`), for the
/// sections whose data starts with the top-level header: its key as the server
/// writes it (`BODY[]`, `BODY[HEADER]`, `BINARY[]`, upper-case) and its origin.
pub fn announced_partial(line: &[u8]) -> Option<(String, u32)> {
    let text = std::str::from_utf8(line).ok()?;
    let text = text.trim_end_matches(['\r', '\n']);
    let brace = text.rfind('{')?;
    let before = text[..brace].trim_end_matches('~').trim_end();
    let before = before.strip_suffix('>')?;
    let lt = before.rfind('<')?;
    let origin: u32 = before[lt + 1..].parse().ok()?;
    let item = before[..lt].to_ascii_uppercase();
    let key = ["BODY[]", "BODY[HEADER]", "BINARY[]"]
        .into_iter()
        .find(|k| item.ends_with(k))?;
    Some((key.to_string(), origin))
}

/// `line` with the origin of its last partial item (`<from>`) set to `to`.
pub fn with_origin(line: &[u8], from: u32, to: u32) -> Option<Vec<u8>> {
    let brace = memchr::memrchr(b'{', line)?;
    let needle = format!("<{from}>");
    let at = line[..brace]
        .windows(needle.len())
        .rposition(|w| w == needle.as_bytes())?;
    let mut out = line[..at].to_vec();
    out.extend_from_slice(format!("<{to}>").as_bytes());
    out.extend_from_slice(&line[at + needle.len()..]);
    Some(out)
}

/// The fields of `block` (CRLF lines, folded continuations) named in `names`.
pub fn filter_block(block: &[u8], names: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut keep = false;
    for line in block.split_inclusive(|&b| b == b'\n') {
        let continuation = line.first().is_some_and(|&b| b == b' ' || b == b'\t');
        if !continuation {
            let name = line
                .split(|&b| b == b':')
                .next()
                .map(|n| String::from_utf8_lossy(n).trim().to_ascii_lowercase())
                .unwrap_or_default();
            keep = names.contains(&name);
        }
        if keep {
            out.extend_from_slice(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items() {
        assert_eq!(
            announced_item(b"* 3 FETCH (UID 7 BODY[] {2048}\r\n"),
            Some(Item::Whole)
        );
        assert_eq!(announced_item(b" RFC822 {20}\r\n"), Some(Item::Whole));
        assert_eq!(
            announced_item(b"* 1 FETCH (RFC822.HEADER {20}\r\n"),
            Some(Item::Header)
        );
        assert_eq!(
            announced_item(b"* 1 FETCH (BINARY[] ~{20}\r\n"),
            Some(Item::Whole)
        );
        assert_eq!(
            announced_item(b"* 1 FETCH (BODY[HEADER] {20}\r\n"),
            Some(Item::Header)
        );
        assert_eq!(
            announced_item(b"* 1 FETCH (BODY[HEADER.FIELDS (From X-CRM-Track-Status)] {20}\r\n"),
            Some(Item::HeaderFields(vec![
                "from".into(),
                "x-crm-track-status".into()
            ]))
        );
        assert_eq!(announced_item(b"* 1 FETCH (BODY[]<0> {100}\r\n"), None);
        assert_eq!(announced_item(b"* 1 FETCH (BODY[TEXT] {100}\r\n"), None);
        assert_eq!(announced_item(b"* 1 FETCH (BODY[1] {100}\r\n"), None);
        assert_eq!(
            announced_item(b"* 1 FETCH (BODY[HEADER.FIELDS.NOT (From)] {100}\r\n"),
            None
        );
        assert_eq!(announced_item(b"* 1 FETCH (RFC822.TEXT {100}\r\n"), None);
    }

    #[test]
    fn partial_items() {
        assert_eq!(
            announced_partial(b"* 1 FETCH (UID 4 BODY[]<0> {100}\r\n"),
            Some(("BODY[]".into(), 0))
        );
        assert_eq!(
            announced_partial(b" BODY[HEADER]<512> {10}\r\n"),
            Some(("BODY[HEADER]".into(), 512))
        );
        assert_eq!(
            announced_partial(b"* 1 FETCH (BODY[TEXT]<0> {100}\r\n"),
            None
        );
        assert_eq!(announced_partial(b"* 1 FETCH (BODY[] {100}\r\n"), None);
        assert_eq!(
            with_origin(b"* 1 FETCH (BODY[]<0> {100}\r\n", 0, 40).unwrap(),
            b"* 1 FETCH (BODY[]<40> {100}\r\n"
        );
    }

    #[test]
    fn filtering_keeps_named_fields_with_continuations() {
        let block = b"X-CRM-Track-Status: tracked\r\nX-CRM-SMIME: signed;\r\n verified=yes\r\nX-CRM-Activity-Id: 1\r\n";
        let got = filter_block(block, &["x-crm-smime".into()]);
        assert_eq!(got, b"X-CRM-SMIME: signed;\r\n verified=yes\r\n");
        assert!(filter_block(block, &["from".into()]).is_empty());
    }
}
