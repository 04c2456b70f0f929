//! The lines of one section of a description (the session part after `o=`, or one media
//! section after its `m=`), and the line-level edits every rewrite is made of.

use std::net::IpAddr;

use crate::attribute::Attribute;
use crate::connection::{connection_fields, Connection};
use crate::direction::Direction;
use crate::line::{Line, LineEnding};

/// The lines of one section, in order, blank and unknown ones included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Section {
    /// Every line of the section.
    pub(crate) lines: Vec<Line>,
    /// The terminator new lines get.
    pub(crate) ending: LineEnding,
    /// Whether a line was replaced, added or removed since parsing.
    pub(crate) modified: bool,
}

impl Section {
    /// An empty section whose new lines end with `ending`.
    pub(crate) fn new(ending: LineEnding) -> Section {
        Section {
            lines: Vec::new(),
            ending,
            modified: false,
        }
    }

    /// Every `a=` line that is UTF-8.
    pub(crate) fn attributes(&self) -> impl Iterator<Item = Attribute<'_>> {
        self.lines
            .iter()
            .filter_map(Line::attribute)
            .map(|(name, value)| Attribute { name, value })
    }

    /// The values of every `a=<name>:<value>` line (name's ASCII case ignored).
    pub(crate) fn attribute_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.attributes()
            .filter(move |a| a.name.eq_ignore_ascii_case(name))
            .filter_map(|a| a.value)
    }

    /// The `c=` line, read. Parsing checked it, so a present line always reads.
    pub(crate) fn connection(&self) -> Option<Connection<'_>> {
        let line = self.lines.iter().find(|l| l.is(b'c'))?;
        Connection::parse(line.value_str()?, "c=").ok()
    }

    /// The direction attribute, if the section has one.
    pub(crate) fn direction(&self) -> Option<Direction> {
        self.lines.iter().find_map(Line::direction)
    }

    /// Replaces line `index` with `text`, keeping its terminator. Identical text changes
    /// nothing, so an untouched description stays a slice of the received body.
    pub(crate) fn replace(&mut self, index: usize, text: String) {
        if let Some(line) = self.lines.get_mut(index) {
            if line.text != text.as_bytes() {
                line.text = text.into();
                self.modified = true;
            }
        }
    }

    /// Adds a line at `index`.
    pub(crate) fn insert(&mut self, index: usize, text: String) {
        let index = index.min(self.lines.len());
        self.lines.insert(index, Line::new(text, self.ending));
        self.modified = true;
    }

    /// Adds an attribute line after the last line that is not blank.
    pub(crate) fn push_attribute(&mut self, text: String) {
        let end = self
            .lines
            .iter()
            .rposition(|l| !l.is_blank())
            .map_or(0, |i| i + 1);
        self.insert(end, text);
    }

    /// Removes every line `keep` refuses; returns how many.
    pub(crate) fn remove_lines(&mut self, mut keep: impl FnMut(&Line) -> bool) -> usize {
        let before = self.lines.len();
        self.lines.retain(|l| keep(l));
        let removed = before - self.lines.len();
        if removed > 0 {
            self.modified = true;
        }
        removed
    }

    /// Removes every `a=<name>` and `a=<name>:...` line; returns how many.
    pub(crate) fn remove_attributes(&mut self, name: &str) -> usize {
        self.remove_lines(|l| !l.is_attribute(name))
    }

    /// Points the `c=` line at `ip`; returns false, changing nothing, when there is none.
    pub(crate) fn replace_connection(&mut self, ip: IpAddr) -> bool {
        match self.lines.iter().position(|l| l.is(b'c')) {
            Some(index) => {
                self.replace(index, format!("c={}", connection_fields(ip)));
                true
            }
            None => false,
        }
    }

    /// Points the `c=` line at `ip`, adding one where RFC 8866 §5 puts it in a media
    /// section (after `m=` and `i=`) if there is none.
    pub(crate) fn set_connection(&mut self, ip: IpAddr) {
        if !self.replace_connection(ip) {
            let index = self.lines.iter().take_while(|l| l.is(b'i')).count();
            self.insert(index, format!("c={}", connection_fields(ip)));
        }
    }

    /// Sets the direction attribute: the first one is replaced (any other removed), or
    /// one is added after the last line.
    pub(crate) fn set_direction(&mut self, direction: Direction) {
        let is_direction = |l: &Line| l.direction().is_some();
        let text = format!("a={direction}");
        match self.lines.iter().position(is_direction) {
            Some(first) => {
                self.replace(first, text);
                let mut index = 0;
                self.remove_lines(|l| {
                    index += 1;
                    index - 1 == first || !is_direction(l)
                });
            }
            None => self.push_attribute(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    use crate::line::split_lines;

    fn section(text: &'static str) -> Section {
        let body = Bytes::from_static(text.as_bytes());
        Section {
            lines: split_lines(&body).collect(),
            ending: LineEnding::CrLf,
            modified: false,
        }
    }

    fn texts(s: &Section) -> Vec<String> {
        s.lines
            .iter()
            .map(|l| String::from_utf8_lossy(&l.text).into_owned())
            .collect()
    }

    #[test]
    fn reads_attributes_connection_and_direction() {
        let s = section("c=IN IP4 192.0.2.1\r\na=rtcp:4001\r\na=sendonly\r\na=X-nat:0\r\n");
        assert_eq!(
            s.connection().unwrap().ip(),
            Some("192.0.2.1".parse().unwrap())
        );
        assert_eq!(s.direction(), Some(Direction::SendOnly));
        assert_eq!(s.attribute_values("x-nat").collect::<Vec<_>>(), ["0"]);
        assert_eq!(s.attributes().count(), 3);
    }

    #[test]
    fn identical_replacement_changes_nothing() {
        let mut s = section("a=sendonly\r\n");
        s.set_direction(Direction::SendOnly);
        assert!(!s.modified);
        s.set_direction(Direction::Inactive);
        assert!(s.modified);
        assert_eq!(texts(&s), ["a=inactive"]);
    }

    #[test]
    fn direction_replaces_the_first_and_drops_duplicates() {
        let mut s = section("a=sendrecv\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n");
        s.set_direction(Direction::RecvOnly);
        assert_eq!(texts(&s), ["a=recvonly", "a=rtpmap:0 PCMU/8000"]);
    }

    #[test]
    fn added_attributes_go_before_trailing_blank_lines() {
        let mut s = section("a=rtpmap:0 PCMU/8000\r\n\r\n");
        s.set_direction(Direction::SendOnly);
        assert_eq!(texts(&s), ["a=rtpmap:0 PCMU/8000", "a=sendonly", ""]);
        assert_eq!(
            s.lines[1].end,
            crate::line::Terminator::Ending(LineEnding::CrLf)
        );
    }

    #[test]
    fn connection_is_added_after_information_lines() {
        let mut s = section("i=voice\r\nb=AS:64\r\na=sendrecv\r\n");
        s.set_connection("203.0.113.5".parse().unwrap());
        assert_eq!(
            texts(&s),
            ["i=voice", "c=IN IP4 203.0.113.5", "b=AS:64", "a=sendrecv"]
        );
        s.set_connection("2001:db8::5".parse().unwrap());
        assert_eq!(texts(&s)[1], "c=IN IP6 2001:db8::5");
        assert_eq!(s.lines.len(), 4);
    }

    #[test]
    fn removes_attributes_by_name() {
        let mut s = section(
            "a=candidate:1 1 UDP 1 192.0.2.1 1 typ host\r\na=ice-ufrag:x\r\na=candidate:2\r\n",
        );
        assert_eq!(s.remove_attributes("candidate"), 2);
        assert_eq!(texts(&s), ["a=ice-ufrag:x"]);
        assert_eq!(s.remove_attributes("candidate"), 0);
    }
}
