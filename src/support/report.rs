//! Errors rendered once, with their causes, where they are logged or shown.
//!
//! Error types keep what they wrap as a `#[source]` (so a caller can inspect it) and display only
//! their own words; [`chain`] writes the whole story — `what failed: why: the cause's cause` — for
//! a log line, the landing page or the exit message. A cause whose words are already in the text
//! is not written twice (reqwest and hyper repeat their inner errors).

use std::error::Error;
use std::fmt;
use std::sync::Arc;

/// `err` and each of its sources, joined by `": "`, each once.
pub fn chain(err: &(dyn Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let words = s.to_string();
        if !words.is_empty() && !text.contains(&words) {
            text.push_str(": ");
            text.push_str(&words);
        }
        source = s.source();
    }
    text
}

/// A wrapped cause that can be cloned and compared (by its words) — for error types that are
/// themselves `Clone` or `PartialEq`, which `std::io::Error` and friends are not.
#[derive(Clone)]
pub struct Cause(Arc<dyn Error + Send + Sync + 'static>);

impl Cause {
    /// Wraps an error.
    pub fn new(err: impl Error + Send + Sync + 'static) -> Self {
        Cause(Arc::new(err))
    }

    /// A cause that is only words (a library's refusal that came as a string).
    pub fn words(text: impl Into<String>) -> Self {
        #[derive(Debug)]
        struct Words(String);
        impl fmt::Display for Words {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl Error for Words {}
        Cause(Arc::new(Words(text.into())))
    }

    /// The wrapped error, for inspection.
    pub fn get(&self) -> &(dyn Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl Error for Cause {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for Cause {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("ca_file /etc/pbx.pem")]
    struct Outer {
        #[source]
        source: Cause,
    }

    #[test]
    fn each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let e = Outer {
            source: Cause::new(io),
        };
        assert_eq!(chain(&e), "ca_file /etc/pbx.pem: No such file or directory");
        assert_eq!(e.to_string(), "ca_file /etc/pbx.pem");
        // A cause repeating words already written is skipped.
        let e = Outer {
            source: Cause::words("ca_file /etc/pbx.pem"),
        };
        assert_eq!(chain(&e), "ca_file /etc/pbx.pem");
        assert_eq!(Cause::words("a"), Cause::words("a"));
    }
}
