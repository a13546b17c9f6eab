//! YAML errors in one line: position and cause, without the excerpt of the source that
//! `serde-saphyr` adds (it could echo a password from the file into a log).

/// The first line of a YAML error, without its `error: ` prefix.
pub fn error_line(e: impl std::fmt::Display) -> String {
    let msg = e.to_string();
    msg.lines()
        .next()
        .unwrap_or("")
        .trim_start_matches("error: ")
        .to_string()
}
