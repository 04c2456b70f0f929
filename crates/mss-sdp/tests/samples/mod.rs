//! The sample descriptions in `testdata/`, written after what pjsua, baresip, linphone,
//! Asterisk, a Cisco gateway and a provider's SBC send.

/// Every sample, by file name.
pub(crate) const ALL: &[(&str, &[u8])] = &[
    (
        "pjsua-offer",
        include_bytes!("../../testdata/pjsua-offer.sdp"),
    ),
    (
        "pjsua-hold",
        include_bytes!("../../testdata/pjsua-hold.sdp"),
    ),
    (
        "baresip-offer",
        include_bytes!("../../testdata/baresip-offer.sdp"),
    ),
    (
        "linphone-offer",
        include_bytes!("../../testdata/linphone-offer.sdp"),
    ),
    (
        "linphone-answer-video-rejected",
        include_bytes!("../../testdata/linphone-answer-video-rejected.sdp"),
    ),
    (
        "provider-answer",
        include_bytes!("../../testdata/provider-answer.sdp"),
    ),
    (
        "ipv6-offer",
        include_bytes!("../../testdata/ipv6-offer.sdp"),
    ),
    (
        "legacy-hold",
        include_bytes!("../../testdata/legacy-hold.sdp"),
    ),
    (
        "asterisk-lf",
        include_bytes!("../../testdata/asterisk-lf.sdp"),
    ),
];
