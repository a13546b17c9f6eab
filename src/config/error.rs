//! The configuration's one error type: each error names the flag or the file's field that is
//! wrong, as the user wrote it (`--pbx.timeout`, `targets.office.timeout`).

use std::path::{Path, PathBuf};

/// A configuration error, naming the field or flag.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    /// A required setting is missing.
    #[error("{field}: required{hint}")]
    Missing {
        /// The flag or field.
        field: String,
        /// How to set it.
        hint: String,
    },
    /// A value is wrong.
    #[error("{field}: {reason}")]
    Invalid {
        /// The flag or field.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A file the configuration names cannot be read.
    #[error("{field}: cannot read {}", path.display())]
    Read {
        /// The flag or field.
        field: String,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        cause: crate::support::report::Cause,
    },
}

/// `field` names a file that cannot be read.
pub(crate) fn unreadable(field: &str, path: &Path, e: std::io::Error) -> ConfigError {
    ConfigError::Read {
        field: field.to_string(),
        path: path.to_path_buf(),
        cause: crate::support::report::Cause::new(e),
    }
}

/// `field`'s value is wrong, for `reason`.
pub(crate) fn invalid(field: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.to_string(),
        reason: reason.into(),
    }
}

/// `field` is required; `hint` (with its leading space) says how to set it.
pub(crate) fn missing(field: &str, hint: impl Into<String>) -> ConfigError {
    ConfigError::Missing {
        field: field.to_string(),
        hint: hint.into(),
    }
}

/// A YAML error as a [`ConfigError`] of `source`: position and cause, without the source excerpt.
pub fn yaml_error(source: &str, e: impl std::fmt::Display) -> ConfigError {
    invalid(source, crate::support::yaml::error_line(e))
}
