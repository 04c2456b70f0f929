//! One line of a session description: its text as a slice of the received body (or new
//! text for a rewritten line) and the terminator it ended with.

use bytes::Bytes;

use crate::direction::Direction;

/// The line terminator lines added by a rewrite get: the one the received body used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LineEnding {
    /// `\r\n`, what RFC 8866 §5 requires of a sender.
    CrLf,
    /// A bare `\n`, which RFC 8866 §5 tells a receiver to accept.
    Lf,
}

impl LineEnding {
    /// The terminator's bytes.
    pub fn as_bytes(self) -> &'static [u8] {
        match self {
            LineEnding::CrLf => b"\r\n",
            LineEnding::Lf => b"\n",
        }
    }
}

/// How one line ended in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Terminator {
    /// `\r\n` or `\n`.
    Ending(LineEnding),
    /// Nothing: the last line of a body that does not end with a newline.
    EndOfBody,
}

/// One line, without its terminator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    /// The line's bytes: a slice of the received body while the line is untouched.
    pub(crate) text: Bytes,
    /// How the line ends.
    pub(crate) end: Terminator,
}

impl Line {
    /// A new line of `text`, ending with `ending`.
    pub(crate) fn new(text: impl Into<Bytes>, ending: LineEnding) -> Line {
        Line {
            text: text.into(),
            end: Terminator::Ending(ending),
        }
    }

    /// The type letter of a `<type>=<value>` line.
    pub(crate) fn kind(&self) -> Option<u8> {
        match self.text.as_ref() {
            [kind, b'=', ..] => Some(*kind),
            _ => None,
        }
    }

    /// Whether this is a `<kind>=` line.
    pub(crate) fn is(&self, kind: u8) -> bool {
        self.kind() == Some(kind)
    }

    /// The value after `<type>=`, as text when it is UTF-8.
    pub(crate) fn value_str(&self) -> Option<&str> {
        self.text
            .get(2..)
            .and_then(|value| std::str::from_utf8(value).ok())
    }

    /// Whether the line is empty or only spaces and tabs (kept as it is, never read).
    pub(crate) fn is_blank(&self) -> bool {
        self.text.iter().all(|b| matches!(b, b' ' | b'\t'))
    }

    /// The attribute name and value of an `a=` line.
    pub(crate) fn attribute(&self) -> Option<(&str, Option<&str>)> {
        if !self.is(b'a') {
            return None;
        }
        let value = self.value_str()?;
        Some(match value.split_once(':') {
            Some((name, value)) => (name, Some(value)),
            None => (value, None),
        })
    }

    /// The direction an `a=sendrecv`, `a=sendonly`, `a=recvonly` or `a=inactive` line
    /// stands for.
    pub(crate) fn direction(&self) -> Option<Direction> {
        match self.attribute()? {
            (name, None) => Direction::from_attribute(name),
            (_, Some(_)) => None,
        }
    }

    /// Whether this is an `a=<name>` or `a=<name>:...` line (name's ASCII case ignored).
    pub(crate) fn is_attribute(&self, name: &str) -> bool {
        self.attribute()
            .is_some_and(|(n, _)| n.eq_ignore_ascii_case(name))
    }
}

/// Splits a body into lines at every `\n`; a `\r` right before it belongs to the
/// terminator. A body ending with a newline has no empty last line.
pub(crate) fn split_lines(body: &Bytes) -> impl Iterator<Item = Line> + '_ {
    let mut start = 0;
    let mut newlines = memchr::memchr_iter(b'\n', body);
    std::iter::from_fn(move || {
        if start >= body.len() {
            return None;
        }
        let line = match newlines.next() {
            Some(lf) => {
                let crlf = lf > start && body.get(lf - 1) == Some(&b'\r');
                let (text_end, ending) = if crlf {
                    (lf - 1, LineEnding::CrLf)
                } else {
                    (lf, LineEnding::Lf)
                };
                let line = Line {
                    text: body.slice(start..text_end),
                    end: Terminator::Ending(ending),
                };
                start = lf + 1;
                line
            }
            None => {
                let line = Line {
                    text: body.slice(start..),
                    end: Terminator::EndOfBody,
                };
                start = body.len();
                line
            }
        };
        Some(line)
    })
}

/// A byte range inside one line's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) start: usize,
    pub(crate) end: usize,
}

