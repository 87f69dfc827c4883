//! Durations as people type them on the command line (`500ms`, `2s`, `15m`, `1m30s`, `1.5s`),
//! the same forms ghz and Go accept, and short human renderings for reports.

use std::time::Duration;

const NANOS_PER_UNIT: [(&str, u128); 7] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Parses a duration written as one or more `<number><unit>` parts (`ns`, `us`/`µs`, `ms`,
/// `s`, `m`, `h`), such as `30s`, `500ms`, `1m30s` or `1.5s`. A bare `0` is zero.
pub fn parse_duration(input: &str) -> Result<Duration, String> {
    let text = input.trim();
    if text.is_empty() {
        return Err("empty duration: write it like 500ms, 30s or 15m".to_owned());
    }
    if text == "0" {
        return Ok(Duration::ZERO);
    }

    let mut rest = text;
    let mut total_nanos: u128 = 0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_len];
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];

        if number.is_empty() {
            return Err(format!(
                "invalid duration {input:?}: expected a number before {unit:?}"
            ));
        }
        if unit.is_empty() {
            return Err(format!(
                "invalid duration {input:?}: {number} has no unit (write {number}s, {number}ms, …)"
            ));
        }
        let Some(&(_, unit_nanos)) = NANOS_PER_UNIT.iter().find(|(name, _)| *name == unit) else {
            return Err(format!(
                "invalid duration {input:?}: unknown unit {unit:?} (use ns, us, ms, s, m or h)"
            ));
        };
        let part = scaled_nanos(number, unit_nanos)
            .ok_or_else(|| format!("invalid duration {input:?}: {number:?} is not a number"))?;
        total_nanos = total_nanos
            .checked_add(part)
            .ok_or_else(|| format!("duration {input:?} is too long"))?;
    }

    let secs = u64::try_from(total_nanos / 1_000_000_000)
        .map_err(|_| format!("duration {input:?} is too long"))?;
    // The remainder is below one second, so it fits in u32.
    let subsec = (total_nanos % 1_000_000_000) as u32;
    Ok(Duration::new(secs, subsec))
}

/// `number` (digits with at most one `.`) times `unit_nanos`, in whole nanoseconds.
fn scaled_nanos(number: &str, unit_nanos: u128) -> Option<u128> {
    let (whole, fraction) = match number.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (number, ""),
    };
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return None;
    }
    let whole_value: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut nanos = whole_value.checked_mul(unit_nanos)?;
    // Digits past the 18th cannot change a nanosecond count of any unit up to an hour.
    let fraction = &fraction[..fraction.len().min(18)];
    if !fraction.is_empty() {
        let numerator: u128 = fraction.parse().ok()?;
        let denominator = 10u128.pow(fraction.len() as u32);
        nanos = nanos.checked_add(numerator.checked_mul(unit_nanos)? / denominator)?;
    }
    Some(nanos)
}

/// A short form for options and tags: `30s`, `1m30s`, `500ms`, `0s`.
pub fn format_duration_short(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    if !nanos.is_multiple_of(1_000_000_000) {
        if nanos.is_multiple_of(1_000_000) {
            return format!("{}ms", nanos / 1_000_000);
        }
        if nanos.is_multiple_of(1_000) {
            return format!("{}us", nanos / 1_000);
        }
        return format!("{nanos}ns");
    }
    let mut secs = duration.as_secs();
    let mut out = String::new();
    for (unit, size) in [("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

/// A latency for people: `850 µs`, `12.34 ms`, `1.20 s`.
pub fn format_latency(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    if nanos < 1_000 {
        format!("{nanos} ns")
    } else if nanos < 1_000_000 {
        format!("{:.0} µs", nanos as f64 / 1e3)
    } else if nanos < 1_000_000_000 {
        format!("{:.2} ms", nanos as f64 / 1e6)
    } else {
        format!("{:.2} s", nanos as f64 / 1e9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_common_forms() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("250µs"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse_duration(" 2s "), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn parses_compound_and_fractional_forms() {
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h2m3s"), Ok(Duration::from_secs(3723)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration(".5s"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2.25ms"), Ok(Duration::from_micros(2250)));
        assert_eq!(parse_duration("1s500ms"), Ok(Duration::from_millis(1500)));
    }

    #[test]
    fn rejects_bad_input_with_a_reason() {
        for bad in [
            "", "  ", "5", "10 s", "s", "5x", "-5s", "1..5s", "1.2.3s", "ms5", ".",
        ] {
            let result = parse_duration(bad);
            assert!(
                result.is_err(),
                "{bad:?} should be rejected, got {result:?}"
            );
        }
        let message = parse_duration("5").unwrap_err();
        assert!(message.contains("no unit"), "{message}");
        let message = parse_duration("5d").unwrap_err();
        assert!(message.contains("unknown unit"), "{message}");
    }

    #[test]
    fn rejects_durations_that_overflow() {
        assert!(parse_duration("99999999999999999999999999999999999999h").is_err());
        assert!(parse_duration("9999999999999999999999h").is_err());
    }

    #[test]
    fn short_form_round_trips() {
        for text in ["30s", "1m30s", "2h", "1h1s", "500ms", "250us", "7ns", "0s"] {
            let duration = parse_duration(text).unwrap();
            assert_eq!(format_duration_short(duration), text);
        }
    }

    #[test]
    fn latencies_use_a_readable_unit() {
        assert_eq!(format_latency(Duration::from_nanos(800)), "800 ns");
        assert_eq!(format_latency(Duration::from_micros(850)), "850 µs");
        assert_eq!(format_latency(Duration::from_micros(12_340)), "12.34 ms");
        assert_eq!(format_latency(Duration::from_millis(1200)), "1.20 s");
    }
}
