//! The offer/answer model of RFC 3264: an answer's m-lines pair with the offer's by index
//! (§6), and an answer that does not fit its offer is refused.

use crate::description::SessionDescription;
use crate::error::SdpError;
use crate::stream::Stream;

/// One offered stream and the answer to it.
#[derive(Debug, Clone, Copy)]
pub struct StreamPair<'a> {
    /// The offered stream.
    pub offer: Stream<'a>,
    /// The answered stream at the same m-line index.
    pub answer: Stream<'a>,
}

impl StreamPair<'_> {
    /// The m-line index, counted from 0.
    pub fn index(&self) -> usize {
        self.offer.index()
    }

    /// Whether the answer rejects the stream (port 0, RFC 3264 §6).
    pub fn is_rejected(&self) -> bool {
        self.answer.is_rejected()
    }
}

/// Checks that `answer` can answer `offer` (RFC 3264 §6): as many m-lines, the same media
/// type at each index, and port 0 wherever the offer had port 0.
pub fn check_answer(
    offer: &SessionDescription,
    answer: &SessionDescription,
) -> Result<(), SdpError> {
    let (offered, answered) = (offer.media(), answer.media());
    if offered.len() != answered.len() {
        return Err(SdpError::MediaCountMismatch {
            offer: offered.len(),
            answer: answered.len(),
        });
    }
    for (index, (o, a)) in offered.iter().zip(answered).enumerate() {
        if !o.media_type().eq_ignore_ascii_case(a.media_type()) {
            return Err(SdpError::MediaTypeMismatch {
                index: index + 1,
                offer: o.media_type().to_owned(),
                answer: a.media_type().to_owned(),
            });
        }
        if o.is_rejected() && !a.is_rejected() {
            return Err(SdpError::RejectedStreamAccepted { index: index + 1 });
        }
    }
    Ok(())
}

/// The offered streams paired with their answers, after [`check_answer`].
pub fn pair_streams<'a>(
    offer: &'a SessionDescription,
    answer: &'a SessionDescription,
) -> Result<impl Iterator<Item = StreamPair<'a>>, SdpError> {
    check_answer(offer, answer)?;
    Ok(offer
        .streams()
        .zip(answer.streams())
        .map(|(offer, answer)| StreamPair { offer, answer }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Direction;

    const LINPHONE_OFFER: &[u8] = include_bytes!("../testdata/linphone-offer.sdp");
    const REJECTED_ANSWER: &[u8] = include_bytes!("../testdata/linphone-answer-video-rejected.sdp");
    const PJSUA_OFFER: &[u8] = include_bytes!("../testdata/pjsua-offer.sdp");
    const PJSUA_HOLD: &[u8] = include_bytes!("../testdata/pjsua-hold.sdp");
    const PROVIDER_ANSWER: &[u8] = include_bytes!("../testdata/provider-answer.sdp");

    fn parse(body: &[u8]) -> SessionDescription {
        SessionDescription::parse_slice(body).unwrap()
    }

    #[test]
    fn answer_pairs_by_index_and_may_reject() {
        let (offer, answer) = (parse(LINPHONE_OFFER), parse(REJECTED_ANSWER));
        let pairs: Vec<_> = pair_streams(&offer, &answer).unwrap().collect();
        assert_eq!(pairs.len(), 2);
        assert_eq!(pairs[0].index(), 0);
        assert!(!pairs[0].is_rejected());
        assert_eq!(pairs[1].offer.media().media_type(), "video");
        assert!(pairs[1].is_rejected());
    }

    #[test]
    fn provider_answers_pjsua() {
        let (offer, answer) = (parse(PJSUA_OFFER), parse(PROVIDER_ANSWER));
        let pair = pair_streams(&offer, &answer).unwrap().next().unwrap();
        assert!(pair
            .offer
            .direction()
            .allows_answer(pair.answer.direction()));
    }

    #[test]
    fn hold_offer_gets_a_recvonly_answer() {
        let offer = parse(PJSUA_HOLD);
        let direction = offer.stream(0).unwrap().direction();
        assert_eq!(direction.answer(), Direction::RecvOnly);
        let mut answer = parse(PROVIDER_ANSWER);
        answer.media_mut()[0].set_direction(direction.answer());
        answer.bump_session_version().unwrap();
        let answer = parse(&answer.to_bytes());
        assert!(check_answer(&offer, &answer).is_ok());
        assert_eq!(answer.stream(0).unwrap().direction(), Direction::RecvOnly);
        assert_eq!(answer.origin().session_version, 1706781236);
    }

    #[test]
    fn answers_that_do_not_fit_are_refused() {
        let (offer, one_stream) = (parse(LINPHONE_OFFER), parse(PROVIDER_ANSWER));
        assert_eq!(
            check_answer(&offer, &one_stream).unwrap_err().to_string(),
            "answer has 1 m= lines, offer has 2"
        );
        let swapped = parse(
            &String::from_utf8(REJECTED_ANSWER.to_vec())
                .unwrap()
                .replace("m=audio 30002", "m=text 30002")
                .into_bytes(),
        );
        let err = check_answer(&offer, &swapped).unwrap_err();
        assert_eq!(err.to_string(), "m= line 1: answer is text, offer is audio");
        assert_eq!(err.warn_code(), 304);
        // Offer rejects video, answer accepts it.
        let (offer, answer) = (
            parse(REJECTED_ANSWER),
            parse(
                &String::from_utf8(REJECTED_ANSWER.to_vec())
                    .unwrap()
                    .replace("m=video 0", "m=video 9000")
                    .into_bytes(),
            ),
        );
        assert_eq!(
            check_answer(&offer, &answer).unwrap_err(),
            SdpError::RejectedStreamAccepted { index: 2 }
        );
    }
}
