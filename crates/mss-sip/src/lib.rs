//! mss-sip: the SIP message model, parser and serializer (no I/O).

pub mod net;
