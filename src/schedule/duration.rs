//! Time spans the way systemd writes them, and rsync bandwidth limits.

use std::ops::Range;

use super::ScheduleError;

const UNITS_HELP: &str = "units: s/sec/second(s), m/min/minute(s), h/hr/hour(s), d/day(s), \
     w/week(s); e.g. `90s`, `5min`, `1h 30m`, `1.5h`, `4d`";

/// Seconds per unit. Only units that are whole seconds and unambiguous: systemd also knows `ms`,
/// `us`, `M` (month) and `y` (year), but months and years of 30.44 and 365.25 days surprise
/// people in a backup schedule.
fn unit_seconds(unit: &str) -> Option<u64> {
    Some(match unit {
        "s" | "sec" | "second" | "seconds" => 1,
        "m" | "min" | "minute" | "minutes" => 60,
        "h" | "hr" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86_400,
        "w" | "week" | "weeks" => 604_800,
        _ => return None,
    })
}

/// The largest span that systemd reads back from [`format_duration`]: systemd counts
/// microseconds in 64 bits and refuses a component whose microseconds reach 2^64 / unit, which
/// for weeks is at 30 500 568 (about 584 000 years).
const MAX_SECONDS: u64 = 30_500_567 * 604_800;

/// systemd-style time span: "300" (seconds), "5m", "5min", "12h", "4d", "2w", "1h 30m", "90s",
/// "1.5h". Units: s/sec/second(s), m/min/minute(s), h/hr/hour(s), d/day(s), w/week(s). Returns
/// whole seconds. Zero is an error unless `allow_zero`.
pub fn parse_duration(s: &str, allow_zero: bool) -> Result<u64, ScheduleError> {
    let b = s.as_bytes();
    let mut i = skip_ws(b, 0);
    if i == b.len() {
        return Err(ScheduleError::whole("empty time span", UNITS_HELP));
    }
    // Total in units of 10^-9 s, so that "1.5h" and "0.5m" stay exact.
    let mut total: u128 = 0;
    while i < b.len() {
        let (nanos, number, end) = span_part(s, i)?;
        total = total
            .checked_add(nanos)
            .ok_or_else(|| span_too_large(number.clone()))?;
        if total / 1_000_000_000 > u128::from(MAX_SECONDS) {
            return Err(span_too_large(number));
        }
        i = skip_ws(b, end);
    }
    if !total.is_multiple_of(1_000_000_000) {
        return Err(ScheduleError::whole(
            "time span is not a whole number of seconds",
            "use whole seconds, e.g. `1m 30s` or `90s`",
        ));
    }
    let secs = (total / 1_000_000_000) as u64;
    if secs == 0 && !allow_zero {
        return Err(ScheduleError::whole(
            "time span must not be zero",
            "give a positive span, e.g. `5min`",
        ));
    }
    Ok(secs)
}