impl Span {
    /// The text this span covers in `line`, or `""` if it does not fit (it always does for
    /// the line the span was taken from).
    pub(crate) fn of<'a>(&self, line: &'a [u8]) -> &'a str {
        line.get(self.start..self.end)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("")
    }
}

/// The fields of `text` separated by runs of spaces or tabs, each with its span counted
/// from `offset` (where `text` starts in its line).
pub(crate) fn fields(text: &str, offset: usize) -> impl Iterator<Item = (Span, &str)> + '_ {
    let mut pos = 0;
    std::iter::from_fn(move || {
        let bytes = text.as_bytes();
        while bytes.get(pos).is_some_and(|b| matches!(b, b' ' | b'\t')) {
            pos += 1;
        }
        if pos >= bytes.len() {
            return None;
        }
        let start = pos;
        while bytes.get(pos).is_some_and(|b| !matches!(b, b' ' | b'\t')) {
            pos += 1;
        }
        let span = Span {
            start: offset + start,
            end: offset + pos,
        };
        Some((span, text.get(start..pos).unwrap_or("")))
    })
}

/// `line` with the bytes of `span` replaced by `replacement`.
pub(crate) fn splice(line: &[u8], span: Span, replacement: &str) -> Vec<u8> {
    let before = line.get(..span.start).unwrap_or(line);
    let after = line.get(span.end..).unwrap_or(&[]);
    let mut out = Vec::with_capacity(before.len() + replacement.len() + after.len());
    out.extend_from_slice(before);
    out.extend_from_slice(replacement.as_bytes());
    out.extend_from_slice(after);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(input: &'static [u8]) -> Vec<(&'static [u8], Terminator)> {
        let body = Bytes::from_static(input);
        split_lines(&body)
            .map(|l| {
                // Zero-copy: every line's text is a slice of the body.
                let at = l.text.as_ptr() as usize - body.as_ptr() as usize;
                assert!(at + l.text.len() <= body.len());
                (&input[at..at + l.text.len()], l.end)
            })
            .collect()
    }

    const CRLF: Terminator = Terminator::Ending(LineEnding::CrLf);
    const LF: Terminator = Terminator::Ending(LineEnding::Lf);

    #[test]
    fn splits_crlf_lf_and_a_last_line_without_newline() {
        assert_eq!(
            texts(b"v=0\r\no=x\ns=\r\nt=0 0"),
            vec![
                (&b"v=0"[..], CRLF),
                (b"o=x", LF),
                (b"s=", CRLF),
                (b"t=0 0", Terminator::EndOfBody),
            ]
        );
        assert_eq!(texts(b"v=0\r\n"), vec![(&b"v=0"[..], CRLF)]);
        assert_eq!(texts(b"\n\r\n"), vec![(&b""[..], LF), (&b""[..], CRLF)]);
        assert!(texts(b"").is_empty());
    }

    #[test]
    fn a_lone_cr_stays_in_the_text() {
        assert_eq!(
            texts(b"a=x\ry\r"),
            vec![(&b"a=x\ry\r"[..], Terminator::EndOfBody)]
        );
    }

    #[test]
    fn kinds_values_and_attributes() {
        let l = Line::new("a=rtpmap:0 PCMU/8000", LineEnding::CrLf);
        assert_eq!(l.kind(), Some(b'a'));
        assert_eq!(l.attribute(), Some(("rtpmap", Some("0 PCMU/8000"))));
        assert!(l.is_attribute("RTPMAP"));
        let flag = Line::new("a=sendonly", LineEnding::CrLf);
        assert_eq!(flag.attribute(), Some(("sendonly", None)));
        assert_eq!(Line::new("s=", LineEnding::Lf).value_str(), Some(""));
        assert_eq!(Line::new("x", LineEnding::Lf).kind(), None);
        assert!(Line::new(" \t", LineEnding::Lf).is_blank());
    }

    #[test]
    fn fields_have_spans_into_the_line() {
        let line = "m=audio  4000 RTP/AVP 0";
        let f: Vec<_> = fields(&line[2..], 2).collect();
        assert_eq!(f.len(), 4);
        assert_eq!(f[1].1, "4000");
        assert_eq!(f[1].0.of(line.as_bytes()), "4000");
        assert_eq!(
            splice(line.as_bytes(), f[1].0, "5000"),
            b"m=audio  5000 RTP/AVP 0"
        );
    }
}
