//! Writing a description back: untouched lines byte for byte with their own terminator,
//! new lines with the terminator of the first line.

use bytes::Bytes;

use crate::description::SessionDescription;
use crate::line::{Line, Terminator};

impl SessionDescription {
    /// The description as a body. Without rewrites this is the received body itself (no
    /// copy); otherwise each line is written as [`SessionDescription::write_to`] does.
    pub fn to_bytes(&self) -> Bytes {
        if !self.is_modified() {
            return self.body.clone();
        }
        let mut out = Vec::with_capacity(self.body.len() + 64);
        self.write_to(&mut out);
        Bytes::from(out)
    }

    /// Appends the description to `out`, line by line: every line as it is, with the
    /// terminator it had. A line that had none (the last line of a body without a final
    /// newline) gets [`SessionDescription::line_ending`] if a rewrite put lines after it.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let ending = self.line_ending().as_bytes();
        let mut lines = self.lines().peekable();
        while let Some(line) = lines.next() {
            out.extend_from_slice(&line.text);
            match line.end {
                Terminator::Ending(end) => out.extend_from_slice(end.as_bytes()),
                Terminator::EndOfBody if lines.peek().is_some() => out.extend_from_slice(ending),
                Terminator::EndOfBody => {}
            }
        }
    }

    /// Every line, in order.
    fn lines(&self) -> impl Iterator<Item = &Line> {
        [&self.version, &self.origin]
            .into_iter()
            .chain(&self.session.lines)
            .chain(self.media.iter().flat_map(|m| m.lines()))
    }
}

#[cfg(test)]
mod tests {
    use crate::{Direction, SessionDescription};

    const MIXED: &[u8] =
        b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\ns=-\r\nt=0 0\nm=audio 4000 RTP/AVP 0\r\na=sendrecv";

    #[test]
    fn write_to_reproduces_mixed_line_ends() {
        let sdp = SessionDescription::parse_slice(MIXED).unwrap();
        let mut out = Vec::new();
        sdp.write_to(&mut out);
        assert_eq!(out, MIXED);
    }

    #[test]
    fn replaced_lines_keep_their_terminator() {
        let mut sdp = SessionDescription::parse_slice(MIXED).unwrap();
        sdp.bump_session_version().unwrap();
        sdp.media_mut()[0].set_direction(Direction::SendOnly);
        assert_eq!(
            sdp.to_bytes(),
            b"v=0\r\no=- 1 2 IN IP4 192.0.2.1\ns=-\r\nt=0 0\nm=audio 4000 RTP/AVP 0\r\na=sendonly"
                .as_slice()
        );
    }

    #[test]
    fn a_line_added_after_an_unterminated_last_line() {
        let mut sdp = SessionDescription::parse_slice(MIXED).unwrap();
        sdp.media_mut()[0].set_rtcp(4001, None);
        assert_eq!(
            sdp.to_bytes(),
            b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\ns=-\r\nt=0 0\nm=audio 4000 RTP/AVP 0\r\na=sendrecv\r\na=rtcp:4001\r\n"
                .as_slice()
        );
    }
}
