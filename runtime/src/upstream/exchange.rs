//! What a request gets back from its upstream: the messages that relate to it, ending with
//! its response. A plain JSON answer over HTTP is kept as the upstream's bytes until someone
//! needs it parsed, so a relay that changes nothing but the `id` never builds the tree.

use super::router::{id_key, is_response};
use super::{Message, UpstreamError};
use bytes::Bytes;
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;
use std::borrow::Cow;
use tokio::sync::mpsc;

/// Messages arriving from upstream for one request, ending with its response.
/// The exchange ends after the response, or early when the upstream fails (then the last
/// item is an `Err`).
#[derive(Debug)]
pub struct Exchange {
    rx: Option<mpsc::Receiver<Result<Message, UpstreamError>>>,
    raw: Option<RawResponse>,
}

impl From<mpsc::Receiver<Result<Message, UpstreamError>>> for Exchange {
    fn from(rx: mpsc::Receiver<Result<Message, UpstreamError>>) -> Exchange {
        Exchange {
            rx: Some(rx),
            raw: None,
        }
    }
}

impl Exchange {
    /// An exchange whose only item is an HTTP answer's body, not parsed yet.
    pub(crate) fn raw(bytes: Bytes, key: String) -> Exchange {
        Exchange {
            rx: None,
            raw: Some(RawResponse { bytes, key }),
        }
    }

    /// The next message, `None` once the exchange ended. Cancel-safe.
    pub async fn recv(&mut self) -> Option<Result<Message, UpstreamError>> {
        if let Some(raw) = self.raw.take() {
            return Some(raw.parse());
        }
        match &mut self.rx {
            Some(rx) => rx.recv().await,
            None => None,
        }
    }

    /// The response still in its upstream bytes, for a relay that passes it on unchanged
    /// but for its `id`; `None` when the exchange is a stream of parsed messages.
    pub fn take_raw(&mut self) -> Option<RawResponse> {
        self.raw.take()
    }
}

/// An upstream's JSON answer to the request keyed `key`, as it came.
#[derive(Debug)]
pub struct RawResponse {
    bytes: Bytes,
    key: String,
}

fn not_the_response() -> UpstreamError {
    UpstreamError::Protocol("response body is not the JSON-RPC response to the request".into())
}

impl RawResponse {
    /// The response, parsed.
    ///
    /// # Errors
    /// A protocol error when the body is not the JSON-RPC response to the request.
    pub fn parse(self) -> Result<Message, UpstreamError> {
        let message: Message =
            serde_json::from_slice(&self.bytes).map_err(|_| not_the_response())?;
        (is_response(&message) && message.get("id").and_then(id_key).as_deref() == Some(&self.key))
            .then_some(message)
            .ok_or_else(not_the_response)
    }

    /// The response with `id` in place of the upstream's, encoded: the members other than
    /// `id` are copied as they came (only the top level is parsed), in the key order a
    /// parsed message is written in, a repeated member keeping its last value as there.
    ///
    /// # Errors
    /// As [`RawResponse::parse`], on the same bodies.
    pub fn with_id(&self, id: &Value) -> Result<Vec<u8>, UpstreamError> {
        let Members(mut top) =
            serde_json::from_slice(&self.bytes).map_err(|_| not_the_response())?;
        // Sorted as a parsed object's keys are; the sort is stable, so of repeated keys the
        // last comes last, and it is the one kept.
        top.sort_by(|a, b| a.0.cmp(&b.0));
        let mut members: Vec<(Cow<'_, str>, &RawValue)> = Vec::with_capacity(top.len());
        for (k, v) in top {
            match members.last_mut() {
                Some(last) if last.0 == k => last.1 = v,
                _ => members.push((k, v)),
            }
        }
        let member = |name: &str| members.iter().find(|(k, _)| k == name).map(|(_, v)| *v);
        let Some(upstream_id) = member("id") else {
            return Err(not_the_response());
        };
        // The id as it came is the key most of the time; otherwise compare as parsing would.
        let same_id = upstream_id.get() == self.key
            || serde_json::from_str::<Value>(upstream_id.get())
                .ok()
                .and_then(|v| id_key(&v))
                .is_some_and(|k| k == self.key);
        let answers =
            member("method").is_none() && (member("result").is_some() || member("error").is_some());
        if !answers || !same_id {
            return Err(not_the_response());
        }
        let mut out = Vec::with_capacity(self.bytes.len() + 32);
        out.push(b'{');
        for (i, (k, v)) in members.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut out, k.as_ref()).map_err(|_| not_the_response())?;
            out.push(b':');
            if k == "id" {
                serde_json::to_writer(&mut out, id).map_err(|_| not_the_response())?;
            } else {
                out.extend_from_slice(v.get().as_bytes());
            }
        }
        out.push(b'}');
        Ok(out)
    }
}

