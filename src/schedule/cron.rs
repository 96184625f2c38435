//! Cron expressions, translated into systemd `OnCalendar=` expressions.
//!
//! The meaning is the one of Vixie cron and cronie (what Debian runs): in particular, when both
//! day fields are restricted a day matches if EITHER matches, and a day field that begins with
//! `*` (even `*/2`) counts as unrestricted for that rule. systemd has no "or" inside one
//! expression, but it fires at the union of several `OnCalendar=` lines, so the "or" case
//! becomes two lines.

use std::ops::Range;

use super::ScheduleError;
use super::calendar::format_weekdays;

const FIELDS_HELP: &str = "a cron expression has 5 fields: minute (0-59), hour (0-23), \
     day-of-month (1-31), month (1-12 or jan-dec), day-of-week (0-7 or sun-sat, 0 and 7 are Sunday), \
     e.g. `15 2 * * mon-fri`";

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// The days each month can have (February: in leap years).
const MONTH_DAYS: [u32; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    /// The value of the first name (month names start at 1, weekday names at 0).
    names_from: u32,
}

const SPECS: [FieldSpec; 5] = [
    FieldSpec {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
        names_from: 0,
    },
    FieldSpec {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
        names_from: 0,
    },
    FieldSpec {
        name: "day-of-month",
        min: 1,
        max: 31,
        names: &[],
        names_from: 0,
    },
    FieldSpec {
        name: "month",
        min: 1,
        max: 12,
        names: &MONTHS,
        names_from: 1,
    },
    FieldSpec {
        name: "day-of-week",
        min: 0,
        max: 7,
        names: &WEEKDAYS,
        names_from: 0,
    },
];

/// One parsed field: the set of values (bit n = value n), and whether it began with `*`.
struct Field {
    bits: u64,
    star: bool,
}

/// Translate a 5-field cron expression (or @hourly/@daily/@midnight/@weekly/@monthly/@yearly/
/// @annually) into systemd OnCalendar= expressions that fire at exactly the same instants.
/// Usually one line; two when both day-of-month and day-of-week are restricted (POSIX OR;
/// systemd ORs several OnCalendar= lines). The lines are in systemd's normalized form.
pub fn cron_to_calendar(expr: &str) -> Result<Vec<String>, ScheduleError> {
    let words = split_words(expr);
    if words.is_empty() {
        return Err(ScheduleError::whole("empty cron expression", FIELDS_HELP));
    }
    if expr[words[0].clone()].starts_with('@') {
        let fields = macro_fields(expr, &words)?;
        let words = split_words(fields);
        return translate(fields, &words);
    }
    match words.len() {
        5 => translate(expr, &words),
        6 | 7 => Err(ScheduleError::at(
            words[5].start..words[words.len() - 1].end,
            format!("cron expression has {} fields, expected 5", words.len()),
            format!(
                "bkc takes classic 5-field cron, without seconds or years (Quartz style) and \
                 without a command; for sub-minute schedules use `every`; {FIELDS_HELP}"
            ),
        )),
        n => Err(ScheduleError::whole(
            format!(
                "cron expression has {n} field{}, expected 5",
                if n == 1 { "" } else { "s" }
            ),
            FIELDS_HELP,
        )),
    }
}

