//! A scrape's metric families, built directly as input for the prometheus crate's text encoder.
//!
//! Every label value is cut to [`MAX_LABEL_CHARS`] characters here, whatever it comes from: the
//! PBX names trunks, queues and itself (`devicename`, versions) as it likes, and a 60,000-character
//! trunk name must not become a 60,000-character series. The collectors cut such text where it
//! becomes a key too ([`label_text`]), so that names alike in their first 64 characters count
//! together.

use std::borrow::Cow;
use std::cell::RefCell;

use prometheus::proto::{
    Bucket, Counter as ProtoCounter, Gauge as ProtoGauge, Histogram as ProtoHistogram, LabelPair,
    Metric, MetricFamily, MetricType,
};
use prometheus::{Encoder, TextEncoder};

/// The longest label value written, in characters (PBX-supplied text is cut to it).
pub const MAX_LABEL_CHARS: usize = 64;

/// `text` cut to [`MAX_LABEL_CHARS`] characters, on a character boundary, without a mark: the
/// cut value is the name's first 64 characters.
pub fn label_text(text: &str) -> &str {
    if text.len() <= MAX_LABEL_CHARS {
        return text;
    }
    match text.char_indices().nth(MAX_LABEL_CHARS) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

/// [`label_text`] of an owned or borrowed `text`, owned (no copy when nothing is cut and it is
/// owned already).
pub fn label_owned(text: Cow<'_, str>) -> String {
    let cut = label_text(&text).len();
    if cut == text.len() {
        text.into_owned()
    } else {
        text[..cut].to_string()
    }
}

/// One scrape's metric families, built directly as the text encoder's input: a scrape needs no
/// registry (nothing registers, locks or hashes), and this is the exporter's hot path when it
/// watches hundreds of PBXes.
#[derive(Default)]
pub struct Families {
    families: RefCell<Vec<MetricFamily>>,
}

/// A gauge family of [`Families`], by position.
pub struct FamilyRef<'a> {
    families: &'a RefCell<Vec<MetricFamily>>,
    index: usize,
    labels: &'static [&'static str],
}

/// One series about to get its value.
pub struct Sample<'a, 'f> {
    family: &'f FamilyRef<'a>,
    values: Vec<LabelPair>,
}

