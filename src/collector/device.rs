//! The PBX itself: `deviceinfo/query` → model, versions, uptime.

use futures_util::future::BoxFuture;

use super::families::Families;
use super::registry::{Collected, Run, Spec};
use crate::pbx::types::{DeviceInfo, DeviceInfoAnswer};
use crate::pbx::{PbxError, Session, decode_answer};

/// The collector.
pub static SPEC: Spec = Spec {
    name: "device",
    on_by_default: true,
    help: "deviceinfo/query",
    endpoints: &["deviceinfo/query"],
    run: Run::Own {
        fetch,
        parse: Some(parse),
    },
};

/// The PBX's answer about itself (nothing to write when it had no `deviceinfo`).
struct Device(Option<DeviceInfo>);

impl Collected for Device {
    fn write(&self, m: &Families, target: &str) {
        if let Some(info) = &self.0 {
            write(m, info, target);
        }
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

fn fetch<'a>(s: &'a Session<'a>) -> BoxFuture<'a, Result<Box<dyn Collected>, PbxError>> {
    Box::pin(async move {
        let answer: DeviceInfoAnswer = s
            .call("deviceinfo/query", &serde_json::json!({}))
            .await?;
        Ok(Box::new(Device(answer.deviceinfo)) as Box<dyn Collected>)
    })
}

fn parse(bytes: &[u8]) -> Result<Box<dyn Collected>, PbxError> {
    let answer: DeviceInfoAnswer = decode_answer("deviceinfo/query", bytes)?;
    Ok(Box::new(Device(answer.deviceinfo)))
}

/// Writes `yeastar_pbx_info` and, when its form is known, `yeastar_pbx_uptime_seconds`.
fn write(m: &Families, info: &DeviceInfo, target: &str) {
    m.gauge_vec(
        "yeastar_pbx_info",
        "The PBX's model and versions; always 1.",
        &["model", "firmware_version", "hardware_version"],
    )
    // Each cut to 64 characters (as every label value is).
    .with_label_values(&[&info.devicename, &info.firmwarever, &info.hardwarever])
    .set(1.0);
    match parse_uptime(&info.uptime) {
        Some(secs) => m
            .gauge("yeastar_pbx_uptime_seconds", "PBX uptime.")
            .set(secs),
        None => tracing::debug!(
            target_name = %target,
            uptime = %info.uptime,
            "unknown uptime form; yeastar_pbx_uptime_seconds left out"
        ),
    }
}

/// Parses the uptime forms seen in the wild: `00:32:59`, `123:04:05`, `3 days, 04:05:06`,
/// `1 day, 04:05:06`, `3d 04:05:06`, `3 days 04:05`. `None` for anything else.
pub fn parse_uptime(text: &str) -> Option<f64> {
    let text = text.trim();
    let (days, clock) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        None => (0u64, text),
        Some(i) => {
            let days: u64 = text[..i].trim().parse().ok()?;
            let unit_and_rest = &text[i..];
            let unit_end = unit_and_rest
                .find(|c: char| !c.is_ascii_alphabetic())
                .unwrap_or(unit_and_rest.len());
            let unit = &unit_and_rest[..unit_end];
            if !matches!(unit.to_ascii_lowercase().as_str(), "d" | "day" | "days") {
                return None;
            }
            let rest = unit_and_rest[unit_end..].trim_start_matches([',', ' ']);
            (days, rest)
        }
    };
    let parts: Vec<&str> = clock.split(':').collect();
    let nums: Option<Vec<u64>> = parts.iter().map(|p| p.trim().parse().ok()).collect();
    let nums = nums?;
    let secs = match nums.as_slice() {
        [h, m, s] if *m < 60 && *s < 60 => h * 3600 + m * 60 + s,
        [h, m] if *m < 60 => h * 3600 + m * 60,
        [] => 0,
        _ => return None,
    };
    Some((days * 86_400 + secs) as f64)
}

#[cfg(test)]
mod tests {
    use super::parse_uptime;

    #[test]
    fn forms() {
        assert_eq!(parse_uptime("00:32:59"), Some(1979.0));
        assert_eq!(parse_uptime("3 days, 04:05:06"), Some(273_906.0));
        assert_eq!(parse_uptime("3d 04:05:06"), Some(273_906.0));
        assert_eq!(parse_uptime("1 day, 00:00:01"), Some(86_401.0));
        assert_eq!(parse_uptime("49:00:00"), Some(176_400.0));
        assert_eq!(parse_uptime("up 3 weeks"), None);
        assert_eq!(parse_uptime("3 weeks, 00:00:00"), None);
        assert_eq!(parse_uptime("00:61:00"), None);
    }
}
