//! JSON reading every API family shares: what real firmware sends where the docs promise a type
//! — strings that arrive as numbers (and the reverse), `null` for absent, numbers too large for
//! `f64` kept digit for digit ([`decode_exact`]), member status words bucketed and channel ids
//! hashed as they are read. The families' answer types (`s_series::types`, `p_series::types`)
//! name their own fields and use these for the values.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer};

use crate::pbx::model::{Call, CallSink, ChannelId, Status};

/// A string or a number, read as a string (`"6500"` and `6500` both give `"6500"`).
pub fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(lenient_opt_string(d)?.unwrap_or_default())
}

/// Like [`lenient_string`], keeping `null` as `None`.
pub fn lenient_opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(lenient_opt_cow(d)?.map(Cow::into_owned))
}

/// A string or a number as text, borrowed where it can be; absent or `null` is `""`.
pub fn lenient_cow<'de, D: Deserializer<'de>>(d: D) -> Result<Cow<'de, str>, D::Error> {
    Ok(lenient_opt_cow(d)?.unwrap_or_default())
}

/// [`lenient_opt_cow`] for a field with `deserialize_with`.
pub fn lenient_opt_cow_field<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Cow<'de, str>>, D::Error> {
    lenient_opt_cow(d)
}

/// A member's channel id (`channelid`, `channel_id`): hashed as it is read (a number is hashed as its decimal text).
pub fn channel_id<'de, D: Deserializer<'de>>(d: D) -> Result<ChannelId, D::Error> {
    Ok(ChannelId::of(&lenient_opt_cow(d)?.unwrap_or_default()))
}

thread_local! {
    /// Set while an answer is decoded a second time because it held a number that `f64` cannot
    /// carry exactly: strings and numbers are then read as raw JSON text.
    static RAW_NUMBERS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Set when a lenient field met such a number.
    static SAW_INEXACT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Decodes with `decode`; when a lenient field met a number beyond what `u64`/`i64` hold (read as
/// `f64`, so possibly rounded), decodes again reading every such field as its raw JSON text, so a
/// trunk named `111111111111111111111` keeps every digit. The fast path costs nothing extra; the
/// second pass happens only for such answers.
pub fn decode_exact<T>(mut decode: impl FnMut() -> T) -> T {
    SAW_INEXACT.with(|s| s.set(false));
    let first = decode();
    if !SAW_INEXACT.with(|s| s.replace(false)) {
        return first;
    }
    drop(first);
    RAW_NUMBERS.with(|r| r.set(true));
    let second = decode();
    RAW_NUMBERS.with(|r| r.set(false));
    second
}

/// A string, or a number or boolean as its text, or nothing; borrowed from the answer where it
/// needs no unescaping. A visitor rather than an untagged enum: untagged buffers every value first,
/// and these fields are most of a call/query answer. Numbers are kept as the PBX wrote them: one
/// that only `f64` can hold sends the answer through [`decode_exact`]'s second, raw-text pass.
pub fn lenient_opt_cow<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<std::borrow::Cow<'de, str>>, D::Error> {
    use std::borrow::Cow;
    if RAW_NUMBERS.with(|r| r.get()) {
        return raw_cow(d);
    }
    struct Lenient;
    impl<'de> serde::de::Visitor<'de> for Lenient {
        type Value = Option<Cow<'de, str>>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string or a number")
        }
        fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Borrowed(v)))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_owned())))
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_string())))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_string())))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
            // Perhaps rounded: have the answer read again as raw text.
            SAW_INEXACT.with(|s| s.set(true));
            Ok(Some(Cow::Owned(v.to_string())))
        }
        fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_string())))
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(Lenient)
        }
    }
    d.deserialize_any(Lenient)
}

/// The raw-text reading of [`lenient_opt_cow`]: numbers exactly as written.
fn raw_cow<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<std::borrow::Cow<'de, str>>, D::Error> {
    use serde::de::Error;
    use std::borrow::Cow;
    let raw: &'de serde_json::value::RawValue = Deserialize::deserialize(d)?;
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'"') => {
            let inner = &text[1..text.len() - 1];
            if inner.contains('\\') {
                serde_json::from_str::<String>(text)
                    .map(|s| Some(Cow::Owned(s)))
                    .map_err(D::Error::custom)
            } else {
                Ok(Some(Cow::Borrowed(inner)))
            }
        }
        Some(b'n') => Ok(None),
        Some(b'-' | b'0'..=b'9' | b't' | b'f') => Ok(Some(Cow::Borrowed(text))),
        _ => Err(D::Error::custom(format!(
            "expected a string or a number, found {}",
            if text.starts_with('[') {
                "a list"
            } else {
                "an object"
            }
        ))),
    }
}

/// A member's status word (`memberstatus`, `member_status`): bucketed as it is read, without keeping the word (a number or null is `OTHER`).
pub fn member_status<'de, D: Deserializer<'de>>(d: D) -> Result<Status, D::Error> {
    struct Word;
    impl<'de> serde::de::Visitor<'de> for Word {
        type Value = Status;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a status word")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Status, E> {
            Ok(Status::parse(v))
        }
        fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Status, E> {
            Ok(Status::Other)
        }
        fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Status, E> {
            Ok(Status::Other)
        }
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Status, E> {
            Ok(Status::Other)
        }
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Status, E> {
            Ok(Status::Other)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Status, E> {
            Ok(Status::Other)
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Status, E> {
            Ok(Status::Other)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Status, D::Error> {
            d.deserialize_any(Word)
        }
    }
    d.deserialize_any(Word)
}

/// An answer's body as `T`: one UTF-8 check of the whole body (cheaper than one per string read;
/// bytes that are not UTF-8, a trunk named in Latin-1, become U+FFFD rather than failing it), read
/// through [`decode_exact`]. The error is the decoder's words.
pub fn read_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let lossy;
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(_) => {
            lossy = String::from_utf8_lossy(bytes);
            &*lossy
        }
    };
    decode_exact(|| serde_json::from_str(text)).map_err(|e| e.to_string())
}

/// Feeds a JSON array of calls into a sink, one call at a time, each read as the family's `L`
/// and handed over as the model's [`Call`] (`null` counts as none): no decoded list is held.
pub struct CallSeq<'a, S, L>(&'a mut S, std::marker::PhantomData<fn() -> L>);

impl<'a, S, L> CallSeq<'a, S, L> {
    /// Feeds `sink`.
    pub fn new(sink: &'a mut S) -> Self {
        Self(sink, std::marker::PhantomData)
    }
}

impl<'de, S: CallSink, L: Deserialize<'de> + Into<Call<'de>>> serde::de::DeserializeSeed<'de>
    for CallSeq<'_, S, L>
{
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, S: CallSink, L: Deserialize<'de> + Into<Call<'de>>> serde::de::Visitor<'de>
    for CallSeq<'_, S, L>
{
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a list of calls")
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(call) = seq.next_element::<L>()? {
            self.0.add_call(call.into());
        }
        Ok(())
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

/// A list of calls, each read as `L`, fed into a new sink.
pub fn call_seq<'de, D: Deserializer<'de>, S: CallSink, L: Deserialize<'de> + Into<Call<'de>>>(
    d: D,
) -> Result<S, D::Error> {
    let mut out = S::default();
    serde::de::DeserializeSeed::deserialize(CallSeq::<S, L>::new(&mut out), d)?;
    Ok(out)
}
