//! Comma-separated header values (RFC 3261 §7.3.1): splitting outside quoted strings and
//! `<>`, and trimming linear whitespace.

/// Iterator over the comma-separated elements of one header value, not splitting inside
/// quoted strings (with `\` escapes) or `<…>` (RFC 3261 §7.3.1).
#[derive(Debug, Clone)]
pub(crate) struct ListValues<'a> {
    rest: &'a [u8],
    split: bool,
}

impl<'a> ListValues<'a> {
    pub(crate) fn new(v: &'a [u8]) -> ListValues<'a> {
        ListValues {
            rest: v,
            split: true,
        }
    }
    pub(crate) fn whole(v: &'a [u8]) -> ListValues<'a> {
        ListValues {
            rest: v,
            split: false,
        }
    }
}

pub(crate) fn trim_lws(mut v: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = v {
        if matches!(first, b' ' | b'\t' | b'\r' | b'\n') {
            v = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = v {
        if matches!(last, b' ' | b'\t' | b'\r' | b'\n') {
            v = rest;
        } else {
            break;
        }
    }
    v
}

/// Position of the first comma at top level (outside quotes and angle brackets).
pub(crate) fn top_level_comma(v: &[u8]) -> Option<usize> {
    let mut in_quotes = false;
    let mut in_angle = false;
    let mut i = 0;
    while let Some(&c) = v.get(i) {
        if in_quotes {
            match c {
                b'\\' => i += 1,
                b'"' => in_quotes = false,
                _ => {}
            }
        } else {
            match c {
                b'"' if !in_angle => in_quotes = true,
                b'<' => in_angle = true,
                b'>' => in_angle = false,
                b',' if !in_angle => return Some(i),
                _ => {}
            }
        }
        i += 1;
    }
    None
}

impl<'a> Iterator for ListValues<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let (item, rest) = if self.split {
                match top_level_comma(self.rest) {
                    Some(i) => (
                        self.rest.get(..i).unwrap_or(&[]),
                        self.rest.get(i + 1..).unwrap_or(&[]),
                    ),
                    None => (self.rest, &[][..]),
                }
            } else {
                (self.rest, &[][..])
            };
            self.rest = rest;
            let item = trim_lws(item);
            if !item.is_empty() {
                return Some(item);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_and_trim() {
        let v: Vec<_> = ListValues::new(b" a , \"b,c\" <d,e>,, f ").collect();
        assert_eq!(v, vec![&b"a"[..], b"\"b,c\" <d,e>", b"f"]);
        assert_eq!(
            ListValues::whole(b" x, y ").collect::<Vec<_>>(),
            vec![&b"x, y"[..]]
        );
        assert_eq!(trim_lws(b"\r\n  v \t"), b"v");
        assert_eq!(top_level_comma(b"\"a\\\",b\", c"), Some(7));
    }
}
