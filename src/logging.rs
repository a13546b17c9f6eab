//! Log lines an operator can act on.
//!
//! - Every line about a PBX carries it: its client owns a span ([`span`]) with `target_name` and
//!   `pbx=scheme://host:port` (never userinfo, path or query), entered around its collection, its
//!   logins and its logouts, so any line logged inside carries both fields without naming them.
//! - logfmt is written as Go's exporters write it ([`Logfmt`]): a value is quoted only when it must
//!   be, and only `"`, `\` and control characters are escaped (`the PBX's answer`, not
//!   `the PBX\'s answer`); values are words, lists plain ([`List`]: `failed=calls,trunks`).
//! - A failure's cause starts with what a PBX admin can act on, the library's words after
//!   (`pbx::words::cause`).
//! - `/probe?debug=true` reads the lines of one probe ([`capture`]) at every level, whatever
//!   `--log.level` says, while the rest of the log keeps its level.

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// The name of a PBX's span.
pub const SPAN: &str = "pbx";

/// How a PBX is named in logs: `scheme://host:port`, the port always written, IPv6 in brackets;
/// never userinfo, path or query (the configuration refuses them; cut here anyway).
pub fn origin(url: &str) -> String {
    let url = url.trim();
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (s.to_ascii_lowercase(), r),
        None => ("http".to_string(), url),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit('@').next().unwrap_or("");
    let default_port = if scheme == "https" { "443" } else { "80" };
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((h, rest)) => (format!("[{h}]"), rest.strip_prefix(':').unwrap_or("")),
            None => (authority.to_string(), ""),
        },
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p),
            None => (authority.to_string(), ""),
        },
    };
    let port = if port.is_empty() { default_port } else { port };
    format!("{scheme}://{host}:{port}")
}

/// The span a PBX's work runs in: every line logged inside carries `target_name` and `pbx`.
/// At `error` level, so that it is on whatever `--log.level` says.
pub fn span(target_name: &str, url: &str) -> tracing::Span {
    tracing::error_span!(SPAN, target_name = %target_name, pbx = %origin(url))
}

/// A list as a log value: its items joined by commas (`calls,trunks`).
pub struct List<'a, T>(pub &'a [T]);

impl<T: fmt::Display> fmt::Display for List<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, item) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_char(',')?;
            }
            write!(f, "{item}")?;
        }
        Ok(())
    }
}

/// A duration as Prometheus writes one, its zero units left out: `3m12s`, `1h5s`, `10m`,
/// `250ms`, `0s`.
pub fn duration_words(d: Duration) -> String {
    let secs = d.as_secs();
    let parts = [
        (secs / 3600, "h"),
        (secs / 60 % 60, "m"),
        (secs % 60, "s"),
        (u64::from(d.subsec_millis()), "ms"),
    ];
    let mut out = String::new();
    for (n, unit) in parts {
        if n > 0 {
            let _ = write!(out, "{n}{unit}");
        }
    }
    if out.is_empty() {
        out.push_str("0s");
    }
    out
}

/// Unix milliseconds as RFC 3339 in UTC, to the millisecond: `2026-12-03T12:42:37.123Z`.
pub fn rfc3339_millis(unix_millis: u64) -> String {
    let secs = unix_millis / 1000;
    format!("{}.{:03}Z", rfc3339_secs_body(secs), unix_millis % 1000)
}

/// Unix seconds as RFC 3339 in UTC: `2026-12-03T12:42:37Z`.
pub fn rfc3339(unix_secs: u64) -> String {
    format!("{}Z", rfc3339_secs_body(unix_secs))
}