/// One number and its unit (`1.5h`, `90`, `5 min`) starting at byte `begin`: its value in
/// units of 10^-9 s, where its number is, and the byte where its unit ends.
fn span_part(s: &str, begin: usize) -> Result<(u128, Range<usize>, usize), ScheduleError> {
    let b = s.as_bytes();
    if b[begin] == b'-' {
        return Err(ScheduleError::at(
            begin..begin + 1,
            "time span must not be negative",
            UNITS_HELP,
        ));
    }
    let (int_digits, frac_digits, dot, number_end) = scan_number(s, begin);
    if dot && frac_digits.is_empty() {
        return Err(ScheduleError::at(
            begin..number_end,
            "expected digits after the decimal point",
            UNITS_HELP,
        ));
    }
    if int_digits.is_empty() && frac_digits.is_empty() {
        let end = next_boundary(s, number_end);
        return Err(ScheduleError::at(
            number_end..end,
            "expected a number",
            UNITS_HELP,
        ));
    }
    let unit_start = skip_ws(b, number_end);
    let mut i = unit_start;
    while i < b.len() && !b[i].is_ascii_digit() && !is_ws(b[i]) && b[i] != b'.' && b[i] != b'-' {
        i += 1;
    }
    // Keep multi-byte characters whole, so that the range is valid UTF-8.
    while !s.is_char_boundary(i) {
        i += 1;
    }
    let unit = &s[unit_start..i];
    let per = if unit.is_empty() {
        1
    } else {
        unit_seconds(unit).ok_or_else(|| {
            ScheduleError::at(
                unit_start..i,
                format!("unknown time unit `{unit}`"),
                UNITS_HELP,
            )
        })?
    };
    let too_large = || span_too_large(begin..number_end);
    let (int, frac, frac_scale) = decimal(int_digits, frac_digits).ok_or_else(too_large)?;
    let nanos_per_unit = u128::from(per) * 1_000_000_000;
    let nanos = int
        .checked_mul(nanos_per_unit)
        .and_then(|v| v.checked_add(frac * nanos_per_unit / frac_scale))
        .ok_or_else(too_large)?;
    if !(frac * nanos_per_unit).is_multiple_of(frac_scale) {
        return Err(ScheduleError::at(
            begin..i,
            "time span is not a whole number of seconds",
            "use whole seconds, e.g. `1m 30s` or `90s`",
        ));
    }
    Ok((nanos, begin..number_end, i))
}

fn span_too_large(number: Range<usize>) -> ScheduleError {
    ScheduleError::at(
        number,
        "time span is too large",
        "systemd time spans must stay below about 584 000 years",
    )
}

fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r')
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_ws(b[i]) {
        i += 1;
    }
    i
}

/// The end of the character at `i` (or `i` at the end of the string).
fn next_boundary(s: &str, i: usize) -> usize {
    s[i..].chars().next().map_or(i, |c| i + c.len_utf8())
}

/// Format seconds back the systemd way ("1h 30min", "4d", "5min", "0"), for unit files. This is
/// what `systemd-analyze timespan` prints for spans below a month; longer spans stay in weeks
/// and days instead of systemd's 30.44-day months and 365.25-day years.
pub fn format_duration(secs: u64) -> String {
    if secs == 0 {
        return "0".to_string();
    }
    let mut parts = Vec::new();
    let mut rest = secs;
    for (unit, per) in [
        ("w", 604_800),
        ("d", 86_400),
        ("h", 3600),
        ("min", 60),
        ("s", 1),
    ] {
        if rest >= per {
            parts.push(format!("{}{unit}", rest / per));
            rest %= per;
        }
    }
    parts.join(" ")
}

const SIZE_HELP: &str = "write a rate in KiB per second, or with a suffix: `500`, `1.5M`, `10MiB`, \
     `800KB` (K/M/G/T/P; `KB`, `MB`... are powers of 1000)";

/// rsync `--bwlimit` value: an integer or decimal with an optional K/M/G/T/P suffix (also
/// `KiB`/`KB` style, as rsync accepts; no suffix means KiB). Returns the limit as rsync will use
/// it: whole KiB per second, as a plain number.
pub fn parse_size(s: &str) -> Result<String, ScheduleError> {
    let b = s.as_bytes();
    if s.trim().is_empty() {
        return Err(ScheduleError::whole("empty bandwidth limit", SIZE_HELP));
    }
    if b[0] == b'-' {
        return Err(ScheduleError::at(
            0..1,
            "bandwidth limit must not be negative",
            SIZE_HELP,
        ));
    }
    let (int_digits, frac_digits, _, i) = scan_number(s, 0);
    if int_digits.is_empty() && frac_digits.is_empty() {
        return Err(ScheduleError::at(
            0..next_boundary(s, i),
            "bandwidth limit must start with a number",
            SIZE_HELP,
        ));
    }
    let number_end = i;
    let unit = size_unit(s, number_end)?;
    let too_large = || {
        ScheduleError::at(
            0..number_end,
            "bandwidth limit is too large",
            "rsync limits are at most 2^63 bytes per second",
        )
    };
    let (int, frac, scale) = decimal(int_digits, frac_digits).ok_or_else(too_large)?;
    // rsync multiplies in floating point and truncates; exact arithmetic agrees except in the
    // last bit of absurdly precise inputs.
    let bytes = int
        .checked_mul(unit)
        .and_then(|v| v.checked_add(frac * unit / scale))
        .ok_or_else(too_large)?;
    if bytes > i64::MAX as u128 {
        return Err(too_large());
    }
    if bytes == 0 {
        return Err(ScheduleError::whole(
            "bandwidth limit of 0 means no limit to rsync",
            "leave bwlimit out for no limit",
        ));
    }
    // rsync rounds to whole KiB per second and refuses what rounds to nothing.
    let kib = (bytes + 512) / 1024;
    if kib == 0 {
        return Err(ScheduleError::whole(
            "bandwidth limit is too small (rsync needs at least 512 bytes per second)",
            SIZE_HELP,
        ));
    }
    Ok(kib.to_string())
}