impl Families {
    pub fn gauge(&self, name: &str, help: &str) -> GaugeSample<'_> {
        GaugeSample(self.gauge_vec(name, help, &[]))
    }

    pub fn gauge_vec(
        &self,
        name: &str,
        help: &str,
        labels: &'static [&'static str],
    ) -> FamilyRef<'_> {
        let mut f = MetricFamily::default();
        f.set_name(name.to_string());
        f.set_help(help.to_string());
        f.set_field_type(MetricType::GAUGE);
        let mut families = self.families.borrow_mut();
        families.push(f);
        FamilyRef {
            families: &self.families,
            index: families.len() - 1,
            labels,
        }
    }

    /// A counter family with labels (totals the target keeps across scrapes).
    pub fn counter_vec(
        &self,
        name: &str,
        help: &str,
        labels: &'static [&'static str],
    ) -> FamilyRef<'_> {
        self.typed_vec(name, help, labels, MetricType::COUNTER)
    }

    /// A histogram family with labels (distributions the target keeps across scrapes).
    pub fn histogram_vec(
        &self,
        name: &str,
        help: &str,
        labels: &'static [&'static str],
    ) -> FamilyRef<'_> {
        self.typed_vec(name, help, labels, MetricType::HISTOGRAM)
    }

    /// A family of `kind` with labels.
    fn typed_vec(
        &self,
        name: &str,
        help: &str,
        labels: &'static [&'static str],
        kind: MetricType,
    ) -> FamilyRef<'_> {
        let r = self.gauge_vec(name, help, labels);
        self.families.borrow_mut()[r.index].set_field_type(kind);
        r
    }

    /// A counter without labels, set to `value` (a total the target keeps across scrapes).
    pub fn counter(&self, name: &str, help: &str, value: f64) {
        let mut f = MetricFamily::default();
        f.set_name(name.to_string());
        f.set_help(help.to_string());
        f.set_field_type(MetricType::COUNTER);
        let mut c = ProtoCounter::default();
        c.set_value(value);
        let mut m = Metric::default();
        m.set_counter(c);
        f.mut_metric().push(m);
        self.families.borrow_mut().push(f);
    }

    pub fn encode(self) -> String {
        let mut families = self.families.into_inner();
        // The order Registry::gather gives: families by name, series by label values; a family
        // without series is left out; a series set twice keeps its last value.
        families.retain(|f| !f.get_metric().is_empty());
        families.sort_by(|a, b| a.name().cmp(b.name()));
        for f in &mut families {
            let mut metrics = f.take_metric();
            metrics.reverse();
            metrics.sort_by(|a, b| {
                let (a, b) = (a.get_label(), b.get_label());
                a.iter().map(|l| l.value()).cmp(b.iter().map(|l| l.value()))
            });
            metrics.dedup_by(|later, earlier| {
                later
                    .get_label()
                    .iter()
                    .map(|l| l.value())
                    .eq(earlier.get_label().iter().map(|l| l.value()))
            });
            f.set_metric(metrics);
        }
        let mut out = Vec::with_capacity(8 * 1024);
        // Writing well-formed families into a Vec cannot fail.
        let _ = TextEncoder::new().encode(&families, &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

impl<'a> FamilyRef<'a> {
    pub fn with_label_values<'f>(&'f self, values: &[&str]) -> Sample<'a, 'f> {
        debug_assert_eq!(values.len(), self.labels.len());
        let mut pairs: Vec<LabelPair> = self
            .labels
            .iter()
            .zip(values)
            .map(|(name, value)| {
                let mut p = LabelPair::default();
                p.set_name(name.to_string());
                p.set_value(label_text(value).to_string());
                p
            })
            .collect();
        // The text format lists labels by name, as the registry would.
        pairs.sort_by(|a, b| a.name().cmp(b.name()));
        Sample {
            family: self,
            values: pairs,
        }
    }
}

impl Sample<'_, '_> {
    /// Sets the series' value (a gauge's, or a counter's total).
    pub fn set(self, value: f64) {
        let mut families = self.family.families.borrow_mut();
        let family = &mut families[self.family.index];
        let mut m = Metric::from_label(self.values);
        if family.get_field_type() == MetricType::COUNTER {
            let mut c = ProtoCounter::default();
            c.set_value(value);
            m.set_counter(c);
        } else {
            let mut g = ProtoGauge::default();
            g.set_value(value);
            m.set_gauge(g);
        }
        family.mut_metric().push(m);
    }
}

impl Sample<'_, '_> {
    /// Sets the series of a histogram family: cumulative counts per upper bound (`+Inf` is
    /// added), the observations' count and sum.
    pub fn set_histogram(self, buckets: &[(f64, u64)], count: u64, sum: f64) {
        let mut families = self.family.families.borrow_mut();
        let family = &mut families[self.family.index];
        debug_assert_eq!(family.get_field_type(), MetricType::HISTOGRAM);
        let mut h = ProtoHistogram::default();
        h.set_sample_count(count);
        h.set_sample_sum(sum);
        h.set_bucket(
            buckets
                .iter()
                .map(|&(upper, cumulative)| {
                    let mut b = Bucket::default();
                    b.set_upper_bound(upper);
                    b.set_cumulative_count(cumulative);
                    b
                })
                .collect(),
        );
        let mut m = Metric::from_label(self.values);
        m.set_histogram(h);
        family.mut_metric().push(m);
    }
}

/// A gauge without labels.
pub struct GaugeSample<'a>(FamilyRef<'a>);

impl GaugeSample<'_> {
    pub fn set(self, value: f64) {
        self.0.with_label_values(&[]).set(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_cut_to_64_characters_on_a_character_boundary() {
        assert_eq!(label_text("sip-1"), "sip-1");
        let ascii = "t".repeat(60_000);
        assert_eq!(label_text(&ascii), "t".repeat(64));
        // 4-byte characters: 64 of them, 256 bytes, never half a character.
        let wide = "😀".repeat(100);
        assert_eq!(label_text(&wide).chars().count(), 64);
        assert_eq!(label_text(&wide).len(), 256);
        assert_eq!(label_owned(Cow::Owned(wide.clone())), "😀".repeat(64));
        assert_eq!(label_owned(Cow::Borrowed("q")), "q");
        let f = Families::default();
        f.gauge_vec("x", "x", &["trunk"])
            .with_label_values(&[&ascii])
            .set(1.0);
        let text = f.encode();
        assert!(
            text.contains(&format!("x{{trunk=\"{}\"}} 1\n", "t".repeat(64))),
            "{text}"
        );
        assert!(text.len() < 200, "{}", text.len());
    }
}
