//! The JSON of one call record, an element of `GET /api/calls` (DESIGN §8 "Records").

use mss_store::{CallRecord, UnixMillis};
use serde::{Deserialize, Serialize};

/// One call attempt, as `GET /api/calls` lists it: the DESIGN §8 field names, times in Unix
/// seconds like every view, unknown values `null`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecordView {
    /// The call's id.
    pub id: String,
    /// When the INVITE arrived (Unix seconds).
    pub started_at: u64,
    /// When the call was answered (Unix seconds), `null` if never.
    pub answered_at: Option<u64>,
    /// When the call ended (Unix seconds); `null` while up, or when it was interrupted.
    pub ended_at: Option<u64>,
    /// Whole seconds from start to end, `null` without an end.
    pub duration_s: Option<u64>,
    /// Whole seconds from answer to end (0 when never answered), `null` without an end.
    pub billsec_s: Option<u64>,
    /// Who called: a local user, or the number a line's provider sent.
    pub caller: String,
    /// What was dialled, as dialled.
    pub callee: String,
    /// Who answered: a local user, or the number dialled out through a line.
    pub answered_by: Option<String>,
    /// `internal`, `outbound` or `inbound`.
    pub direction: String,
    /// The line the call used, if any.
    pub line: Option<String>,
    /// `answered`, `no_answer`, `busy`, `failed`, `cancelled` or `interrupted`; `null`
    /// while the call is up.
    pub disposition: Option<String>,
    /// The final SIP status the caller got.
    pub sip_code: Option<u16>,
    /// `caller`, `callee` or `mss`.
    pub ended_by: Option<String>,
    /// The user who forwarded the call, if it was.
    pub forwarded_from: Option<String>,
    /// The user who transferred the call (REFER), if anyone did.
    pub transferred_by: Option<String>,
}

/// Unix seconds of `ms` (0 before 1970).
fn secs(ms: UnixMillis) -> u64 {
    u64::try_from(ms.div_euclid(1000)).unwrap_or(0)
}

impl From<&CallRecord> for CallRecordView {
    fn from(r: &CallRecord) -> CallRecordView {
        let whole = |s: Option<i64>| s.map(|s| u64::try_from(s).unwrap_or(0));
        CallRecordView {
            id: r.id.clone(),
            started_at: secs(r.started_at),
            answered_at: r.answered_at.map(secs),
            ended_at: r.ended_at.map(secs),
            duration_s: whole(r.duration_s()),
            billsec_s: whole(r.billsec_s()),
            caller: r.caller.clone(),
            callee: r.callee.clone(),
            answered_by: r.answered_by.clone(),
            direction: r.direction.as_str().to_owned(),
            line: r.line.clone(),
            disposition: r.disposition.map(|d| d.as_str().to_owned()),
            sip_code: r.sip_code,
            ended_by: r.ended_by.map(|e| e.as_str().to_owned()),
            forwarded_from: r.forwarded_from.clone(),
            transferred_by: r.transferred_by.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use mss_store::{CallDirection, CallDisposition, EndedBy};

    use super::*;

    #[test]
    fn json_has_the_design_field_names_in_seconds() {
        let r = CallRecord {
            id: "c-1".into(),
            started_at: 1_000_500,
            answered_at: Some(1_004_000),
            ended_at: Some(1_065_900),
            caller: "101".into(),
            callee: "95551234".into(),
            answered_by: Some("5551234".into()),
            direction: CallDirection::Outbound,
            line: Some("provider".into()),
            disposition: Some(CallDisposition::NoAnswer),
            sip_code: Some(480),
            ended_by: Some(EndedBy::Mss),
            forwarded_from: None,
            transferred_by: None,
        };
        let v = CallRecordView::from(&r);
        let json = serde_json::to_value(&v).unwrap();
        let fields: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for name in [
            "id",
            "started_at",
            "answered_at",
            "ended_at",
            "duration_s",
            "billsec_s",
            "caller",
            "callee",
            "answered_by",
            "direction",
            "line",
            "disposition",
            "sip_code",
            "ended_by",
            "forwarded_from",
            "transferred_by",
        ] {
            assert!(fields.contains(&name), "{name} missing in {json}");
        }
        assert_eq!(fields.len(), 16);
        assert_eq!(json["started_at"], 1_000);
        assert_eq!(json["answered_at"], 1_004);
        assert_eq!(json["ended_at"], 1_065);
        assert_eq!(json["duration_s"], 65);
        assert_eq!(json["billsec_s"], 61);
        assert_eq!(json["direction"], "outbound");
        assert_eq!(json["disposition"], "no_answer");
        assert_eq!(json["ended_by"], "mss");
        assert!(json["forwarded_from"].is_null());
        let back: CallRecordView = serde_json::from_value(json).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn an_open_record_has_nulls() {
        let r = CallRecord {
            id: "c-2".into(),
            started_at: -5,
            answered_at: None,
            ended_at: None,
            caller: "101".into(),
            callee: "102".into(),
            answered_by: None,
            direction: CallDirection::Internal,
            line: None,
            disposition: None,
            sip_code: None,
            ended_by: None,
            forwarded_from: None,
            transferred_by: None,
        };
        let v = CallRecordView::from(&r);
        assert_eq!(v.started_at, 0);
        assert_eq!((v.duration_s, v.billsec_s), (None, None));
        assert_eq!(v.disposition, None);
    }
}
