//! A generic attribute line (RFC 8866 §5.13): `a=<name>` or `a=<name>:<value>`.

/// One `a=` line, read without interpreting it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Attribute<'a> {
    /// The attribute name, like `rtpmap` or `sendonly`.
    pub name: &'a str,
    /// What follows the first `:`, if there is one (it may be empty).
    pub value: Option<&'a str>,
}
