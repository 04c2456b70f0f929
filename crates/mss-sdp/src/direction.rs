//! The direction attributes of RFC 3264 §5.1 (`sendrecv`, `sendonly`, `recvonly`,
//! `inactive`) and how an answerer mirrors them (§6.1).

use std::fmt;

/// Which way media flows, seen from the side that wrote the description.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// `a=sendrecv`: sends and receives; the default when no direction is given.
    SendRecv,
    /// `a=sendonly`: sends, does not receive (an offer putting the peer on hold).
    SendOnly,
    /// `a=recvonly`: receives, does not send.
    RecvOnly,
    /// `a=inactive`: neither.
    Inactive,
}

impl Direction {
    /// The attribute name: `sendrecv`, `sendonly`, `recvonly` or `inactive`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The direction an attribute name stands for (ASCII case ignored), if it is one.
    pub fn from_attribute(name: &str) -> Option<Direction> {
        [
            Direction::SendRecv,
            Direction::SendOnly,
            Direction::RecvOnly,
            Direction::Inactive,
        ]
        .into_iter()
        .find(|d| d.as_str().eq_ignore_ascii_case(name))
    }

    /// Whether this side sends media.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether this side receives media.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// The direction an answerer that takes what is offered answers this offer with
    /// (RFC 3264 §6.1): `sendonly` ↔ `recvonly`, `sendrecv` and `inactive` stay.
    pub fn answer(self) -> Direction {
        match self {
            Direction::SendRecv => Direction::SendRecv,
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            Direction::Inactive => Direction::Inactive,
        }
    }

    /// Whether `answer` is a direction RFC 3264 §6.1 allows in answer to this offer: any
    /// to `sendrecv`; `recvonly` or `inactive` to `sendonly`; `sendonly` or `inactive` to
    /// `recvonly`; only `inactive` to `inactive`.
    pub fn allows_answer(self, answer: Direction) -> bool {
        answer == Direction::Inactive || answer == self.answer() || self == Direction::SendRecv
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Direction; 4] = [
        Direction::SendRecv,
        Direction::SendOnly,
        Direction::RecvOnly,
        Direction::Inactive,
    ];

    #[test]
    fn attribute_names_round_trip() {
        for d in ALL {
            assert_eq!(Direction::from_attribute(d.as_str()), Some(d));
        }
        assert_eq!(
            Direction::from_attribute("SendOnly"),
            Some(Direction::SendOnly)
        );
        assert_eq!(Direction::from_attribute("rtcp"), None);
    }

    #[test]
    fn answer_mirrors_the_offer() {
        assert_eq!(Direction::SendOnly.answer(), Direction::RecvOnly);
        assert_eq!(Direction::RecvOnly.answer(), Direction::SendOnly);
        assert_eq!(Direction::SendRecv.answer(), Direction::SendRecv);
        assert_eq!(Direction::Inactive.answer(), Direction::Inactive);
        for d in ALL {
            assert!(d.allows_answer(d.answer()));
            assert_eq!(d.answer().answer(), d);
        }
    }

    #[test]
    fn allowed_answers_follow_rfc3264_6_1() {
        use Direction::*;
        let allowed = |o: Direction| -> Vec<Direction> {
            ALL.into_iter().filter(|a| o.allows_answer(*a)).collect()
        };
        assert_eq!(allowed(SendRecv), ALL.to_vec());
        assert_eq!(allowed(SendOnly), vec![RecvOnly, Inactive]);
        assert_eq!(allowed(RecvOnly), vec![SendOnly, Inactive]);
        assert_eq!(allowed(Inactive), vec![Inactive]);
    }

    #[test]
    fn sends_and_receives() {
        assert!(Direction::SendRecv.sends() && Direction::SendRecv.receives());
        assert!(Direction::SendOnly.sends() && !Direction::SendOnly.receives());
        assert!(!Direction::RecvOnly.sends() && Direction::RecvOnly.receives());
        assert!(!Direction::Inactive.sends() && !Direction::Inactive.receives());
    }
}
