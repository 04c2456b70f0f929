//! The two parties of a dialog as written in From and To: the local and remote URI
//! (RFC 3261 §12.1.1, §12.1.2), kept with their display name and parameters, without a tag.

use mss_sip::NameAddr;

/// One end of a dialog as its From or To header names it, minus the tag: the remote URI
/// or the local URI of RFC 3261 §12, with the display name and any other header parameter
/// kept, so the requests mss sends in the dialog name the parties as the INVITE did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    value: String,
    uri: String,
}

impl Party {
    /// The party a From or To value names, its `tag` parameter dropped. The URI is always
    /// written in `<>`, so that no URI parameter can be read as a header parameter.
    pub fn from_name_addr(addr: &NameAddr<'_>) -> Party {
        let mut value = String::with_capacity(addr.uri_str.len() + 16);
        if let Some(display) = addr.display_name {
            value.push_str(display);
            value.push(' ');
        }
        value.push('<');
        value.push_str(addr.uri_str);
        value.push('>');
        for (name, v) in addr.params.iter() {
            if name.eq_ignore_ascii_case("tag") {
                continue;
            }
            value.push(';');
            value.push_str(name);
            if let Some(v) = v {
                value.push('=');
                value.push_str(v);
            }
        }
        Party {
            value,
            uri: addr.uri_str.to_owned(),
        }
    }

    /// The URI (without `<>`).
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The header value without tag: `"Alice" <sip:alice@example.com>`.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The header value with `;tag=TAG`, or without a tag when `tag` is empty (a peer that
    /// sent none, RFC 2543).
    pub fn with_tag(&self, tag: &str) -> String {
        if tag.is_empty() {
            self.value.clone()
        } else {
            let mut v = String::with_capacity(self.value.len() + 5 + tag.len());
            v.push_str(&self.value);
            v.push_str(";tag=");
            v.push_str(tag);
            v
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mss_sip::HeaderName;

    #[test]
    fn with_tag_appends_the_tag_parameter() {
        let na = NameAddr::parse("\"A\" <sip:a@example.com>;x=1", &HeaderName::To).unwrap();
        let p = Party::from_name_addr(&na);
        assert_eq!(p.with_tag("t9"), format!("{};tag=t9", p.value()));
        assert_eq!(p.with_tag(""), p.value());
    }

    #[test]
    fn tag_is_dropped_and_the_rest_kept() {
        let na = NameAddr::parse(
            "\"Alice A\" <sip:alice@atlanta.example;user=phone>;tag=1928;x-foo=bar",
            &HeaderName::From,
        )
        .unwrap();
        let p = Party::from_name_addr(&na);
        assert_eq!(
            p.value(),
            "\"Alice A\" <sip:alice@atlanta.example;user=phone>;x-foo=bar"
        );
        assert_eq!(p.uri(), "sip:alice@atlanta.example;user=phone");
        assert_eq!(
            p.with_tag("abc"),
            "\"Alice A\" <sip:alice@atlanta.example;user=phone>;x-foo=bar;tag=abc"
        );
        let bare = NameAddr::parse("sip:bob@biloxi.example;tag=9", &HeaderName::To).unwrap();
        assert_eq!(
            Party::from_name_addr(&bare).with_tag(""),
            "<sip:bob@biloxi.example>"
        );
    }
}