/// The byte ranges of the blank-separated words of `s`.
fn split_words(s: &str) -> Vec<Range<usize>> {
    let mut words = Vec::new();
    let mut start = None;
    for (i, c) in s.char_indices() {
        if c == ' ' || c == '\t' {
            if let Some(st) = start.take() {
                words.push(st..i);
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(st) = start {
        words.push(st..s.len());
    }
    words
}

const MACROS: [(&str, &str); 7] = [
    ("@hourly", "0 * * * *"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@weekly", "0 0 * * 0"),
    ("@monthly", "0 0 1 * *"),
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
];

/// The fields a cron `@` macro stands for.
fn macro_fields(expr: &str, words: &[Range<usize>]) -> Result<&'static str, ScheduleError> {
    let word = &expr[words[0].clone()];
    let Some((_, fields)) = MACROS.iter().find(|(name, _)| *name == word) else {
        if word.eq_ignore_ascii_case("@reboot") {
            return Err(ScheduleError::at(
                words[0].clone(),
                "@reboot is not a time",
                "to run after boot, use `every` (a monotonic timer) or a systemd unit ordered \
                 after the boot target",
            ));
        }
        let lower = word.to_ascii_lowercase();
        let help = if MACROS.iter().any(|(name, _)| *name == lower) {
            format!("cron macros are lower case: `{lower}`")
        } else {
            "cron macros are @hourly, @daily, @midnight, @weekly, @monthly, @yearly and \
             @annually; for a fixed interval use `every`"
                .to_string()
        };
        return Err(ScheduleError::at(
            words[0].clone(),
            format!("unknown cron macro `{word}`"),
            help,
        ));
    };
    if words.len() > 1 {
        return Err(ScheduleError::at(
            words[1].start..words[words.len() - 1].end,
            format!("unexpected text after {word}"),
            "a cron macro stands alone, e.g. `@daily`",
        ));
    }
    Ok(fields)
}

fn translate(expr: &str, words: &[Range<usize>]) -> Result<Vec<String>, ScheduleError> {
    let mut fields = Vec::with_capacity(5);
    for (spec, range) in SPECS.iter().zip(words) {
        fields.push(parse_field(expr, range.clone(), spec)?);
    }
    let [minute, hour, dom, month, dow] = <[Field; 5]>::try_from(fields).ok().expect("five fields");

    // Sunday is both 0 and 7.
    let mut dow_bits = dow.bits;
    if dow_bits & (1 << 7) != 0 {
        dow_bits = (dow_bits | 1) & !(1 << 7);
    }
    // systemd counts weekdays from Monday (bit 0) to Sunday (bit 6).
    let weekdays = (0..7)
        .filter(|d| dow_bits & (1 << d) != 0)
        .fold(0u8, |acc, d| acc | 1 << ((d + 6) % 7));
    let all_days = full(1, 31);
    let dom_full = dom.bits == all_days;
    let dow_full = weekdays == 0b111_1111;

    let time = format!(
        "{}:{}:00",
        compress(hour.bits, 0, 23),
        compress(minute.bits, 0, 59)
    );
    let months = compress(month.bits, 1, 12);
    let days = compress(dom.bits, 1, 31);
    // Can any chosen day exist in any chosen month?
    let possible = (1..=12)
        .filter(|m| month.bits & (1 << m) != 0)
        .any(|m| dom.bits & full(1, MONTH_DAYS[m - 1]) != 0);
    let weekday_prefix = if dow_full {
        String::new()
    } else {
        format!("{} ", format_weekdays(weekdays))
    };

    if dom.star || dow.star {
        // Both must match.
        if !possible {
            return Err(ScheduleError::at(
                words[2].start..words[3].end,
                "this cron expression never fires: none of these days exist in these months",
                "February has at most 29 days; April, June, September and November have 30",
            ));
        }
        return Ok(vec![format!("{weekday_prefix}*-{months}-{days} {time}")]);
    }
    // Both day fields restricted: either may match.
    if dom_full || dow_full {
        return Ok(vec![format!("*-{months}-* {time}")]);
    }
    let mut lines = vec![format!("{weekday_prefix}*-{months}-* {time}")];
    // A day-of-month that exists in none of the months adds nothing (and would be a line
    // that never fires).
    if possible {
        lines.push(format!("*-{months}-{days} {time}"));
    }
    Ok(lines)
}

fn full(min: u32, max: u32) -> u64 {
    (min..=max).fold(0, |acc, v| acc | 1 << v)
}

/// Parse one field: a `,`-separated list of `*`, `*/n`, `a`, `a-b`, `a-b/n` or `a/n`.
fn parse_field(expr: &str, range: Range<usize>, spec: &FieldSpec) -> Result<Field, ScheduleError> {
    let text = &expr[range.clone()];
    let mut bits = 0u64;
    let mut offset = range.start;
    for item in text.split(',') {
        let item_range = offset..offset + item.len();
        offset += item.len() + 1;
        if item.is_empty() {
            return Err(ScheduleError::at(
                // The comma before the empty element, or after it when it comes first.
                if item_range.start > range.start {
                    item_range.start - 1..item_range.start
                } else {
                    item_range.start..item_range.start + 1
                },
                format!("empty element in the {} list", spec.name),
                "separate values with single commas, e.g. `1,15`",
            ));
        }
        bits |= parse_item(expr, item_range, spec)?;
    }
    Ok(Field {
        bits,
        star: text.starts_with('*'),
    })
}

/// One list element: `*`, `*/n`, `a`, `a-b`, `a-b/n` or `a/n`, as the bits of its values.
fn parse_item(expr: &str, range: Range<usize>, spec: &FieldSpec) -> Result<u64, ScheduleError> {
    let (body, step) = split_step(expr, range.clone(), spec)?;
    if body.is_empty() {
        return Err(ScheduleError::at(
            range,
            format!("missing value before the step in the {} field", spec.name),
            "a step is written `*/15`, `0-30/5` or `5/10`",
        ));
    }
    let (low, high) = if body == "*" {
        (spec.min, spec.max)
    } else if body.starts_with('*') {
        return Err(ScheduleError::at(
            range.start..range.start + body.len(),
            format!("unexpected text after `*` in the {} field", spec.name),
            "write `*`, `*/n`, a value, or a range `a-b`",
        ));
    } else {
        parse_range(body, range.start, step.is_some(), spec)?
    };
    let step = step.unwrap_or(1) as usize;
    Ok((low..=high).step_by(step).fold(0u64, |acc, v| acc | 1 << v))
}

/// An element's text before its `/` and the step after it, if any.
fn split_step<'e>(
    expr: &'e str,
    range: Range<usize>,
    spec: &FieldSpec,
) -> Result<(&'e str, Option<u32>), ScheduleError> {
    let item = &expr[range.clone()];
    let base = range.start;
    let Some(slash) = item.find('/') else {
        return Ok((item, None));
    };
    let step_text = &item[slash + 1..];
    let step_range = base + slash + 1..range.end;
    if step_text.is_empty() || !step_text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ScheduleError::at(
            if step_text.is_empty() {
                base + slash..range.end
            } else {
                step_range
            },
            format!("step in the {} field must be a number", spec.name),
            "a step is written `*/15` or `0-30/5`",
        ));
    }
    let step: u32 = step_text.parse().unwrap_or(u32::MAX);
    if step == 0 {
        return Err(ScheduleError::at(
            step_range,
            format!("step 0 in the {} field", spec.name),
            "the step must be at least 1, e.g. `*/5`",
        ));
    }
    Ok((&item[..slash], Some(step)))
}

