//! No input makes the schedule parsers panic: feed them random strings and mutations of valid
//! expressions, and check that whatever they accept behaves (normalizes to itself, can be
//! evaluated) and that every error points at a valid part of the input.

use crate::common;

use bkc::schedule::{
    Calendar, ScheduleError, cron_to_calendar, format_duration, parse_duration, parse_size,
};
use common::Rng;
use jiff::Timestamp;
use jiff::tz::TimeZone;

/// Pieces that schedule syntax is made of, plus a few that it is not.
const PIECES: &[&str] = &[
    "0",
    "1",
    "2",
    "5",
    "7",
    "9",
    "12",
    "23",
    "24",
    "29",
    "31",
    "59",
    "60",
    "99",
    "2026",
    "2199",
    "4294967296",
    "*",
    "-",
    "..",
    ".",
    ",",
    "/",
    "~",
    ":",
    " ",
    "  ",
    "\t",
    "@",
    "#",
    "?",
    "L",
    "W",
    "Mon",
    "fri",
    "Sunday",
    "jan",
    "DEC",
    "UTC",
    " UTC",
    " Europe/Berlin",
    "Europe/",
    "daily",
    "weekly",
    "@daily",
    "@reboot",
    "h",
    "min",
    "s",
    "w",
    "d",
    "ms",
    "K",
    "M",
    "iB",
    "b",
    "é",
    "€",
    "日",
    "\u{0}",
    "+",
    "e",
    "inf",
];

const SEEDS: &[&str] = &[
    "Mon..Fri *-*-* 02:15:00",
    "*-02~03 12:00:30.5",
    "2026..2028-01,07-01/2 00/4:00",
    "*-*-* *:00/30 Europe/Berlin",
    "@1767312000",
    "0 3 * * mon-fri",
    "*/15 0-6 1,15 jan-jun/2 0-7",
    "1h 30min",
    "1.5M",
];

fn random_input(rng: &mut Rng) -> String {
    if rng.below(2) == 0 {
        let n = rng.below(12);
        (0..n).map(|_| PIECES[rng.below(PIECES.len())]).collect()
    } else {
        // A valid expression with a few pieces replaced, inserted or removed.
        let mut s: Vec<char> = SEEDS[rng.below(SEEDS.len())].chars().collect();
        for _ in 0..=rng.below(3) {
            let at = rng.below(s.len() + 1);
            let piece: Vec<char> = PIECES[rng.below(PIECES.len())].chars().collect();
            let end = (at + 1).min(s.len());
            match rng.below(3) {
                0 => drop(s.splice(at..at, piece)),
                1 => drop(s.splice(at..end, piece)),
                _ => drop(s.drain(at..end)),
            }
        }
        s.into_iter().collect()
    }
}

fn check_error(input: &str, err: &ScheduleError) {
    assert!(!err.message.is_empty(), "{input:?}: empty message");
    assert!(!err.help.is_empty(), "{input:?}: empty help");
    if let Some(r) = &err.range {
        assert!(
            input.get(r.clone()).is_some(),
            "{input:?}: range {r:?} is not a part of the input ({err:?})"
        );
    }
}

fn check(input: &str) {
    let bases: [Timestamp; 2] = [
        "2026-01-01T00:00:00Z".parse().unwrap(),
        "2026-10-25T00:59:59.5Z".parse().unwrap(),
    ];
    let berlin = TimeZone::get("Europe/Berlin").unwrap_or(TimeZone::UTC);
    match Calendar::parse(input) {
        Ok(cal) => {
            let normalized = cal.normalized();
            let again = Calendar::parse(&normalized)
                .unwrap_or_else(|e| panic!("{input:?} -> {normalized:?}: {e:?}"));
            assert_eq!(again.normalized(), normalized, "{input:?}");
            assert!(!cal.describe().is_empty());
            for base in bases {
                for tz in [&TimeZone::UTC, &berlin] {
                    if let Some(next) = cal.next_after(base, tz) {
                        assert!(next > base, "{input:?}: {next} is not after {base}");
                    }
                }
            }
        }
        Err(e) => check_error(input, &e),
    }
    match cron_to_calendar(input) {
        Ok(lines) => {
            for line in lines {
                let cal = Calendar::parse(&line).unwrap_or_else(|e| panic!("{input:?}: {e:?}"));
                assert_eq!(cal.normalized(), line);
            }
        }
        Err(e) => check_error(input, &e),
    }
    match parse_duration(input, true) {
        Ok(secs) => assert_eq!(parse_duration(&format_duration(secs), true), Ok(secs)),
        Err(e) => check_error(input, &e),
    }
    match parse_size(input) {
        Ok(kib) => assert!(
            kib.parse::<u64>().is_ok_and(|k| k > 0),
            "{input:?} -> {kib}"
        ),
        Err(e) => check_error(input, &e),
    }
}

#[test]
fn junk_never_panics() {
    let mut rng = Rng(0x0005_EED0_FB4C);
    for _ in 0..20_000 {
        let input = random_input(&mut rng);
        check(&input);
    }
}

#[test]
fn long_and_odd_inputs() {
    for input in [
        "1,".repeat(300),
        "*-*-* ".to_string() + &"0,".repeat(240) + "0:00",
        "9".repeat(100),
        "@".repeat(50),
        "Mon,".repeat(100),
        "\u{feff}daily".to_string(),
        "daily\n".to_string(),
        "* * * * * * * *".to_string(),
        "1".repeat(40) + "w",
        "0.".to_string() + &"0".repeat(60) + "1s",
    ] {
        check(&input);
    }
}