/// The members of a JSON object, values unparsed, keys borrowed when they have no escapes.
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Object;
        impl<'de> Visitor<'de> for Object {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut out = Vec::with_capacity(4);
                while let Some(Key(k)) = map.next_key()? {
                    out.push((k, map.next_value()?));
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(Object)
    }
}

struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Name;
        impl<'de> Visitor<'de> for Name {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(Name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn raw(body: &str, key: &str) -> RawResponse {
        RawResponse {
            bytes: Bytes::from(body.to_owned()),
            key: key.to_owned(),
        }
    }

    #[test]
    fn the_id_is_replaced_and_the_rest_kept() {
        let body = r#"{"result": {"content": [{"type": "text", "text": "ok"}], "isError": false},
                       "jsonrpc": "2.0", "id": 7}"#;
        let out = raw(body, "7").with_id(&json!("client-1")).unwrap();
        let out: Value = serde_json::from_slice(&out).unwrap();
        let mut expected: Value = serde_json::from_str(body).unwrap();
        expected["id"] = json!("client-1");
        assert_eq!(out, expected);
    }

    #[test]
    fn the_encoding_matches_a_parsed_message_for_compact_bodies() {
        let body = r#"{"jsonrpc":"2.0","id":3,"error":{"code":-32601,"message":"no"}}"#;
        let out = raw(body, "3").with_id(&json!(12)).unwrap();
        let mut parsed: Value = serde_json::from_str(body).unwrap();
        parsed["id"] = json!(12);
        assert_eq!(out, serde_json::to_vec(&parsed).unwrap());
    }

    #[test]
    fn what_parse_refuses_with_id_refuses() {
        for (body, key) in [
            (r#"{"jsonrpc":"2.0","id":4,"result":{}}"#, "5"),
            (r#"{"jsonrpc":"2.0","id":"4","result":{}}"#, "4"),
            (r#"{"jsonrpc":"2.0","id":4,"method":"x","result":{}}"#, "4"),
            (r#"{"jsonrpc":"2.0","id":4}"#, "4"),
            (r#"{"jsonrpc":"2.0","result":{}}"#, "4"),
            (r#"[{"jsonrpc":"2.0","id":4,"result":{}}]"#, "4"),
            (r#"{"jsonrpc":"2.0","id":4,"result":{"#, "4"),
            ("", "4"),
        ] {
            assert!(raw(body, key).with_id(&json!(1)).is_err(), "{body}");
            assert!(raw(body, key).parse().is_err(), "{body}");
        }
        assert!(
            raw(r#"{"jsonrpc":"2.0","id":"4","result":{}}"#, r#""4""#)
                .with_id(&json!(1))
                .is_ok()
        );
    }

    #[test]
    fn repeated_escaped_and_unusual_members_read_as_a_parse_reads_them() {
        for (body, key) in [
            (
                r#"{"jsonrpc":"2.0","id":1,"result":{"a":1},"result":{"b":2}}"#,
                "1",
            ),
            (r#"{"jsonrpc":"2.0","id":1,"\u0072esult":{"a":1}}"#, "1"),
            (
                r#"{"jsonrpc":"2.0","id":"\u0041","result":[1, 2.50, "x\n"]}"#,
                r#""A""#,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"error":{"code":1},"zz":null,"aa":true}"#,
                "1",
            ),
        ] {
            let out = raw(body, key).with_id(&json!("c")).unwrap();
            let mut expected = raw(body, key).parse().unwrap();
            expected["id"] = json!("c");
            assert_eq!(
                serde_json::from_slice::<Value>(&out).unwrap(),
                expected,
                "{body}"
            );
        }
    }

    #[tokio::test]
    async fn recv_parses_the_raw_answer() {
        let mut x = Exchange::raw(
            Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#),
            "1".into(),
        );
        let m = x.recv().await.unwrap().unwrap();
        assert_eq!(m, json!({"jsonrpc": "2.0", "id": 1, "result": {}}));
        assert!(x.recv().await.is_none());
        assert!(x.take_raw().is_none());
    }
}