/// `a` or `a-b` at byte `base`, as its lowest and highest value; `a` alone with a step runs
/// to the field's end.
fn parse_range(
    body: &str,
    base: usize,
    stepped: bool,
    spec: &FieldSpec,
) -> Result<(u32, u32), ScheduleError> {
    let Some(dash) = body.find('-') else {
        let a = parse_value(body, base, spec)?;
        return Ok(if stepped { (a, spec.max) } else { (a, a) });
    };
    if dash == 0 || dash + 1 == body.len() {
        return Err(ScheduleError::at(
            base + dash..base + dash + 1,
            format!("range in the {} field lacks a bound", spec.name),
            format!(
                "a range is written `a-b` with values {}-{}; negative values do not exist",
                spec.min, spec.max
            ),
        ));
    }
    let (a_text, b_text) = (&body[..dash], &body[dash + 1..]);
    let a = parse_value(a_text, base, spec)?;
    let b = parse_value(b_text, base + dash + 1, spec)?;
    if a <= b {
        return Ok((a, b));
    }
    // cronie reads `5-0` in the day-of-week field as Friday to Sunday.
    if spec.name == "day-of-week" && b == 0 {
        return Ok((a, 7));
    }
    Err(ScheduleError::at(
        base..base + body.len(),
        format!("{} range {a_text}-{b_text} goes backwards", spec.name),
        format!(
            "ranges go from low to high ({}-{}); for a range that wraps \
             around, list two ranges, e.g. `{}-{},{}-{}`",
            spec.min, spec.max, a, spec.max, spec.min, b
        ),
    ))
}

/// A number or (in the month and day-of-week fields) a three-letter name.
fn parse_value(text: &str, start: usize, spec: &FieldSpec) -> Result<u32, ScheduleError> {
    let range = start..start + text.len();
    let bounds = format!("{}-{}", spec.min, spec.max);
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let value: u32 = text.parse().unwrap_or(u32::MAX);
        if value < spec.min || value > spec.max {
            return Err(ScheduleError::at(
                range,
                format!("{} {text} is out of range {bounds}", spec.name),
                format!("values in the {} field are {bounds}", spec.name),
            ));
        }
        return Ok(value);
    }
    let lower = text.to_ascii_lowercase();
    if let Some(i) = spec.names.iter().position(|n| *n == lower) {
        return Ok(spec.names_from + i as u32);
    }
    let help = if spec.names.is_empty() {
        if text
            .chars()
            .any(|c| matches!(c, 'L' | 'W' | '#' | '?' | 'l' | 'w'))
        {
            format!(
                "`L`, `W`, `#` and `?` are Quartz extensions that Debian's cron does not know; \
                 values in the {} field are {bounds}",
                spec.name
            )
        } else {
            format!("values in the {} field are numbers {bounds}", spec.name)
        }
    } else if text.contains(['#', '?', 'L']) {
        format!(
            "`L`, `W`, `#` and `?` are Quartz extensions that Debian's cron does not know; \
             use {bounds} or the names {}",
            spec.names.join(",")
        )
    } else if spec
        .names
        .iter()
        .any(|n| lower.len() > 3 && lower.starts_with(n))
    {
        format!(
            "cron knows only the three-letter names: {}",
            spec.names.join(",")
        )
    } else {
        format!(
            "values in the {} field are {bounds} or the names {}",
            spec.name,
            spec.names.join(",")
        )
    };
    Err(ScheduleError::at(
        range,
        format!("invalid {} `{text}`", spec.name),
        help,
    ))
}

