//! mss-sdp: session descriptions (RFC 8866, formerly RFC 4566) for a B2BUA and its media
//! relay, with the offer/answer rules of RFC 3264. No I/O.
//!
//! A body is parsed once at the line level ([`SessionDescription::parse`]): every line is
//! a slice of the received [`bytes::Bytes`], grouped into the session part and the media
//! sections ([`Media`]). Typed reads parse the lines they need on demand: `o=`
//! ([`Origin`]), `c=` ([`Connection`]), `m=`, `a=rtcp:` ([`Rtcp`], RFC 3605), direction
//! attributes ([`Direction`]), `a=rtpmap:` ([`RtpMap`]), `a=fmtp:`, `a=ptime:`, and
//! telephone-event (RFC 4733). A [`Stream`] reads a media section with the session-level
//! `c=` and direction it inherits, and tells whether it is on hold.
//!
//! Rewrites for the relay (connection address, port, `a=rtcp:`, direction, `o=` version)
//! change only the lines they must. Every other line is written back byte for byte with
//! its own line terminator; a description no rewrite touched writes back as the very body
//! it came from. Lines of unknown types and unknown attributes are kept without being read.
//!
//! What cannot be used is a [`SdpError`] whose text is meant for the Warning of a
//! `488 Not Acceptable Here` ([`SdpError::warning_value`]).
//!
//! # API overview
//!
//! ```
//! use bytes::Bytes;
//! use mss_sdp::{check_answer, Direction, SessionDescription};
//!
//! let offer = SessionDescription::parse(Bytes::from_static(
//!     b"v=0\r\n\
//!       o=- 3920459871 3920459871 IN IP4 192.0.2.10\r\n\
//!       s=pjmedia\r\n\
//!       t=0 0\r\n\
//!       m=audio 4000 RTP/AVP 0 8 101\r\n\
//!       c=IN IP4 192.0.2.10\r\n\
//!       a=rtcp:4001 IN IP4 192.0.2.10\r\n\
//!       a=sendonly\r\n\
//!       a=rtpmap:101 telephone-event/8000\r\n\
//!       a=fmtp:101 0-16\r\n",
//! ))?;
//! let stream = offer.stream(0).unwrap();
//! assert!(stream.is_on_hold());
//! assert_eq!(stream.direction().answer(), Direction::RecvOnly);
//! assert!(stream.media().has_telephone_event());
//!
//! // The relay's leg: its own address and ports, a new version; the other lines stay.
//! let mut leg = offer.clone();
//! let relay = "203.0.113.5".parse().unwrap();
//! leg.set_connection_address(relay);
//! leg.media_mut()[0].set_port(30000)?;
//! leg.media_mut()[0].set_rtcp(30001, Some(relay));
//! leg.bump_session_version()?;
//! assert_eq!(
//!     leg.to_bytes(),
//!     Bytes::from_static(
//!         b"v=0\r\n\
//!           o=- 3920459871 3920459872 IN IP4 192.0.2.10\r\n\
//!           s=pjmedia\r\n\
//!           t=0 0\r\n\
//!           m=audio 30000 RTP/AVP 0 8 101\r\n\
//!           c=IN IP4 203.0.113.5\r\n\
//!           a=rtcp:30001 IN IP4 203.0.113.5\r\n\
//!           a=sendonly\r\n\
//!           a=rtpmap:101 telephone-event/8000\r\n\
//!           a=fmtp:101 0-16\r\n"
//!     )
//! );
//!
//! // A broken body becomes a Warning for the 488.
//! let err = SessionDescription::parse_slice(b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nm=audio\r\n")
//!     .unwrap_err();
//! assert_eq!(err.warning_value("mss"), r#"399 mss "SDP line 4: m= has no port""#);
//! # let _ = check_answer(&offer, &leg)?;
//! # Ok::<(), mss_sdp::SdpError>(())
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod attribute;
mod connection;
mod description;
mod direction;
mod error;
mod line;
mod media;
mod offer_answer;
mod origin;
mod parse;
mod rtcp;
mod rtpmap;
mod section;
mod stream;
mod write;

pub use attribute::Attribute;
pub use connection::{AddrType, Address, Connection};
pub use description::SessionDescription;
pub use direction::Direction;
pub use error::{LineProblem, SdpError, NOT_ACCEPTABLE_HERE};
pub use line::LineEnding;
pub use media::Media;
pub use offer_answer::{check_answer, pair_streams, StreamPair};
pub use origin::Origin;
pub use parse::Limits;
pub use rtcp::Rtcp;
pub use rtpmap::RtpMap;
pub use stream::Stream;