fn rfc3339_secs_body(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// How long ago `then_unix` was at `now_unix`, in words: `just now`, `42s ago`, `3m ago`,
/// `2h5m ago`, `3d4h ago`.
pub fn ago(then_unix: f64, now_unix: f64) -> String {
    let secs = (now_unix - then_unix).max(0.0) as u64;
    match secs {
        0 => "just now".into(),
        1..=59 => format!("{secs}s ago"),
        60..=3599 => format!("{}m ago", secs / 60),
        3600..=86_399 => format!("{}h{}m ago", secs / 3600, secs / 60 % 60),
        _ => format!("{}d{}h ago", secs / 86_400, secs / 3600 % 24),
    }
}

/// A span's fields as words, kept for [`Logfmt`] and [`capture`].
struct SpanFields(Vec<(&'static str, String)>);

/// Writes `key=value` in logfmt: the value quoted when empty or holding a space, `=`, `"` or a
/// control character; inside quotes only `"`, `\` and control characters escaped.
pub fn push_pair(out: &mut String, key: &str, value: &str) {
    if !out.is_empty() {
        out.push(' ');
    }
    out.push_str(key);
    out.push('=');
    let quote = value.is_empty() || value.chars().any(|c| c <= ' ' || c == '=' || c == '"');
    if !quote {
        out.push_str(value);
        return;
    }
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Collects an event's or a span's fields as words.
#[derive(Default)]
struct Fields(Vec<(&'static str, String)>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name(), value.to_string()));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .push((field.name(), crate::support::report::chain(value)));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `%value` and the message arrive here as Display; only `?value` is Debug.
        self.0.push((field.name(), format!("{value:?}")));
    }
}

/// One event as a logfmt line (no newline): `ts`, `level`, `target`, the event's fields, then
/// its spans' fields that the event does not name itself.
fn line(event: &Event<'_>, spans: Vec<Vec<(&'static str, String)>>, now_millis: u64) -> String {
    let meta = event.metadata();
    let mut fields = Fields::default();
    event.record(&mut fields);
    let mut out = String::with_capacity(160);
    push_pair(&mut out, "ts", &rfc3339_millis(now_millis));
    push_pair(
        &mut out,
        "level",
        &meta.level().as_str().to_ascii_lowercase(),
    );
    push_pair(&mut out, "target", meta.target());
    for (k, v) in &fields.0 {
        push_pair(&mut out, k, v);
    }
    let mut seen: Vec<&'static str> = fields.0.iter().map(|(k, _)| *k).collect();
    for span in spans {
        for (k, v) in span {
            if !seen.contains(&k) {
                push_pair(&mut out, k, &v);
                seen.push(k);
            }
        }
    }
    out
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The logfmt event format: `ts=… level=… target=… message="…" fields… span fields…`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Logfmt;

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let spans: Vec<Vec<(&'static str, String)>> = ctx
            .event_scope()
            .map(|scope| {
                scope
                    .from_root()
                    .filter_map(|s| s.extensions().get::<SpanFields>().map(|f| f.0.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let text = line(event, spans, now_millis());
        writer.write_str(&text)?;
        writer.write_char('\n')
    }
}

/// Debug captures in progress, by target name.
static CAPTURES: Mutex<Vec<(String, Arc<Mutex<Capped>>)>> = Mutex::new(Vec::new());
/// How many: 0 lets the capture layer ignore every event below the log level at no cost.
static CAPTURING: AtomicUsize = AtomicUsize::new(0);

/// The most a capture keeps: a probe's lines are a few dozen.
const CAPTURE_MAX_BYTES: usize = 256 * 1024;

#[derive(Default)]
struct Capped {
    text: String,
    cut: bool,
}

/// The log lines of one target's work while it is held, at every level (`/probe?debug=true`).
pub struct Capture {
    target: String,
    buf: Arc<Mutex<Capped>>,
}

/// Starts capturing the lines logged in `target_name`'s span.
pub fn capture(target_name: &str) -> Capture {
    let buf = Arc::new(Mutex::new(Capped::default()));
    lock(&CAPTURES).push((target_name.to_string(), buf.clone()));
    CAPTURING.fetch_add(1, Ordering::SeqCst);
    Capture {
        target: target_name.to_string(),
        buf,
    }
}

impl Capture {
    /// The lines so far, each ending in a newline.
    pub fn text(&self) -> String {
        let c = lock(&self.buf);
        let mut t = c.text.clone();
        if c.cut {
            t.push_str("… (cut: more than 256 KiB of log lines)\n");
        }
        t
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        lock(&CAPTURES).retain(|(name, b)| !(name == &self.target && Arc::ptr_eq(b, &self.buf)));
        CAPTURING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Keeps each span's fields ([`SpanFields`]) and copies the lines of captured targets.
struct SpanLayer;

impl<S> Layer<S> for SpanLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(fields.0));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if CAPTURING.load(Ordering::Relaxed) == 0 {
            return;
        }
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        let spans: Vec<Vec<(&'static str, String)>> = scope
            .from_root()
            .filter_map(|s| s.extensions().get::<SpanFields>().map(|f| f.0.clone()))
            .collect();
        let Some(name) = spans
            .iter()
            .flatten()
            .find(|(k, _)| *k == "target_name")
            .map(|(_, v)| v.clone())
        else {
            return;
        };
        let sinks: Vec<Arc<Mutex<Capped>>> = lock(&CAPTURES)
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, b)| b.clone())
            .collect();
        if sinks.is_empty() {
            return;
        }
        let text = line(event, spans, now_millis());
        for sink in sinks {
            let mut c = lock(&sink);
            if c.text.len() + text.len() < CAPTURE_MAX_BYTES {
                c.text.push_str(&text);
                c.text.push('\n');
            } else {
                c.cut = true;
            }
        }
    }
}

/// Spans always (their fields are kept); events only while a capture runs. Asked for every event
/// (`Interest::sometimes`): whether a capture runs changes, so no answer may be cached per callsite.
struct CaptureFilter;

impl<S> tracing_subscriber::layer::Filter<S> for CaptureFilter {
    fn enabled(&self, meta: &tracing::Metadata<'_>, _: &Context<'_, S>) -> bool {
        meta.is_span() || (CAPTURING.load(Ordering::Relaxed) > 0 && ours_or_warning(meta))
    }

    fn callsite_enabled(
        &self,
        meta: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        if meta.is_span() {
            tracing::subscriber::Interest::always()
        } else {
            tracing::subscriber::Interest::sometimes()
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::TRACE)
    }
}

/// Whether an event is the exporter's own, or a library's warning or error: the libraries' own
/// debug and trace lines (hyper's "connecting to …", rustls's handshake steps) say nothing a PBX
/// admin can act on, and at `--log.level=debug` they would drown the exporter's lines.
fn ours_or_warning(meta: &tracing::Metadata<'_>) -> bool {
    meta.target().starts_with(env!("CARGO_CRATE_NAME")) || *meta.level() <= tracing::Level::WARN
}

/// The exporter's logging: `format` (`logfmt` or `json`) at `level` to `writer`, with PBX spans
/// and debug captures. For [`init`] and for tests that read the log.
pub fn layers<S, W>(level: LevelFilter, format: &str, writer: W) -> impl Layer<S> + Send + Sync
where
    S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let fmt: Box<dyn Layer<S> + Send + Sync> = if format == "json" {
        Box::new(
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(writer)
                .with_filter(level)
                .with_filter(tracing_subscriber::filter::filter_fn(ours_or_warning)),
        )
    } else {
        Box::new(
            tracing_subscriber::fmt::layer()
                .event_format(Logfmt)
                .with_writer(writer)
                .with_filter(level)
                .with_filter(tracing_subscriber::filter::filter_fn(ours_or_warning)),
        )
    };
    // Spans always (their fields are kept); events only while a capture runs.
    let spans = SpanLayer.with_filter(CaptureFilter);
    // The capture layer outermost: over the registry, a stack of layers takes its level hint
    // (the most verbose level any event may be logged at) from its outermost layer alone
    // (tracing-subscriber's `Layered`), and a capture needs every level, whatever --log.level
    // says. The formatter's own filter still holds it to --log.level.
    fmt.and_then(spans)
}

/// Sets up logging to stderr at `level` in `format` (`logfmt` or `json`).
pub fn init(level: &str, format: &str) {
    // One of five fixed levels (clap checked it): a level filter, no directive parser (and no
    // regex engine in the build).
    let filter: LevelFilter = level.parse().unwrap_or(LevelFilter::INFO);
    let result = tracing_subscriber::registry()
        .with(layers(filter, format, std::io::stderr))
        .try_init();
    if let Err(e) = result {
        eprintln!("logging already initialised: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_only_when_they_must_be() {
        let mut s = String::new();
        push_pair(&mut s, "a", "calls,trunks");
        push_pair(&mut s, "b", "the PBX's answer");
        push_pair(&mut s, "c", "say \"hi\"\\n\nx");
        push_pair(&mut s, "d", "");
        assert_eq!(
            s,
            r#"a=calls,trunks b="the PBX's answer" c="say \"hi\"\\n\nx" d="""#
        );
    }

    #[test]
    fn origins_never_carry_userinfo_path_or_query() {
        assert_eq!(origin("https://10.0.0.5"), "https://10.0.0.5:443");
        assert_eq!(
            origin("http://pbx.example:8088/"),
            "http://pbx.example:8088"
        );
        assert_eq!(
            origin("https://u:p@pbx.example:8088/api?token=x"),
            "https://pbx.example:8088"
        );
        assert_eq!(origin("https://[::1]:8088"), "https://[::1]:8088");
    }

    #[test]
    fn times_and_durations_in_words() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_796_297_125), "2026-12-03T11:25:25Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(
            rfc3339_millis(1_796_297_125_042),
            "2026-12-03T11:25:25.042Z"
        );
        assert_eq!(duration_words(Duration::from_millis(250)), "250ms");
        assert_eq!(duration_words(Duration::from_secs(192)), "3m12s");
        assert_eq!(duration_words(Duration::from_secs(3605)), "1h5s");
        assert_eq!(duration_words(Duration::from_secs(600)), "10m");
        assert_eq!(duration_words(Duration::ZERO), "0s");
        assert_eq!(ago(100.0, 100.4), "just now");
        assert_eq!(ago(100.0, 280.0), "3m ago");
        assert_eq!(ago(0.0, 7500.0), "2h5m ago");
        assert_eq!(ago(0.0, 273_600.0), "3d4h ago");
        assert_eq!(
            List(&["calls", "internal_calls", "trunks"]).to_string(),
            "calls,internal_calls,trunks"
        );
    }
}