/// A set of values in systemd syntax: `*` when complete; a repetition `a/n` or `a..b/n` for
/// evenly spaced sets of five or more; otherwise values and ranges `a..b`, two digits each.
fn compress(bits: u64, min: u32, max: u32) -> String {
    let values: Vec<u32> = (min..=max).filter(|v| bits & (1 << v) != 0).collect();
    if values.len() == (max - min + 1) as usize {
        return "*".to_string();
    }
    if values.len() >= 5 {
        let step = values[1] - values[0];
        if step >= 2 && values.windows(2).all(|w| w[1] - w[0] == step) {
            let (first, last) = (values[0], values[values.len() - 1]);
            return if last + step > max {
                format!("{first:02}/{step}")
            } else {
                format!("{first:02}..{last:02}/{step}")
            };
        }
    }
    let mut parts = Vec::new();
    let mut i = 0;
    while i < values.len() {
        let mut j = i;
        while j + 1 < values.len() && values[j + 1] == values[j] + 1 {
            j += 1;
        }
        match j - i {
            0 => parts.push(format!("{:02}", values[i])),
            1 => parts.push(format!("{:02},{:02}", values[i], values[j])),
            _ => parts.push(format!("{:02}..{:02}", values[i], values[j])),
        }
        i = j + 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(expr: &str) -> String {
        let lines = cron_to_calendar(expr).unwrap();
        assert_eq!(lines.len(), 1, "{expr}: {lines:?}");
        lines.into_iter().next().unwrap()
    }

    #[test]
    fn translations() {
        assert_eq!(one("0 3 * * *"), "*-*-* 03:00:00");
        assert_eq!(one("15 2 * * mon-fri"), "Mon..Fri *-*-* 02:15:00");
        assert_eq!(one("0 0 1,15 * *"), "*-*-01,15 00:00:00");
        assert_eq!(one("*/15 * * * *"), "*-*-* *:00,15,30,45:00");
        assert_eq!(one("*/5 * * * *"), "*-*-* *:00/5:00");
        assert_eq!(one("0-30/5 * * * *"), "*-*-* *:00..30/5:00");
        assert_eq!(one("0 0 * * 5-7"), "Fri..Sun *-*-* 00:00:00");
        assert_eq!(one("0 0 * * 5-0"), "Fri..Sun *-*-* 00:00:00");
        assert_eq!(one("0 0 * * 0,7"), "Sun *-*-* 00:00:00");
        assert_eq!(one("0 0 * * 1/2"), "Mon,Wed,Fri,Sun *-*-* 00:00:00");
        assert_eq!(one("0 0 */2 * 1"), "Mon *-*-01/2 00:00:00");
        assert_eq!(one("0 0 * jan-mar/2 *"), "*-01,03-* 00:00:00");
        assert_eq!(one("@weekly"), "Sun *-*-* 00:00:00");
        assert_eq!(one("@monthly"), "*-*-01 00:00:00");
        assert_eq!(one("@yearly"), "*-01-01 00:00:00");
        assert_eq!(one("0 0 1-31 * 1"), "*-*-* 00:00:00");
        assert_eq!(
            cron_to_calendar("0 0 1,15 * 1").unwrap(),
            ["Mon *-*-* 00:00:00", "*-*-01,15 00:00:00"]
        );
        assert_eq!(
            cron_to_calendar("0 0 30 2 1").unwrap(),
            ["Mon *-02-* 00:00:00"]
        );
    }

    #[test]
    fn errors() {
        let err = |s: &str| cron_to_calendar(s).unwrap_err();
        assert_eq!(err("60 * * * *").range, Some(0..2));
        assert!(err("5-1 * * * *").help.contains("low to high"));
        assert!(err("*/0 * * * *").message.contains("step 0"));
        assert!(err("* * * *").help.contains("5 fields"));
        assert!(err("0 * * * * *").message.contains("6 fields"));
        assert!(err("@reboot").help.contains("every"));
        assert!(err("@DAILY").help.contains("@daily"));
        assert!(err("0 0 30 2 *").message.contains("never"));
        assert!(err("0 0 L * *").help.contains("Quartz"));
        assert!(err("0 0 * * 1#2").help.contains("Quartz"));
        assert!(err("0 0 * * monday").help.contains("three-letter"));
        assert!(err("0 0 1,,2 * *").message.contains("empty"));
        assert!(err("0 0 * * 8").message.contains("out of range"));
        assert!(err("0 0 0 * *").message.contains("out of range"));
        assert!(err("0 0 * 13 *").message.contains("out of range"));
        assert!(err("").message.contains("empty"));
    }
}
