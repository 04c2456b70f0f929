//! Header names: case-insensitive, compact forms folded to full names (RFC 3261 §7.3.3).

use std::fmt;
use std::hash::{Hash, Hasher};

use bytes::Bytes;

/// An extension header name not known to mss, kept as received (compared ignoring case).
#[derive(Clone, Debug)]
pub struct OtherName(pub(crate) Bytes);

impl OtherName {
    /// The name as received.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

macro_rules! names {
    ($( $(#[$doc:meta])* $var:ident => $text:literal ),* $(,)?) => {
        /// A SIP header name.
        ///
        /// Comparison ignores ASCII case and compact forms map to their full names, so
        /// `HeaderName::from_bytes(b"v") == HeaderName::Via`. Unknown names are kept as
        /// [`HeaderName::Other`].
        #[derive(Clone, Debug)]
        #[non_exhaustive]
        pub enum HeaderName {
            $( $(#[$doc])* $var, )*
            /// Any other (extension) header name.
            Other(OtherName),
        }

        /// Every known name (for the tests).
        #[cfg(test)]
        pub(crate) const ALL_KNOWN: &[HeaderName] = &[$( HeaderName::$var, )*];

        impl HeaderName {
            /// The canonical spelling (full form) of the name, as bytes; an unknown name
            /// exactly as received.
            pub fn as_bytes(&self) -> &[u8] {
                match self {
                    $( HeaderName::$var => $text.as_bytes(), )*
                    HeaderName::Other(o) => &o.0,
                }
            }

            /// The canonical spelling (full form) of the name.
            pub fn as_str(&self) -> &str {
                match self {
                    $( HeaderName::$var => $text, )*
                    HeaderName::Other(o) => std::str::from_utf8(&o.0).unwrap_or("X-Invalid"),
                }
            }
        }
    };
}

names! {
    /// `Via` (`v`).
    Via => "Via",
    /// `From` (`f`).
    From => "From",
    /// `To` (`t`).
    To => "To",
    /// `Call-ID` (`i`).
    CallId => "Call-ID",
    /// `CSeq`.
    CSeq => "CSeq",
    /// `Contact` (`m`).
    Contact => "Contact",
    /// `Max-Forwards`.
    MaxForwards => "Max-Forwards",
    /// `Expires`.
    Expires => "Expires",
    /// `Min-Expires`.
    MinExpires => "Min-Expires",
    /// `Content-Type` (`c`).
    ContentType => "Content-Type",
    /// `Content-Length` (`l`).
    ContentLength => "Content-Length",
    /// `Content-Encoding` (`e`).
    ContentEncoding => "Content-Encoding",
    /// `Subject` (`s`).
    Subject => "Subject",
    /// `Supported` (`k`).
    Supported => "Supported",
    /// `Require`.
    Require => "Require",
    /// `Proxy-Require`.
    ProxyRequire => "Proxy-Require",
    /// `Unsupported`.
    Unsupported => "Unsupported",
    /// `Route`.
    Route => "Route",
    /// `Record-Route`.
    RecordRoute => "Record-Route",
    /// `Path` (RFC 3327).
    Path => "Path",
    /// `Authorization`.
    Authorization => "Authorization",
    /// `Proxy-Authorization`.
    ProxyAuthorization => "Proxy-Authorization",
    /// `WWW-Authenticate`.
    WwwAuthenticate => "WWW-Authenticate",
    /// `Proxy-Authenticate`.
    ProxyAuthenticate => "Proxy-Authenticate",
    /// `Authentication-Info`.
    AuthenticationInfo => "Authentication-Info",
    /// `Date`.
    Date => "Date",
    /// `Warning`.
    Warning => "Warning",
    /// `Retry-After`.
    RetryAfter => "Retry-After",
    /// `Allow`.
    Allow => "Allow",
    /// `Accept`.
    Accept => "Accept",
    /// `User-Agent`.
    UserAgent => "User-Agent",
    /// `Server`.
    Server => "Server",
    /// `Timestamp`.
    Timestamp => "Timestamp",
    /// `Event` (`o`, RFC 6665).
    Event => "Event",
    /// `Allow-Events` (`u`, RFC 6665).
    AllowEvents => "Allow-Events",
    /// `Refer-To` (`r`, RFC 3515).
    ReferTo => "Refer-To",
    /// `Referred-By` (`b`, RFC 3892).
    ReferredBy => "Referred-By",
    /// `Session-Expires` (`x`, RFC 4028).
    SessionExpires => "Session-Expires",
    /// `Identity` (`y`, RFC 8224).
    Identity => "Identity",
}

fn compact(c: u8) -> Option<HeaderName> {
    // RFC 3261 §7.3.3 and the IANA registry of compact forms.
    Some(match c.to_ascii_lowercase() {
        b'i' => HeaderName::CallId,
        b'm' => HeaderName::Contact,
        b'f' => HeaderName::From,
        b't' => HeaderName::To,
        b'v' => HeaderName::Via,
        b'l' => HeaderName::ContentLength,
        b'c' => HeaderName::ContentType,
        b'k' => HeaderName::Supported,
        b's' => HeaderName::Subject,
        b'e' => HeaderName::ContentEncoding,
        b'o' => HeaderName::Event,
        b'u' => HeaderName::AllowEvents,
        b'r' => HeaderName::ReferTo,
        b'b' => HeaderName::ReferredBy,
        b'x' => HeaderName::SessionExpires,
        b'y' => HeaderName::Identity,
        _ => return None,
    })
}

/// A known name folded for a case-insensitive comparison eight bytes at a time: its bytes
/// lower-cased, zero-padded to [`KEY_LEN`], and a mask with `0x20` (the ASCII case bit)
/// at each letter. Known names are letters and `-` only, so a byte `b` of a name matches
/// the known byte `k` ignoring ASCII case exactly when `b | mask == k`: at a letter,
/// `b | 0x20` is `k` only for `k` and its upper case; at `-` the mask is 0 and only `-`
/// matches.
#[derive(Debug, Clone, Copy)]
struct Key {
    lower: [u64; 3],
    mask: [u64; 3],
}

/// Longest known name plus padding: `Proxy-Authorization` and `Authentication-Info` are 19.
const KEY_LEN: usize = 24;

const fn key(lower: &[u8]) -> Key {
    let mut bytes = [0u8; KEY_LEN];
    let mut mask = [0u8; KEY_LEN];
    let mut i = 0;
    while i < lower.len() {
        bytes[i] = lower[i];
        if lower[i].is_ascii_lowercase() {
            mask[i] = 0x20;
        }
        i += 1;
    }
    Key {
        lower: words(&bytes),
        mask: words(&mask),
    }
}

const fn words(b: &[u8; KEY_LEN]) -> [u64; 3] {
    let mut w = [0u64; 3];
    let mut i = 0;
    while i < KEY_LEN {
        w[i / 8] |= (b[i] as u64) << ((i % 8) * 8);
        i += 1;
    }
    w
}

/// The known names of each length (the index), the most frequent first: a lookup compares
/// a name only with the few known names of its length.
static BY_LEN: [&[(Key, HeaderName)]; 20] = [
    &[],
    &[],
    &[(key(b"to"), HeaderName::To)],
    &[(key(b"via"), HeaderName::Via)],
    &[
        (key(b"cseq"), HeaderName::CSeq),
        (key(b"from"), HeaderName::From),
        (key(b"date"), HeaderName::Date),
        (key(b"path"), HeaderName::Path),
    ],
    &[
        (key(b"route"), HeaderName::Route),
        (key(b"allow"), HeaderName::Allow),
        (key(b"event"), HeaderName::Event),
    ],
    &[
        (key(b"accept"), HeaderName::Accept),
        (key(b"server"), HeaderName::Server),
    ],
    &[
        (key(b"call-id"), HeaderName::CallId),
        (key(b"contact"), HeaderName::Contact),
        (key(b"expires"), HeaderName::Expires),
        (key(b"require"), HeaderName::Require),
        (key(b"subject"), HeaderName::Subject),
        (key(b"warning"), HeaderName::Warning),
    ],
    &[
        (key(b"refer-to"), HeaderName::ReferTo),
        (key(b"identity"), HeaderName::Identity),
    ],
    &[
        (key(b"supported"), HeaderName::Supported),
        (key(b"timestamp"), HeaderName::Timestamp),
    ],
    &[(key(b"user-agent"), HeaderName::UserAgent)],
    &[
        (key(b"min-expires"), HeaderName::MinExpires),
        (key(b"unsupported"), HeaderName::Unsupported),
        (key(b"retry-after"), HeaderName::RetryAfter),
        (key(b"referred-by"), HeaderName::ReferredBy),
    ],
    &[
        (key(b"max-forwards"), HeaderName::MaxForwards),
        (key(b"content-type"), HeaderName::ContentType),
        (key(b"record-route"), HeaderName::RecordRoute),
        (key(b"allow-events"), HeaderName::AllowEvents),
    ],
    &[
        (key(b"proxy-require"), HeaderName::ProxyRequire),
        (key(b"authorization"), HeaderName::Authorization),
    ],
    &[(key(b"content-length"), HeaderName::ContentLength)],
    &[(key(b"session-expires"), HeaderName::SessionExpires)],
    &[
        (key(b"content-encoding"), HeaderName::ContentEncoding),
        (key(b"www-authenticate"), HeaderName::WwwAuthenticate),
    ],
    &[],
    &[(key(b"proxy-authenticate"), HeaderName::ProxyAuthenticate)],
    &[
        (key(b"proxy-authorization"), HeaderName::ProxyAuthorization),
        (key(b"authentication-info"), HeaderName::AuthenticationInfo),
    ],
];

/// Finds the known header a name (full or compact, any case) stands for.
pub(crate) fn lookup_known(name: &[u8]) -> Option<HeaderName> {
    let first = *name.first()?;
    if name.len() == 1 {
        return compact(first);
    }
    // Longer than every known name: unknown.
    let cands: &[(Key, HeaderName)] = BY_LEN.get(name.len())?;
    let mut buf = [0u8; KEY_LEN];
    buf.get_mut(..name.len())?.copy_from_slice(name);
    let mut w = [0u64; 3];
    for (word, chunk) in w.iter_mut().zip(buf.chunks_exact(8)) {
        let mut eight = [0u8; 8];
        eight.copy_from_slice(chunk);
        *word = u64::from_le_bytes(eight);
    }
    cands
        .iter()
        .find(|(k, _)| {
            (w[0] | k.mask[0]) == k.lower[0]
                && (w[1] | k.mask[1]) == k.lower[1]
                && (w[2] | k.mask[2]) == k.lower[2]
        })
        .map(|(_, n)| n.clone())
}

impl HeaderName {
    /// The name for `name` as it appears in a message; unknown names become
    /// [`HeaderName::Other`] and keep their bytes.
    pub fn from_bytes(name: Bytes) -> HeaderName {
        lookup_known(&name).unwrap_or(HeaderName::Other(OtherName(name)))
    }

    /// Like [`HeaderName::from_bytes`] for a static string (no allocation).
    pub fn from_static(name: &'static str) -> HeaderName {
        HeaderName::from_bytes(Bytes::from_static(name.as_bytes()))
    }

    /// True when `bytes` (as found in a message) names this header.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        match self {
            HeaderName::Other(o) => o.0.eq_ignore_ascii_case(bytes),
            known => lookup_known(bytes).is_some_and(|k| &k == known),
        }
    }

    /// True for headers whose values form a comma-separated list that may be split into
    /// several header lines (RFC 3261 §7.3.1). Authorization-style headers, Date and
    /// unknown headers are not split.
    pub fn is_list(&self) -> bool {
        matches!(
            self,
            HeaderName::Via
                | HeaderName::Contact
                | HeaderName::Route
                | HeaderName::RecordRoute
                | HeaderName::Path
                | HeaderName::Supported
                | HeaderName::Require
                | HeaderName::ProxyRequire
                | HeaderName::Unsupported
                | HeaderName::Allow
                | HeaderName::Accept
                | HeaderName::AllowEvents
                | HeaderName::ContentEncoding
                | HeaderName::Warning
        )
    }

    fn discriminant_key(&self) -> Option<std::mem::Discriminant<HeaderName>> {
        match self {
            HeaderName::Other(_) => None,
            k => Some(std::mem::discriminant(k)),
        }
    }
}

impl PartialEq for HeaderName {
    fn eq(&self, other: &HeaderName) -> bool {
        match (self, other) {
            (HeaderName::Other(a), HeaderName::Other(b)) => a.0.eq_ignore_ascii_case(&b.0),
            (a, b) => {
                a.discriminant_key().is_some() && a.discriminant_key() == b.discriminant_key()
            }
        }
    }
}

impl Eq for HeaderName {}

impl Hash for HeaderName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            HeaderName::Other(o) => {
                for b in o.0.iter() {
                    state.write_u8(b.to_ascii_lowercase());
                }
            }
            k => std::mem::discriminant(k).hash(state),
        }
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The lookup as it was (candidates by first letter, every one compared), kept as the
    // reference the table by length is checked against.
    static C_NAMES: [HeaderName; 6] = [
        HeaderName::CallId,
        HeaderName::CSeq,
        HeaderName::Contact,
        HeaderName::ContentType,
        HeaderName::ContentLength,
        HeaderName::ContentEncoding,
    ];
    static A_NAMES: [HeaderName; 5] = [
        HeaderName::Authorization,
        HeaderName::AuthenticationInfo,
        HeaderName::Allow,
        HeaderName::Accept,
        HeaderName::AllowEvents,
    ];
    static M_NAMES: [HeaderName; 2] = [HeaderName::MaxForwards, HeaderName::MinExpires];
    static P_NAMES: [HeaderName; 4] = [
        HeaderName::ProxyAuthorization,
        HeaderName::ProxyAuthenticate,
        HeaderName::ProxyRequire,
        HeaderName::Path,
    ];
    static R_NAMES: [HeaderName; 6] = [
        HeaderName::Route,
        HeaderName::RecordRoute,
        HeaderName::Require,
        HeaderName::RetryAfter,
        HeaderName::ReferTo,
        HeaderName::ReferredBy,
    ];
    static S_NAMES: [HeaderName; 4] = [
        HeaderName::Supported,
        HeaderName::Subject,
        HeaderName::Server,
        HeaderName::SessionExpires,
    ];
    static U_NAMES: [HeaderName; 2] = [HeaderName::Unsupported, HeaderName::UserAgent];
    static V: [HeaderName; 1] = [HeaderName::Via];
    static F: [HeaderName; 1] = [HeaderName::From];
    static T: [HeaderName; 2] = [HeaderName::To, HeaderName::Timestamp];
    static E: [HeaderName; 2] = [HeaderName::Expires, HeaderName::Event];
    static W: [HeaderName; 2] = [HeaderName::WwwAuthenticate, HeaderName::Warning];
    static D: [HeaderName; 1] = [HeaderName::Date];
    static I: [HeaderName; 1] = [HeaderName::Identity];

    fn lookup_by_first_letter(name: &[u8]) -> Option<HeaderName> {
        let first = *name.first()?;
        if name.len() == 1 {
            return compact(first);
        }
        let cands: &[HeaderName] = match first.to_ascii_lowercase() {
            b'c' => &C_NAMES,
            b'a' => &A_NAMES,
            b'm' => &M_NAMES,
            b'p' => &P_NAMES,
            b'r' => &R_NAMES,
            b's' => &S_NAMES,
            b'u' => &U_NAMES,
            b'v' => &V,
            b'f' => &F,
            b't' => &T,
            b'e' => &E,
            b'w' => &W,
            b'd' => &D,
            b'i' => &I,
            _ => return None,
        };
        cands
            .iter()
            .find(|c| {
                let s = c.as_str().as_bytes();
                s.len() == name.len() && s.eq_ignore_ascii_case(name)
            })
            .cloned()
    }

    fn same(a: Option<HeaderName>, b: Option<HeaderName>) -> bool {
        match (a, b) {
            (None, None) => true,
            (Some(x), Some(y)) => x == y && x.as_bytes() == y.as_bytes(),
            _ => false,
        }
    }

    #[test]
    fn the_table_by_length_finds_what_the_scan_by_first_letter_found() {
        let mut names: Vec<Vec<u8>> = Vec::new();
        for n in ALL_KNOWN {
            let b = n.as_bytes();
            assert!(
                BY_LEN
                    .get(b.len())
                    .is_some_and(|c| c.iter().any(|(_, k)| k == n)),
                "{n:?} missing from BY_LEN"
            );
            names.push(b.to_vec());
            names.push(b.to_ascii_lowercase());
            names.push(b.to_ascii_uppercase());
            // One byte changed (case flipped bit, a neighbour, CR for '-'), one cut, one added.
            for i in 0..b.len() {
                for delta in [0x20u8, 1, 0x40, 0x80] {
                    let mut m = b.to_vec();
                    m[i] ^= delta;
                    names.push(m);
                }
                let mut m = b.to_vec();
                m[i] = b'\r';
                names.push(m);
            }
            names.push(b[..b.len() - 1].to_vec());
            names.push([b, b"x"].concat());
            names.push([b"x", b].concat());
        }
        for c in 0..=255u8 {
            names.push(vec![c]);
            names.push(vec![c, c]);
        }
        names.push(Vec::new());
        names.push(vec![b'a'; 25]);
        // Each key spells its name, lower-cased, at the index of its length.
        for (len, cands) in BY_LEN.iter().enumerate() {
            for (k, n) in cands.iter() {
                let want = key(&n.as_bytes().to_ascii_lowercase());
                assert_eq!(n.as_bytes().len(), len, "{n:?}");
                assert_eq!((k.lower, k.mask), (want.lower, want.mask), "{n:?}");
                assert!(n
                    .as_bytes()
                    .iter()
                    .all(|c| c.is_ascii_alphabetic() || *c == b'-'));
            }
        }
        let total: usize = BY_LEN.iter().map(|c| c.len()).sum();
        assert_eq!(total, ALL_KNOWN.len());
        for n in &names {
            assert!(
                same(lookup_known(n), lookup_by_first_letter(n)),
                "{:?}",
                String::from_utf8_lossy(n)
            );
        }
    }

    #[test]
    fn compact_and_case() {
        for (raw, want) in [
            ("v", HeaderName::Via),
            ("VIA", HeaderName::Via),
            ("i", HeaderName::CallId),
            ("call-id", HeaderName::CallId),
            ("L", HeaderName::ContentLength),
            ("MaX-fOrWaRdS", HeaderName::MaxForwards),
            ("www-authenticate", HeaderName::WwwAuthenticate),
            ("k", HeaderName::Supported),
            ("Referred-By", HeaderName::ReferredBy),
            ("b", HeaderName::ReferredBy),
            ("refer-to", HeaderName::ReferTo),
            ("Session-Expires", HeaderName::SessionExpires),
        ] {
            assert_eq!(HeaderName::from_static(raw), want, "{raw}");
        }
        let x = HeaderName::from_static("X-Foo");
        assert_eq!(x, HeaderName::from_static("x-foo"));
        assert_ne!(x, HeaderName::Via);
        assert_eq!(x.as_str(), "X-Foo");
        assert!(HeaderName::Via.matches(b"v"));
        assert!(!HeaderName::Via.matches(b"C%6Fntact"));
        assert!(HeaderName::from_static("C%6Fntact") != HeaderName::Contact);
    }
}