/// The bytes per unit of the suffix that starts at `number_end`: a letter (K when none), then
/// optionally `b` (powers of 1000) or `ib` (powers of 1024).
fn size_unit(s: &str, number_end: usize) -> Result<u128, ScheduleError> {
    let mut i = number_end;
    let reps: u32 = match s.as_bytes().get(i).map(u8::to_ascii_lowercase) {
        None => 1,
        Some(c) => {
            i += 1;
            match c {
                b'b' => 0,
                b'k' => 1,
                b'm' => 2,
                b'g' => 3,
                b't' => 4,
                b'p' => 5,
                _ => {
                    return Err(ScheduleError::at(
                        number_end..next_boundary(s, number_end),
                        "unknown size suffix",
                        SIZE_HELP,
                    ));
                }
            }
        }
    };
    let rest = &s[i..];
    let mult: u128 = if rest.is_empty() {
        1024
    } else if rest.eq_ignore_ascii_case("b") {
        1000
    } else if rest.eq_ignore_ascii_case("ib") {
        1024
    } else {
        return Err(ScheduleError::at(
            number_end..s.len(),
            "unknown size suffix",
            SIZE_HELP,
        ));
    };
    Ok(mult.pow(reps))
}

/// The decimal number that starts at byte `i` of `s`: its integer digits, its fractional
/// digits, whether a `.` was written, and the byte where the number ends.
fn scan_number(s: &str, i: usize) -> (&str, &str, bool, usize) {
    let digits_from = |from: usize| {
        from + s.as_bytes()[from..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count()
    };
    let int_end = digits_from(i);
    if s.as_bytes().get(int_end) != Some(&b'.') {
        return (&s[i..int_end], "", false, int_end);
    }
    let frac_end = digits_from(int_end + 1);
    (&s[i..int_end], &s[int_end + 1..frac_end], true, frac_end)
}

/// A decimal number written as its integer and fractional digits: (integer part, fraction
/// numerator, fraction denominator), exactly. None when it is too long to hold: 25 digits a
/// side keep every later product well inside u128.
fn decimal(int_digits: &str, frac_digits: &str) -> Option<(u128, u128, u128)> {
    if int_digits.len() > 25 || frac_digits.len() > 25 {
        return None;
    }
    let parse = |d: &str| {
        if d.is_empty() {
            Some(0)
        } else {
            d.parse::<u128>().ok()
        }
    };
    Some((
        parse(int_digits)?,
        parse(frac_digits)?,
        10u128.pow(frac_digits.len() as u32),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok = |s: &str| parse_duration(s, false).unwrap();
        assert_eq!(ok("300"), 300);
        assert_eq!(ok("5m"), 300);
        assert_eq!(ok("5min"), 300);
        assert_eq!(ok("5 min"), 300);
        assert_eq!(ok("12h"), 43_200);
        assert_eq!(ok("4d"), 345_600);
        assert_eq!(ok("2w"), 1_209_600);
        assert_eq!(ok("1h 30m"), 5400);
        assert_eq!(ok("1h30m"), 5400);
        assert_eq!(ok("90s"), 90);
        assert_eq!(ok("1.5h"), 5400);
        assert_eq!(ok(".5h"), 1800);
        assert_eq!(ok("0.1m"), 6);
        assert_eq!(ok(" 2 hours 3 minutes 4 seconds "), 7384);
        assert_eq!(ok("1week 1day 1hr 1sec"), 694_801);
        assert_eq!(parse_duration("0", true).unwrap(), 0);
        assert_eq!(parse_duration("0s 0m", true).unwrap(), 0);
    }

    #[test]
    fn bad_durations() {
        let err = |s: &str| parse_duration(s, false).unwrap_err();
        assert_eq!(err("0").message, "time span must not be zero");
        assert_eq!(err("").message, "empty time span");
        assert_eq!(err("   ").message, "empty time span");
        assert_eq!(err("-5m").range, Some(0..1));
        let e = err("5 fortnights");
        assert_eq!(e.range, Some(2..12));
        assert!(e.help.contains("min"), "help lists the units: {}", e.help);
        assert!(err("5ms").message.contains("unknown time unit"));
        assert!(err("1y").message.contains("unknown time unit"));
        assert!(err("5M").message.contains("unknown time unit"));
        assert!(err("0.5s").message.contains("whole number"));
        assert!(err("5.h").message.contains("decimal point"));
        assert!(err("h").message.contains("expected a number"));
        assert!(
            err("99999999999999999999999w")
                .message
                .contains("too large")
        );
        assert!(err("30500568w").message.contains("too large"));
        assert_eq!(parse_duration("30500567w", false), Ok(MAX_SECONDS));
        assert!(err("infinity").message.contains("expected a number"));
        assert!(err("1e3").message.contains("unknown time unit"));
    }

    #[test]
    fn formats() {
        assert_eq!(format_duration(0), "0");
        assert_eq!(format_duration(1), "1s");
        assert_eq!(format_duration(90), "1min 30s");
        assert_eq!(format_duration(300), "5min");
        assert_eq!(format_duration(5400), "1h 30min");
        assert_eq!(format_duration(345_600), "4d");
        assert_eq!(format_duration(694_801), "1w 1d 1h 1s");
        for secs in [
            1,
            59,
            60,
            61,
            3599,
            3600,
            86_399,
            86_400,
            1_000_000,
            MAX_SECONDS,
        ] {
            assert_eq!(parse_duration(&format_duration(secs), false).unwrap(), secs);
        }
    }

    #[test]
    fn sizes() {
        let ok = |s: &str| parse_size(s).unwrap();
        assert_eq!(ok("500"), "500");
        assert_eq!(ok("1.5"), "2");
        assert_eq!(ok("1.5M"), "1536");
        assert_eq!(ok("10m"), "10240");
        assert_eq!(ok("10MiB"), "10240");
        assert_eq!(ok("10mib"), "10240");
        assert_eq!(ok("1MB"), "977");
        assert_eq!(ok("800KB"), "781");
        assert_eq!(ok("1G"), "1048576");
        assert_eq!(ok("512b"), "1");
        assert_eq!(ok("1024B"), "1");
        assert_eq!(ok(".5k"), "1");
        assert_eq!(ok("2T"), "2147483648");
    }

    #[test]
    fn bad_sizes() {
        let err = |s: &str| parse_size(s).unwrap_err();
        assert_eq!(err("0").help, "leave bwlimit out for no limit");
        assert_eq!(err("0.0K").help, "leave bwlimit out for no limit");
        assert!(err("-5").message.contains("negative"));
        assert!(err("").message.contains("empty"));
        assert!(err("fast").message.contains("number"));
        assert!(err("5X").message.contains("suffix"));
        assert!(err("5KX").message.contains("suffix"));
        assert!(err("5 K").message.contains("suffix"));
        assert!(err("100b").message.contains("too small"));
        assert!(err("9999999999P").message.contains("too large"));
    }
}
