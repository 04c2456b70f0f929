//! Bencode, as rtpengine's ng control protocol speaks it: byte strings, integers, lists
//! and dictionaries (keys sorted when written).

use std::collections::BTreeMap;

/// A bencoded value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `4:spam`
    Bytes(Vec<u8>),
    /// `i42e`
    Int(i64),
    /// `l…e`
    List(Vec<Value>),
    /// `d…e`, keys in byte order.
    Dict(BTreeMap<Vec<u8>, Value>),
}

/// Why a bencoded text could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The text ended inside a value.
    #[error("bencode: truncated at byte {0}")]
    Truncated(usize),
    /// A byte that starts no value, or a malformed number.
    #[error("bencode: unexpected byte at {0}")]
    Unexpected(usize),
    /// More text after the value.
    #[error("bencode: trailing data at byte {0}")]
    Trailing(usize),
}

impl Value {
    /// A byte string from text.
    pub fn str(s: &str) -> Value {
        Value::Bytes(s.as_bytes().to_vec())
    }

    /// A dictionary from `(key, value)` pairs.
    pub fn dict<'a>(pairs: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
        Value::Dict(
            pairs
                .into_iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v))
                .collect(),
        )
    }

    /// The entry `key` of a dictionary.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(d) => d.get(key.as_bytes()),
            _ => None,
        }
    }

    /// The bytes of a byte string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// Appends the encoding of `self` to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::Bytes(b) => {
                out.extend_from_slice(b.len().to_string().as_bytes());
                out.push(b':');
                out.extend_from_slice(b);
            }
            Value::Int(i) => {
                out.push(b'i');
                out.extend_from_slice(i.to_string().as_bytes());
                out.push(b'e');
            }
            Value::List(l) => {
                out.push(b'l');
                for v in l {
                    v.encode(out);
                }
                out.push(b'e');
            }
            Value::Dict(d) => {
                out.push(b'd');
                for (k, v) in d {
                    Value::Bytes(k.clone()).encode(out);
                    v.encode(out);
                }
                out.push(b'e');
            }
        }
    }

    /// Reads exactly one value from `data`.
    pub fn decode(data: &[u8]) -> Result<Value, DecodeError> {
        let (v, end) = decode_at(data, 0, 0)?;
        if end != data.len() {
            return Err(DecodeError::Trailing(end));
        }
        Ok(v)
    }
}

/// Nesting deeper than this is refused (a hostile reply cannot exhaust the stack).
const MAX_DEPTH: usize = 32;

fn decode_at(data: &[u8], at: usize, depth: usize) -> Result<(Value, usize), DecodeError> {
    if depth > MAX_DEPTH {
        return Err(DecodeError::Unexpected(at));
    }
    match data.get(at).copied() {
        None => Err(DecodeError::Truncated(at)),
        Some(b'i') => {
            let end = find(data, at + 1, b'e')?;
            let n = number(&data[at + 1..end]).ok_or(DecodeError::Unexpected(at + 1))?;
            Ok((Value::Int(n), end + 1))
        }
        Some(b'l') => {
            let mut items = Vec::new();
            let mut i = at + 1;
            loop {
                match data.get(i) {
                    None => return Err(DecodeError::Truncated(i)),
                    Some(b'e') => return Ok((Value::List(items), i + 1)),
                    Some(_) => {
                        let (v, next) = decode_at(data, i, depth + 1)?;
                        items.push(v);
                        i = next;
                    }
                }
            }
        }
        Some(b'd') => {
            let mut items = BTreeMap::new();
            let mut i = at + 1;
            loop {
                match data.get(i) {
                    None => return Err(DecodeError::Truncated(i)),
                    Some(b'e') => return Ok((Value::Dict(items), i + 1)),
                    Some(_) => {
                        let (k, next) = decode_at(data, i, depth + 1)?;
                        let Value::Bytes(k) = k else {
                            return Err(DecodeError::Unexpected(i));
                        };
                        let (v, next) = decode_at(data, next, depth + 1)?;
                        items.insert(k, v);
                        i = next;
                    }
                }
            }
        }
        Some(b'0'..=b'9') => {
            let colon = find(data, at, b':')?;
            let len = number(&data[at..colon])
                .and_then(|n| usize::try_from(n).ok())
                .ok_or(DecodeError::Unexpected(at))?;
            let end = colon
                .checked_add(1 + len)
                .ok_or(DecodeError::Unexpected(at))?;
            let bytes = data
                .get(colon + 1..end)
                .ok_or(DecodeError::Truncated(data.len()))?;
            Ok((Value::Bytes(bytes.to_vec()), end))
        }
        Some(_) => Err(DecodeError::Unexpected(at)),
    }
}

fn find(data: &[u8], from: usize, byte: u8) -> Result<usize, DecodeError> {
    data.get(from..)
        .and_then(|rest| rest.iter().position(|&b| b == byte))
        .map(|p| from + p)
        .ok_or(DecodeError::Truncated(data.len()))
}

fn number(digits: &[u8]) -> Option<i64> {
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let v = Value::dict([
            ("command", Value::str("offer")),
            ("replace", Value::List(vec![Value::str("origin")])),
            ("n", Value::Int(-3)),
        ]);
        let mut out = Vec::new();
        v.encode(&mut out);
        assert_eq!(
            out,
            b"d7:command5:offer1:ni-3e7:replacel6:originee".to_vec()
        );
        assert_eq!(Value::decode(&out), Ok(v));
    }

    #[test]
    fn an_rtpengine_reply_reads() {
        let v = Value::decode(b"d3:sdp5:v=0\r\n6:result2:oke").unwrap();
        assert_eq!(v.get("result").and_then(Value::as_bytes), Some(&b"ok"[..]));
        assert_eq!(
            v.get("sdp").and_then(Value::as_bytes),
            Some(&b"v=0\r\n"[..])
        );
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        for bad in [
            &b""[..],
            b"d",
            b"5:abc",
            b"i12",
            b"ix3e",
            b"d1:ae",
            b"di1e1:ae",
            b"99999999999999999999:a",
            b"x",
            b"1:ab",
        ] {
            assert!(
                Value::decode(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let deep = "l".repeat(100) + &"e".repeat(100);
        assert!(Value::decode(deep.as_bytes()).is_err());
    }
}
