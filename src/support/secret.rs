//! Secrets: the PBX password, its MD5, and API tokens.
//!
//! A [`Secret`] prints as `<secret>` in `Debug` and `Display`, so it cannot reach a log line, an error
//! message or a metric by accident; the value is read only through [`Secret::expose`], at the two
//! places that must send it to the PBX (the login body and the `token` query parameter).

use std::fmt;

/// A string that never prints.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret(String);

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself: only for sending to the PBX.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The lowercase hex MD5 of this secret, as the PBX's `login` wants the password.
    pub fn md5_hex(&self) -> Secret {
        use md5::{Digest, Md5};
        let digest = Md5::digest(self.0.as_bytes());
        let mut hex = String::with_capacity(32);
        for b in digest.iter() {
            hex.push_str(&format!("{b:02x}"));
        }
        Secret(hex)
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_and_hashes_like_the_pbx_expects() {
        let s = Secret::new("password");
        assert_eq!(format!("{s:?} {s}"), "<secret> <secret>");
        assert_eq!(s.md5_hex().expose(), "5f4dcc3b5aa765d61d8327deb882cf99");
        assert_eq!(format!("{:?}", Some(s.md5_hex())), "Some(<secret>)");
    }
}
