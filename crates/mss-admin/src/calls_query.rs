//! The query of `GET /api/calls`: `since` (Unix seconds) and `limit`.

use std::collections::HashMap;

use mss_store::UnixMillis;

/// Records listed when the query names no `limit`.
pub const DEFAULT_CALLS_LIMIT: u32 = 100;

/// The most records one `GET /api/calls` lists.
pub const MAX_CALLS_LIMIT: u32 = 1000;

/// What `GET /api/calls` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallsQuery {
    /// Only calls that started at or after this time (Unix milliseconds); all without it.
    pub since: Option<UnixMillis>,
    /// At most this many records (1 to [`MAX_CALLS_LIMIT`]).
    pub limit: u32,
}

impl CallsQuery {
    /// The query from its parameters; the error is the message of the `400` answer (an
    /// unknown parameter, a value that is not a number, a limit out of range).
    pub fn from_params(params: &HashMap<String, String>) -> Result<CallsQuery, String> {
        if let Some(unknown) = params
            .keys()
            .find(|k| !matches!(k.as_str(), "since" | "limit"))
        {
            return Err(format!(
                "unknown query parameter {unknown:?}: use since (Unix seconds) and limit"
            ));
        }
        let since = match params.get("since") {
            None => None,
            Some(text) => Some(
                text.parse::<u64>()
                    .ok()
                    .and_then(|s| i64::try_from(s).ok())
                    .and_then(|s| s.checked_mul(1000))
                    .ok_or_else(|| format!("since={text:?} is not a time in Unix seconds"))?,
            ),
        };
        let limit = match params.get("limit") {
            None => DEFAULT_CALLS_LIMIT,
            Some(text) => text
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_CALLS_LIMIT).contains(n))
                .ok_or_else(|| {
                    format!("limit={text:?} is not a number from 1 to {MAX_CALLS_LIMIT}")
                })?,
        };
        Ok(CallsQuery { since, limit })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<CallsQuery, String> {
        let params = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        CallsQuery::from_params(&params)
    }

    #[test]
    fn defaults_and_values() {
        assert_eq!(
            parse(&[]),
            Ok(CallsQuery {
                since: None,
                limit: 100
            })
        );
        assert_eq!(
            parse(&[("since", "1700000000"), ("limit", "1000")]),
            Ok(CallsQuery {
                since: Some(1_700_000_000_000),
                limit: 1000
            })
        );
        assert_eq!(parse(&[("limit", "1")]).map(|q| q.limit), Ok(1));
    }

    #[test]
    fn bad_values_are_named() {
        for (pairs, needle) in [
            (&[("limit", "0")][..], "limit=\"0\""),
            (&[("limit", "1001")][..], "from 1 to 1000"),
            (&[("limit", "ten")][..], "limit=\"ten\""),
            (&[("limit", "")][..], "limit=\"\""),
            (&[("since", "-1")][..], "since=\"-1\""),
            (&[("since", "yesterday")][..], "Unix seconds"),
            (&[("since", "18446744073709551615")][..], "since="),
            (&[("sinse", "1")][..], "\"sinse\""),
        ] {
            let err = parse(pairs).unwrap_err();
            assert!(err.contains(needle), "{pairs:?}: {err}");
        }
    }
}
