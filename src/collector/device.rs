//! The PBX itself: `deviceinfo/query` → model, versions, uptime.

use super::families::Families;
use super::registry::{Collected, Run, Spec};
use crate::pbx::PbxError;
use crate::pbx::model::{Data, Device, Query};

/// The collector.
pub static SPEC: Spec = Spec {
    name: "device",
    on_by_default: true,
    required: false,
    queries: &[Query::Device],
    note: "",
    run: Run::One {
        query: Query::Device,
        read,
    },
};

/// The PBX's answer about itself (nothing to write when it said nothing of itself).
struct Own(Option<Device>);

impl Collected for Own {
    fn write(&self, m: &Families, target: &str) {
        if let Some(info) = &self.0 {
            write(m, info, target);
        }
    }
}

fn read(answer: Data) -> Result<Box<dyn Collected>, PbxError> {
    match answer {
        Data::Device(device) => Ok(Box::new(Own(device))),
        other => Err(super::registry::unexpected("device", &other)),
    }
}

/// Writes `yeastar_pbx_info` and, when its form is known, `yeastar_pbx_uptime_seconds`.
fn write(m: &Families, info: &Device, target: &str) {
    m.gauge_vec(
        "yeastar_pbx_info",
        "The PBX's model and versions; always 1.",
        &["model", "firmware_version", "hardware_version"],
    )
    // Each cut to 64 characters (as every label value is).
    .with_label_values(&[&info.model, &info.firmware_version, &info.hardware_version])
    .set(1.0);
    let uptime = info
        .uptime_seconds
        .map(|s| s as f64)
        .or_else(|| parse_uptime(&info.uptime));
    match uptime {
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

/// Parses the uptime forms the vendor's pages and captures show: `00:32:59`, `123:04:05`,
/// `3days 03:57:42`, `3 days, 04:05:06`, `1 day, 04:05:06`, `1day 04:05:06`, `3d 04:05:06`,
/// `3 days 04:05`, `2 days` — and the v1 table's `3:25:04 AM`, read as a 12-hour clock (`12:10:00 AM`
/// is 10 minutes, `1:00:00 PM` 13 hours). `None` for anything else.
pub fn parse_uptime(text: &str) -> Option<f64> {
    let text = text.trim().to_ascii_lowercase();
    let (text, pm) = match (text.strip_suffix("am"), text.strip_suffix("pm")) {
        (Some(t), _) => (t.trim_end(), Some(false)),
        (_, Some(t)) => (t.trim_end(), Some(true)),
        _ => (text.as_str(), None),
    };
    let (days, clock) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        None => (0u64, text),
        Some(i) => {
            let days: u64 = text[..i].trim().parse().ok()?;
            let unit_and_rest = &text[i..];
            let unit_end = unit_and_rest
                .find(|c: char| !c.is_ascii_alphabetic())
                .unwrap_or(unit_and_rest.len());
            let unit = &unit_and_rest[..unit_end];
            if !matches!(unit, "d" | "day" | "days") {
                return None;
            }
            let rest = unit_and_rest[unit_end..].trim_start_matches([',', ' ']);
            if rest.is_empty() && pm.is_none() {
                return Some((days * 86_400) as f64);
            }
            (days, rest)
        }
    };
    let nums: Option<Vec<u64>> = clock.split(':').map(|p| p.trim().parse().ok()).collect();
    let mut nums = nums?;
    if let Some(pm) = pm {
        // A 12-hour clock: 1..=12 hours, 12 AM is 0.
        let h = nums.first_mut().filter(|h| (1..=12).contains(*h))?;
        *h = *h % 12 + if pm { 12 } else { 0 };
    }
    let secs = match nums.as_slice() {
        [h, m, s] if *m < 60 && *s < 60 => h * 3600 + m * 60 + s,
        [h, m] if *m < 60 => h * 3600 + m * 60,
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

    /// Every form the vendor's pages and captures show (`../shared/docs/yeastar-api.md`), exactly.
    #[test]
    fn every_documented_form() {
        let cases: [(&str, Option<f64>); 24] = [
            ("03:25:04", Some(12_304.0)),
            ("3:25:04", Some(12_304.0)),
            ("3:25:04 AM", Some(12_304.0)),
            ("3:25:04 am", Some(12_304.0)),
            ("3:25:04AM", Some(12_304.0)),
            ("12:05:00 AM", Some(300.0)),
            ("1:00:00 PM", Some(46_800.0)),
            ("12:00:00 PM", Some(43_200.0)),
            ("13:00:00 PM", None),
            ("0:00:01 AM", None),
            ("3days 03:57:42", Some(273_462.0)),
            ("3Days 03:57:42", Some(273_462.0)),
            ("3days03:57:42", Some(273_462.0)),
            ("3 days 03:57:42", Some(273_462.0)),
            ("3 days, 03:57:42", Some(273_462.0)),
            ("1day 00:00:01", Some(86_401.0)),
            ("1 day 00:00:01", Some(86_401.0)),
            ("1 day, 00:00:01", Some(86_401.0)),
            ("1 day", Some(86_400.0)),
            ("2 days", Some(172_800.0)),
            ("1d", Some(86_400.0)),
            (" 00:32:59 ", Some(1979.0)),
            ("", None),
            ("3 days, ", Some(259_200.0)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_uptime(text), want, "{text:?}");
        }
    }
}
