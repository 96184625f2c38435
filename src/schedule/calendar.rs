//! systemd calendar expressions (`OnCalendar=`), as systemd 252 reads and evaluates them.
//!
//! The point of this module is to predict systemd, not to have our own opinion about calendar
//! syntax: the parser follows `calendar_spec_from_string()` step by step (including its odd
//! corners, such as two-digit years or a trailing comma after weekdays), normalization and
//! validation follow `calendar_spec_normalize()`/`calendar_spec_valid()`, and [`Calendar::next_after`]
//! is a port of `find_next()` including the way glibc's `mktime()` resolves daylight saving
//! time gaps and folds. The tests compare all of this with `systemd-analyze calendar`.

use std::fmt::Write as _;
use std::ops::Range;

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, TimeZone};

use super::ScheduleError;

const MIN_YEAR: i64 = 1970;
const MAX_YEAR: i64 = 2199;
const USEC_PER_SEC: i64 = 1_000_000;
const INT_MAX: i64 = i32::MAX as i64;
/// systemd refuses chains with more components than this (CALENDARSPEC_COMPONENTS_MAX + 1).
const COMPONENTS_MAX: usize = 241;
/// systemd's safety valve in `find_next()`; beyond it, the next elapse is an error.
const MAX_CALENDAR_ITERATIONS: usize = 1000;
/// The largest timestamp systemd formats (9999-12-30 23:59:59.999999 UTC).
const USEC_TIMESTAMP_FORMATTABLE_MAX: i64 = 253_402_214_399_999_999;
const ALL_WEEKDAYS: u8 = 0b111_1111;
const WEEKDAY_NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const ZONEINFO: &str = "/usr/share/zoneinfo";

const SYNTAX_HELP: &str = "write [WEEKDAYS] [YEAR-]MONTH-DAY [HH:MM[:SS]] [TIMEZONE], \
     e.g. `Mon..Fri *-*-* 02:15` or `*-*-01 03:00` (see systemd.time(7))";

/// One element of a chain: `start`, `start..stop`, `start/repeat` or `start..stop/repeat`.
/// `stop` is -1 when there is none; in the seconds chain all values are in microseconds.
#[derive(Debug, Clone)]
struct Component {
    start: i64,
    stop: i64,
    repeat: i64,
    /// Where the component was written, for error messages.
    span: Range<usize>,
}

impl Component {
    fn key(&self) -> (i64, i64, i64) {
        (self.start, self.stop, self.repeat)
    }
}

/// A list of components; `None` stands for `*`.
type Chain = Option<Vec<Component>>;

#[derive(Debug, Clone)]
enum Zone {
    /// No zone named: the caller's default zone (systemd: the local zone).
    Default,
    Utc,
    Named {
        name: String,
        tz: TimeZone,
    },
}

/// A parsed systemd calendar expression (`OnCalendar=` syntax as systemd 252 accepts it, see
/// systemd.time(7)).
#[derive(Debug, Clone)]
pub struct Calendar {
    /// Bit 0 = Monday .. bit 6 = Sunday; None = every day.
    weekdays: Option<u8>,
    year: Chain,
    month: Chain,
    day: Chain,
    hour: Chain,
    minute: Chain,
    /// Seconds, in microseconds.
    usec: Chain,
    end_of_month: bool,
    zone: Zone,
}

impl PartialEq for Calendar {
    /// Two calendars are equal when systemd would print the same normalized form.
    fn eq(&self, other: &Calendar) -> bool {
        self.normalized() == other.normalized()
    }
}

impl Eq for Calendar {}

impl Calendar {
    /// Parse an `OnCalendar=` expression. Accepts exactly what systemd 252 accepts, except that a
    /// trailing abbreviation of the host's local zone (e.g. `CEST`) is only understood when it is
    /// also an IANA zone name, since the compiling host is not the one that runs the timer.
    pub fn parse(expr: &str) -> Result<Calendar, ScheduleError> {
        let mut cal = Calendar {
            weekdays: None,
            year: None,
            month: None,
            day: None,
            hour: None,
            minute: None,
            usec: None,
            end_of_month: false,
            zone: Zone::Default,
        };

        // The zone comes last and is split off first, as systemd does.
        let mut body = expr;
        if expr.len() >= 4
            && expr.is_char_boundary(expr.len() - 4)
            && expr[expr.len() - 4..].eq_ignore_ascii_case(" UTC")
        {
            cal.zone = Zone::Utc;
            body = &expr[..expr.len() - 4];
        } else if let Some(space) = expr.rfind(' ')
            && let Some(tz) = load_zone(&expr[space + 1..])
        {
            cal.zone = Zone::Named {
                name: expr[space + 1..].to_string(),
                tz,
            };
            body = &expr[..space];
        }

        if body.is_empty() {
            return Err(ScheduleError::whole(
                "empty calendar expression",
                format!("{SYNTAX_HELP}; or use a shorthand such as `daily` or `weekly`"),
            ));
        }

        if !cal.parse_shorthand(body) {
            cal.parse_body(body).map_err(|e| {
                // A last word with a '/' that is no zone is more likely a misspelt zone than a
                // syntax error at its start.
                match expr.rfind(' ') {
                    Some(space) if body.len() == expr.len() && expr[space..].contains('/') => {
                        ScheduleError::at(
                            space + 1..expr.len(),
                            format!("unknown time zone `{}`", &expr[space + 1..]),
                            "time zones are IANA names such as `Europe/Berlin` or `UTC` \
                             (see /usr/share/zoneinfo; case matters)",
                        )
                    }
                    _ => e,
                }
            })?;
        }

        cal.normalize();
        cal.validate(expr)?;
        Ok(cal)
    }

    /// Weekdays, date and time, in this order, each optional.
    fn parse_body(&mut self, body: &str) -> Result<(), ScheduleError> {
        let mut p = Cursor {
            s: body.as_bytes(),
            pos: 0,
        };
        self.parse_weekdays(&mut p)?;
        let timestamp = self.parse_date(&mut p)?;
        if !timestamp {
            self.parse_time(&mut p)?;
        }
        if !p.at_end() {
            return Err(p.error("unexpected text after the calendar expression"));
        }
        Ok(())
    }

    /// The shorthands systemd knows, case-insensitively. Returns false if `body` is none of them.
    fn parse_shorthand(&mut self, body: &str) -> bool {
        let zero = || Some(vec![constant(0, 0..0)]);
        let lower = body.to_ascii_lowercase();
        let (months, day, hour, minute): (&[i64], Option<i64>, bool, bool) = match lower.as_str() {
            "minutely" => (&[], None, false, false),
            "hourly" => (&[], None, false, true),
            "daily" | "weekly" => (&[], None, true, true),
            "monthly" => (&[], Some(1), true, true),
            "annually" | "yearly" | "anually" => (&[1], Some(1), true, true),
            "quarterly" => (&[1, 4, 7, 10], Some(1), true, true),
            "biannually" | "bi-annually" | "semiannually" | "semi-annually" => {
                (&[1, 7], Some(1), true, true)
            }
            _ => return false,
        };
        if lower == "weekly" {
            self.weekdays = Some(1);
        }
        if !months.is_empty() {
            self.month = Some(months.iter().map(|&m| constant(m, 0..0)).collect());
        }
        if let Some(d) = day {
            self.day = Some(vec![constant(d, 0..0)]);
        }
        if hour {
            self.hour = zero();
        }
        if minute {
            self.minute = zero();
        }
        self.usec = zero();
        true
    }

    /// Weekday names, lists and ranges (`Mon..Fri`, `Sat,Sun`, `Mon-Wed`); optional.
    fn parse_weekdays(&mut self, p: &mut Cursor) -> Result<(), ScheduleError> {
        let mut range_from: Option<u8> = None;
        let mut first = true;
        let mut bits = 0u8;
        loop {
            let start = p.pos;
            let Some((len, nr)) = weekday(p)? else {
                if first {
                    return Ok(());
                }
                return Err(p.error_with(
                    "expected a weekday name after `,`, `-` or `..`",
                    "weekdays are Mon, Tue, Wed, Thu, Fri, Sat, Sun (or written out)",
                ));
            };
            bits |= 1 << nr;
            if let Some(from) = range_from {
                if from > nr {
                    return Err(ScheduleError::at(
                        start..p.pos + len,
                        "weekday range goes backwards",
                        "weekday ranges run from Monday to Sunday: write e.g. `Mon..Fri` or \
                         `Fri..Sun`, or a list such as `Sat,Sun,Mon`",
                    ));
                }
                for j in from + 1..nr {
                    bits |= 1 << j;
                }
            }
            p.pos += len;
            self.weekdays = Some(bits);
            if after_weekday(p, nr, &mut range_from)? {
                return Ok(());
            }
            first = false;
        }
    }

    /// The date part, `[YEAR-]MONTH-DAY` (or `~DAY` for days counted from the end of the month),
    /// or `@SECONDS`. Returns true for `@SECONDS`, which also fixes the time of day.
    fn parse_date(&mut self, p: &mut Cursor) -> Result<bool, ScheduleError> {
        if p.at_end() {
            return Ok(false);
        }
        if p.peek() == Some(b'@') {
            self.parse_timestamp(p)?;
            return Ok(true);
        }

        let mut t = p.clone();
        let first = parse_chain(&mut t, false)?;
        // Already the end, or a ':'? Then this was the time, not a date.
        if matches!(t.peek(), None | Some(b':')) {
            return Ok(false);
        }
        match t.peek() {
            Some(b'~') => self.end_of_month = true,
            Some(b'-') => {}
            _ => return Err(t.error("expected `-` between the parts of the date")),
        }
        t.pos += 1;
        let second = parse_chain(&mut t, false)?;
        if matches!(t.peek(), None | Some(b' ')) {
            t.skip_spaces();
            *p = t;
            self.month = first;
            self.day = second;
            return Ok(false);
        }
        if self.end_of_month {
            return Err(t.error_with(
                "`~` must come between month and day",
                "write e.g. `*-02~01` for the last day of February",
            ));
        }
        match t.peek() {
            Some(b'~') => self.end_of_month = true,
            Some(b'-') => {}
            _ => return Err(t.error("expected `-` between the parts of the date")),
        }
        t.pos += 1;
        let third = parse_chain(&mut t, false)?;
        if !matches!(t.peek(), None | Some(b' ')) {
            return Err(t.error("expected a space after the date"));
        }
        t.skip_spaces();
        *p = t;
        self.year = first;
        self.month = second;
        self.day = third;
        Ok(false)
    }

    /// `@SECONDS`: one fixed instant, in UTC. systemd reads the number with strtoul(), so leading
    /// white space and a sign are allowed (and a negative number wraps around, as in C).
    fn parse_timestamp(&mut self, p: &mut Cursor) -> Result<(), ScheduleError> {
        let at = p.pos;
        p.pos += 1;
        while matches!(
            p.peek(),
            Some(b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
        ) {
            p.pos += 1;
        }
        let negative = match p.peek() {
            Some(b'-') => {
                p.pos += 1;
                true
            }
            Some(b'+') => {
                p.pos += 1;
                false
            }
            _ => false,
        };
        let digits = p.pos;
        let (value, overflow) = p.digits();
        let span = at..p.pos;
        if p.pos == digits {
            return Err(ScheduleError::at(
                span,
                "`@` must be followed by seconds since the epoch",
                "write e.g. `@1767225600`",
            ));
        }
        if overflow {
            return Err(ScheduleError::at(
                span,
                "timestamp is too large",
                "systemd timestamps end in the year 2199",
            ));
        }
        let time = if negative {
            value.wrapping_neg()
        } else {
            value
        } as i64;
        let days = time.div_euclid(86_400);
        let secs = time.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        let c = |v: i64| Some(vec![constant(v, span.clone())]);
        self.year = c(y);
        self.month = c(m);
        self.day = c(d);
        self.hour = c(secs / 3600);
        self.minute = c(secs / 60 % 60);
        self.usec = c(secs % 60 * USEC_PER_SEC);
        self.zone = Zone::Utc;
        Ok(())
    }

    /// `HH:MM[:SS[.ffffff]]`; when absent, midnight.
    fn parse_time(&mut self, p: &mut Cursor) -> Result<(), ScheduleError> {
        if p.at_end() {
            self.hour = Some(vec![constant(0, 0..0)]);
            self.minute = Some(vec![constant(0, 0..0)]);
            self.usec = Some(vec![constant(0, 0..0)]);
            return Ok(());
        }
        let hour = parse_chain(p, false)?;
        if p.peek() != Some(b':') {
            return Err(p.error_with(
                "expected `:` after the hour",
                "a time is written HH:MM or HH:MM:SS, e.g. `02:15`",
            ));
        }
        p.pos += 1;
        let minute = parse_chain(p, false)?;
        let usec = if p.at_end() {
            Some(vec![constant(0, 0..0)])
        } else {
            if p.peek() != Some(b':') {
                return Err(p.error_with(
                    "unexpected text after the minutes",
                    "a time is written HH:MM or HH:MM:SS, e.g. `02:15`",
                ));
            }
            p.pos += 1;
            let s = parse_chain(p, true)?;
            if !p.at_end() {
                return Err(p.error("unexpected text after the seconds"));
            }
            s
        };
        self.hour = hour;
        self.minute = minute;
        self.usec = usec;
        Ok(())
    }

    /// systemd's `calendar_spec_normalize()`.
    fn normalize(&mut self) {
        if self
            .weekdays
            .is_some_and(|bits| bits == 0 || bits >= ALL_WEEKDAYS)
        {
            self.weekdays = None;
        }
        if self.end_of_month && self.day.is_none() {
            self.end_of_month = false;
        }
        if let Some(years) = &mut self.year {
            // Two-digit years: 12 -> 2012, 89 -> 1989.
            for c in years.iter_mut() {
                for v in [&mut c.start, &mut c.stop] {
                    if (0..70).contains(v) {
                        *v += 2000;
                    } else if (70..100).contains(v) {
                        *v += 1900;
                    }
                }
            }
        }
        for chain in [
            &mut self.year,
            &mut self.month,
            &mut self.day,
            &mut self.hour,
            &mut self.minute,
            &mut self.usec,
        ]
        .into_iter()
        .flatten()
        {
            normalize_chain(chain);
        }
    }

    /// systemd's `calendar_spec_valid()`, with a message that says what is wrong.
    fn validate(&self, expr: &str) -> Result<(), ScheduleError> {
        let whole = 0..expr.len();
        check_chain(&self.year, MIN_YEAR, MAX_YEAR, false, "year", 1, &whole)?;
        check_chain(&self.month, 1, 12, false, "month", 1, &whole)?;
        check_chain(&self.day, 1, 31, self.end_of_month, "day", 1, &whole)?;
        check_chain(&self.hour, 0, 23, false, "hour", 1, &whole)?;
        check_chain(&self.minute, 0, 59, false, "minute", 1, &whole)?;
        check_chain(
            &self.usec,
            0,
            60 * USEC_PER_SEC - 1,
            false,
            "second",
            USEC_PER_SEC,
            &whole,
        )?;
        Ok(())
    }

    /// systemd's normalized form, as `systemd-analyze calendar` prints under "Normalized form:".
    pub fn normalized(&self) -> String {
        let mut s = String::new();
        if let Some(bits) = self.weekdays {
            s.push_str(&format_weekdays(bits));
            s.push(' ');
        }
        format_chain(&mut s, 4, &self.year, false);
        s.push('-');
        format_chain(&mut s, 2, &self.month, false);
        s.push(if self.end_of_month { '~' } else { '-' });
        format_chain(&mut s, 2, &self.day, false);
        s.push(' ');
        format_chain(&mut s, 2, &self.hour, false);
        s.push(':');
        format_chain(&mut s, 2, &self.minute, false);
        s.push(':');
        format_chain(&mut s, 2, &self.usec, true);
        match &self.zone {
            Zone::Default => {}
            Zone::Utc => s.push_str(" UTC"),
            Zone::Named { name, .. } => {
                s.push(' ');
                s.push_str(name);
            }
        }
        s
    }

    /// The next elapse strictly after `after`, in the calendar's own timezone (or the given
    /// default zone when the expression names none), like systemd's engine. None if it never
    /// fires again (or if systemd would give up looking, which it does after 1000 steps).
    pub fn next_after(&self, after: Timestamp, default_tz: &TimeZone) -> Option<Timestamp> {
        // systemd counts in microseconds since the epoch, unsigned.
        let usec = after.as_microsecond().max(-1);
        if usec > USEC_TIMESTAMP_FORMATTABLE_MAX {
            return None;
        }
        let usec = usec + 1;
        let mut clock = match &self.zone {
            Zone::Utc => Clock::utc(),
            Zone::Named { tz, .. } => Clock::zoned(tz),
            Zone::Default => Clock::zoned(default_tz),
        };
        let start = clock.localtime(usec.div_euclid(USEC_PER_SEC))?;
        let (tm, tm_usec) = self.find_next(&mut clock, start, usec.rem_euclid(USEC_PER_SEC))?;
        let t = clock.mktime(&tm)?.t;
        if t < 0 {
            return None;
        }
        Timestamp::from_microsecond(t.checked_mul(USEC_PER_SEC)?.checked_add(tm_usec)?).ok()
    }

    /// systemd's `find_next()`: walk from the largest unit to the smallest, moving each to its
    /// next matching value, and restart whenever a value overflows into the next larger unit.
    fn find_next(&self, clock: &mut Clock, start: Tm, start_usec: i64) -> Option<(Tm, i64)> {
        let mut c = start;
        let mut usec = start_usec;
        'search: for _ in 0..MAX_CALENDAR_ITERATIONS {
            // Normalize the current date.
            if let Some(r) = clock.mktime(&c) {
                c = r.tm;
            }

            let mut v = c.year;
            let r = self.find_matching(&self.year, &c, &mut v, clock, false);
            c.year = v;
            match r {
                Err(()) => return None,
                Ok(true) => {
                    reset_below(&mut c, &mut usec, Level::Year);
                }
                Ok(false) => {}
            }
            if within_bounds(&mut c, clock) <= 0 {
                return None;
            }

            // Month, day, hour, minute, second in turn: each moves to its next allowed value
            // (starting the finer ones over when it moves), and one that runs past its range
            // carries into the next coarser field and restarts the search from there.
            for level in [
                Level::Month,
                Level::Day,
                Level::Hour,
                Level::Minute,
                Level::Second,
            ] {
                let mut v = level.get(&c, usec);
                let r =
                    self.find_matching(self.chain(level), &c, &mut v, clock, level == Level::Day);
                level.set(&mut c, &mut usec, v);
                if r == Ok(true) && level != Level::Second {
                    reset_below(&mut c, &mut usec, level);
                }
                let b = if r.is_err() {
                    -1
                } else {
                    within_bounds(&mut c, clock)
                };
                if b < 0 {
                    level.carry(&mut c, &mut usec);
                    continue 'search;
                }
                if b == 0 {
                    // The value we picked may not exist (a daylight saving gap); start over
                    // from the normalized time.
                    continue 'search;
                }
                if level == Level::Day && !self.matches_weekday(&c, clock) {
                    c.mday += 1;
                    reset_below(&mut c, &mut usec, Level::Day);
                    continue 'search;
                }
            }
            return Some((c, usec));
        }
        None
    }

    fn chain(&self, level: Level) -> &Chain {
        match level {
            Level::Year => &self.year,
            Level::Month => &self.month,
            Level::Day => &self.day,
            Level::Hour => &self.hour,
            Level::Minute => &self.minute,
            Level::Second => &self.usec,
        }
    }

    /// The earliest value >= `*val` that `chain` allows. Ok(true) if `*val` changed, Err if no
    /// value in the chain is large enough. `tm` is only used for end-of-month days.
    fn find_matching(
        &self,
        chain: &Chain,
        tm: &Tm,
        val: &mut i64,
        clock: &mut Clock,
        is_day: bool,
    ) -> Result<bool, ()> {
        let Some(chain) = chain else {
            return Ok(false);
        };
        let end_of_month = self.end_of_month && is_day;
        let mut best: Option<i64> = None;
        for c in chain {
            let (mut start, mut stop) = (c.start, c.stop);
            if end_of_month {
                start = end_of_month_day(tm, c.start, clock);
                stop = end_of_month_day(tm, c.stop, clock);
                if stop > 0 {
                    std::mem::swap(&mut start, &mut stop);
                }
            }
            if start >= *val {
                if best.is_none_or(|d| start < d) {
                    best = Some(start);
                }
            } else if c.repeat > 0 {
                let k = start + c.repeat * ((*val - start + c.repeat - 1) / c.repeat);
                if best.is_none_or(|d| k < d) && (stop < 0 || k <= stop) {
                    best = Some(k);
                }
            }
        }
        let d = best.ok_or(())?;
        let changed = *val != d;
        *val = d;
        Ok(changed)
    }

    fn matches_weekday(&self, tm: &Tm, clock: &mut Clock) -> bool {
        let Some(bits) = self.weekdays else {
            return true;
        };
        match clock.mktime(tm) {
            Some(r) if r.t >= 0 => {
                // Monday = 0 .. Sunday = 6.
                let k = (r.wday + 6) % 7;
                bits & (1 << k) != 0
            }
            _ => false,
        }
    }

    /// A short phrase for people: "daily 00:00", "Mon..Fri 02:15", "hourly at :30".
    pub fn describe(&self) -> String {
        let zone = match &self.zone {
            Zone::Default => String::new(),
            Zone::Utc => " UTC".to_string(),
            Zone::Named { name, .. } => format!(" {name}"),
        };
        let single = |c: &Chain| match c {
            Some(v) if v.len() == 1 && v[0].stop < 0 && v[0].repeat == 0 => Some(v[0].start),
            _ => None,
        };
        let whole_seconds = single(&self.usec) == Some(0);
        let any_date = self.year.is_none() && self.month.is_none() && self.day.is_none();
        let days = match self.weekdays {
            Some(bits) => format_weekdays(bits),
            None => "daily".to_string(),
        };
        let mut chain = String::new();
        match (single(&self.hour), single(&self.minute)) {
            (Some(h), Some(m)) if any_date && whole_seconds => {
                return format!("{days} {h:02}:{m:02}{zone}");
            }
            (None, Some(m))
                if any_date && whole_seconds && self.hour.is_none() && self.weekdays.is_none() =>
            {
                return format!("hourly at :{m:02}{zone}");
            }
            _ => {}
        }
        if any_date
            && whole_seconds
            && self.hour.is_none()
            && self.minute.is_none()
            && self.weekdays.is_none()
        {
            return format!("every minute{zone}");
        }
        // Otherwise: the normalized form without the parts that say nothing.
        if let Some(bits) = self.weekdays {
            chain.push_str(&format_weekdays(bits));
            chain.push(' ');
        }
        if !any_date {
            format_chain(&mut chain, 4, &self.year, false);
            chain.push('-');
            format_chain(&mut chain, 2, &self.month, false);
            chain.push(if self.end_of_month { '~' } else { '-' });
            format_chain(&mut chain, 2, &self.day, false);
            chain.push(' ');
        }
        format_chain(&mut chain, 2, &self.hour, false);
        chain.push(':');
        format_chain(&mut chain, 2, &self.minute, false);
        if !whole_seconds {
            chain.push(':');
            format_chain(&mut chain, 2, &self.usec, true);
        }
        chain.push_str(&zone);
        chain
    }
}

fn constant(value: i64, span: Range<usize>) -> Component {
    Component {
        start: value,
        stop: -1,
        repeat: 0,
        span,
    }
}

/// A byte cursor over the expression (without its zone suffix).
#[derive(Clone)]
struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    /// Read a run of decimal digits: its value and whether it overflowed a u64.
    fn digits(&mut self) -> (u64, bool) {
        let mut value: u64 = 0;
        let mut overflow = false;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            match value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(c - b'0')))
            {
                Some(v) => value = v,
                None => overflow = true,
            }
            self.pos += 1;
        }
        (value, overflow)
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn peek_at(&self, i: usize) -> Option<u8> {
        self.s.get(i).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
    }

    fn starts_with_ignore_case(&self, lower: &str) -> bool {
        let rest = &self.s[self.pos.min(self.s.len())..];
        rest.len() >= lower.len() && rest[..lower.len()].eq_ignore_ascii_case(lower.as_bytes())
    }

    /// The range of the (UTF-8) character at the cursor, or an empty range at the end.
    fn here(&self) -> Range<usize> {
        self.pos.min(self.s.len())..char_end(self.s, self.pos)
    }

    fn error(&self, message: &str) -> ScheduleError {
        self.error_with(message, SYNTAX_HELP)
    }

    fn error_with(&self, message: &str, help: &str) -> ScheduleError {
        ScheduleError::at(self.here(), message, help)
    }
}

/// The end of the (UTF-8) character that starts at byte `i`.
fn char_end(s: &[u8], i: usize) -> usize {
    let mut end = (i + 1).min(s.len());
    while end < s.len() && (s[end] & 0xC0) == 0x80 {
        end += 1;
    }
    end
}

/// A chain: `*`, or components separated by `,`.
fn parse_chain(p: &mut Cursor, usec: bool) -> Result<Chain, ScheduleError> {
    if p.peek() == Some(b'*') {
        let span = p.pos..p.pos + 1;
        p.pos += 1;
        // In the seconds field, `*` means every whole second.
        return Ok(usec.then(|| {
            vec![Component {
                start: 0,
                stop: -1,
                repeat: USEC_PER_SEC,
                span,
            }]
        }));
    }
    let mut chain = Vec::new();
    loop {
        if chain.len() >= COMPONENTS_MAX {
            return Err(ScheduleError::at(
                p.here(),
                "too many values in one list",
                "use ranges (`1..5`) or repetitions (`0/15`) instead of long lists",
            ));
        }
        chain.push(parse_component(p, usec)?);
        if p.peek() == Some(b',') {
            p.pos += 1;
        } else {
            return Ok(Some(chain));
        }
    }
}

/// `start[..stop][/repeat]`.
fn parse_component(p: &mut Cursor, usec: bool) -> Result<Component, ScheduleError> {
    let begin = p.pos;
    let start = parse_decimal(p, usec)?;
    let mut stop = -1;
    let mut repeat = 0;
    if p.peek() == Some(b'.') && p.peek_at(p.pos + 1) == Some(b'.') {
        p.pos += 2;
        stop = parse_decimal(p, usec)?;
        repeat = if usec { USEC_PER_SEC } else { 1 };
    }
    if p.peek() == Some(b'/') {
        p.pos += 1;
        repeat = parse_decimal(p, usec)?;
        if repeat == 0 {
            return Err(ScheduleError::at(
                begin..p.pos,
                "repetition must not be 0",
                "`a/n` means a, a+n, a+2n, ...; n must be at least 1",
            ));
        }
    } else {
        if start > INT_MAX - repeat {
            return Err(ScheduleError::at(
                begin..p.pos,
                "number too large",
                SYNTAX_HELP,
            ));
        }
        if usec && stop >= 0 && start + repeat > stop {
            return Err(ScheduleError::at(
                begin..p.pos,
                "range of seconds shorter than one second",
                "ranges step by whole seconds unless you give a repetition, e.g. `00..01/0.5`",
            ));
        }
    }
    if !matches!(p.peek(), None | Some(b' ' | b',' | b'-' | b'~' | b':')) {
        return Err(p.error("unexpected character in calendar expression"));
    }
    Ok(Component {
        start,
        stop,
        repeat,
        span: begin..p.pos,
    })
}

/// A decimal number; in the seconds field with up to six fractional digits, in microseconds.
fn parse_decimal(p: &mut Cursor, usec: bool) -> Result<i64, ScheduleError> {
    let begin = p.pos;
    if !matches!(p.peek(), Some(b'0'..=b'9')) {
        return Err(p.error_with("expected a number or `*`", SYNTAX_HELP));
    }
    let too_large = |p: &Cursor| ScheduleError::at(begin..p.pos, "number too large", SYNTAX_HELP);
    let (mut value, overflow) = p.digits();
    if overflow {
        return Err(too_large(p));
    }
    if usec {
        value = value
            .checked_mul(USEC_PER_SEC as u64)
            .ok_or_else(|| too_large(p))?;
        // One '.' is a decimal point, two are a range.
        if p.peek() == Some(b'.') && p.peek_at(p.pos + 1) != Some(b'.') {
            p.pos += 1;
            let add = parse_fraction(p)?;
            value = value.checked_add(add).ok_or_else(|| too_large(p))?;
        }
    }
    if value > INT_MAX as u64 {
        return Err(too_large(p));
    }
    Ok(value as i64)
}

/// Six fractional digits (padded with zeros), rounded by the seventh, more digits ignored:
/// systemd's `parse_fractional_part_u()`.
fn parse_fraction(p: &mut Cursor) -> Result<u64, ScheduleError> {
    let mut val: u64 = 0;
    let mut i = 0;
    while i < 6 {
        match p.peek() {
            Some(c @ b'0'..=b'9') => {
                val = val * 10 + u64::from(c - b'0');
                p.pos += 1;
            }
            _ if i == 0 => {
                return Err(p.error_with(
                    "expected digits after the decimal point",
                    "write seconds like `05` or `05.5`",
                ));
            }
            _ => {
                while i < 6 {
                    val *= 10;
                    i += 1;
                }
                break;
            }
        }
        i += 1;
    }
    if matches!(p.peek(), Some(b'5'..=b'9')) {
        val += 1;
    }
    while matches!(p.peek(), Some(b'0'..=b'9')) {
        p.pos += 1;
    }
    Ok(val)
}

const WEEKDAYS: [(&str, u8); 14] = [
    ("monday", 0),
    ("mon", 0),
    ("tuesday", 1),
    ("tue", 1),
    ("wednesday", 2),
    ("wed", 2),
    ("thursday", 3),
    ("thu", 3),
    ("friday", 4),
    ("fri", 4),
    ("saturday", 5),
    ("sat", 5),
    ("sunday", 6),
    ("sun", 6),
];

/// The weekday name at the cursor, not yet consumed: its length and its number (Monday is 0).
fn weekday(p: &Cursor) -> Result<Option<(usize, u8)>, ScheduleError> {
    let found = WEEKDAYS
        .iter()
        .find(|(name, _)| p.starts_with_ignore_case(name));
    let Some(&(name, nr)) = found else {
        return Ok(None);
    };
    let after = p.peek_at(p.pos + name.len());
    if !matches!(after, None | Some(b'-' | b'.' | b',' | b' ')) {
        return Err(ScheduleError::at(
            p.pos..char_end(p.s, p.pos + name.len()),
            "unknown weekday",
            "weekdays are Mon, Tue, Wed, Thu, Fri, Sat, Sun (or written out), \
             followed by `,`, `..` or a space",
        ));
    }
    Ok(Some((name.len(), nr)))
}

/// What follows weekday `nr`: true at the end of the weekdays, false after a `,`, or a `-` or
/// `..` that opens a range from it.
fn after_weekday(
    p: &mut Cursor,
    nr: u8,
    range_from: &mut Option<u8>,
) -> Result<bool, ScheduleError> {
    match p.peek() {
        None => return Ok(true),
        Some(b' ') => {
            p.skip_spaces();
            return Ok(true);
        }
        Some(b'.') => {
            if range_from.is_some() || p.peek_at(p.pos + 1) != Some(b'.') {
                return Err(p.error("a weekday range is written `Mon..Fri`"));
            }
            *range_from = Some(nr);
            p.pos += 2;
        }
        Some(b'-') => {
            if range_from.is_some() {
                return Err(p.error("a weekday range is written `Mon..Fri`"));
            }
            *range_from = Some(nr);
            p.pos += 1;
        }
        _ => {
            // ','
            *range_from = None;
            p.pos += 1;
        }
    }
    // A trailing comma is fine, an open range is not.
    if matches!(p.peek(), None | Some(b' ')) {
        p.skip_spaces();
        if range_from.is_some() {
            return Err(p.error_with("weekday range has no end", "write e.g. `Mon..Fri`"));
        }
        return Ok(true);
    }
    Ok(false)
}

/// systemd's `normalize_chain()`: trim ranges to what their repetition reaches, drop
/// repetitions that never repeat, sort, and remove duplicates.
fn normalize_chain(chain: &mut Vec<Component>) {
    for c in chain.iter_mut() {
        if c.stop > c.start && c.repeat > 0 {
            c.stop -= (c.stop - c.start) % c.repeat;
        }
        if (c.stop > c.start && c.repeat > 0 && c.start + c.repeat > c.stop) || c.start == c.stop {
            c.repeat = 0;
            c.stop = -1;
        }
    }
    chain.sort_by_key(Component::key);
    chain.dedup_by_key(|c| c.key());
}

/// systemd's `chain_valid()`.
fn check_chain(
    chain: &Chain,
    from: i64,
    to: i64,
    end_of_month: bool,
    what: &str,
    unit: i64,
    whole: &Range<usize>,
) -> Result<(), ScheduleError> {
    let Some(chain) = chain else {
        return Ok(());
    };
    let field = FieldRange {
        what,
        from,
        // Days counted from the end of the month may go back 28 days at most.
        to: if end_of_month { to - 3 } else { to },
        unit,
        end_of_month,
    };
    for c in chain {
        let span = if c.span.is_empty() {
            whole.clone()
        } else {
            c.span.clone()
        };
        field.check(c, span)?;
    }
    Ok(())
}

/// The values one field of a calendar may take, and how its messages show them.
struct FieldRange<'a> {
    what: &'a str,
    from: i64,
    to: i64,
    /// Values are counted in this many parts of what is shown (microseconds of a second).
    unit: i64,
    /// Days counted from the end of the month (`~`).
    end_of_month: bool,
}

impl FieldRange<'_> {
    fn show(&self, v: i64) -> String {
        let unit = self.unit;
        if unit == 1 {
            v.to_string()
        } else if v % unit == 0 {
            (v / unit).to_string()
        } else {
            format!("{}.{:06}", v / unit, v % unit)
        }
    }

    fn bounds(&self) -> String {
        if self.end_of_month {
            format!("~{}..~{}", self.from, self.to)
        } else {
            format!("{}..{}", self.show(self.from), self.show(self.to))
        }
    }

    /// One component of the chain (a value, a range, a repetition), written at `span`.
    fn check(&self, c: &Component, span: Range<usize>) -> Result<(), ScheduleError> {
        let (what, from, to) = (self.what, self.from, self.to);
        let bounds = self.bounds();
        let out_of_range = |v: i64| {
            ScheduleError::at(
                span.clone(),
                format!("{what} {} is out of range", self.show(v)),
                format!("the {what} must be within {bounds}"),
            )
        };
        if c.start < from || c.start > to {
            return Err(out_of_range(c.start));
        }
        if c.repeat > to - from {
            return Err(ScheduleError::at(
                span,
                format!("{what} repetition /{} is too large", self.show(c.repeat)),
                format!("the repetition must be smaller than the {what} range {bounds}"),
            ));
        }
        if c.stop >= 0 {
            if c.stop < from || c.stop > to {
                return Err(out_of_range(c.stop));
            }
            if c.start + c.repeat > c.stop {
                return Err(ScheduleError::at(
                    span,
                    format!(
                        "{what} range {}..{} is empty or backwards",
                        self.show(c.start),
                        self.show(c.stop)
                    ),
                    "ranges go from the smaller to the larger value, e.g. `1..5`",
                ));
            }
        } else if self.end_of_month && c.start - c.repeat < from {
            return Err(ScheduleError::at(
                span,
                format!(
                    "repetition /{} never fires after day ~{}",
                    c.repeat, c.start
                ),
                "after `~`, a repetition counts towards the end of the month and must fit before it",
            ));
        } else if !self.end_of_month && c.start + c.repeat > to {
            return Err(ScheduleError::at(
                span,
                format!(
                    "{what} {}/{} never repeats within {bounds}",
                    self.show(c.start),
                    self.show(c.repeat)
                ),
                format!(
                    "write just {} or pick a smaller repetition",
                    self.show(c.start)
                ),
            ));
        }
        Ok(())
    }
}

/// systemd's `format_weekdays()`: runs of three or more become `a..b`.
pub(super) fn format_weekdays(bits: u8) -> String {
    let mut out = String::new();
    let mut run_start: Option<usize> = None;
    let mut need_comma = false;
    let close = |out: &mut String, l: usize, x: usize| {
        if x > l + 1 {
            out.push_str(if x > l + 2 { ".." } else { "," });
            out.push_str(WEEKDAY_NAMES[x - 1]);
        }
    };
    for (x, name) in WEEKDAY_NAMES.iter().enumerate() {
        if bits & (1 << x) != 0 {
            if run_start.is_none() {
                if need_comma {
                    out.push(',');
                }
                need_comma = true;
                out.push_str(name);
                run_start = Some(x);
            }
        } else if let Some(l) = run_start.take() {
            close(&mut out, l, x);
        }
    }
    if let Some(l) = run_start {
        close(&mut out, l, 7);
    }
    out
}

/// systemd's `format_chain()`.
fn format_chain(out: &mut String, width: usize, chain: &Chain, usec: bool) {
    let d = if usec { USEC_PER_SEC } else { 1 };
    let Some(chain) = chain else {
        out.push('*');
        return;
    };
    if usec
        && chain.len() == 1
        && chain[0].start == 0
        && chain[0].stop < 0
        && chain[0].repeat == USEC_PER_SEC
    {
        out.push('*');
        return;
    }
    for (i, c) in chain.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{:0width$}", c.start / d);
        if c.start % d > 0 {
            let _ = write!(out, ".{:06}", c.start % d);
        }
        if c.stop > 0 {
            let _ = write!(out, "..{:0width$}", c.stop / d);
        }
        if c.stop % d > 0 {
            let _ = write!(out, ".{:06}", c.stop % d);
        }
        if c.repeat > 0 && !(c.stop > 0 && c.repeat == d) {
            let _ = write!(out, "/{}", c.repeat / d);
        }
        if c.repeat % d > 0 {
            let _ = write!(out, ".{:06}", c.repeat % d);
        }
    }
}

/// systemd's `timezone_is_valid()` plus loading the zone: a name made of `[A-Za-z0-9-_+/]`
/// whose file under /usr/share/zoneinfo is a TZif file. Where that directory does not exist
/// (not a Linux host), jiff's own zone database decides.
fn load_zone(name: &str) -> Option<TimeZone> {
    if name.is_empty() || name.starts_with('/') || name.ends_with('/') || name.contains("//") {
        return None;
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'+' | b'/'))
    {
        return None;
    }
    let path = std::path::Path::new(ZONEINFO).join(name);
    if std::path::Path::new(ZONEINFO).is_dir() {
        if !std::fs::metadata(&path).ok()?.is_file() {
            return None;
        }
        let data = std::fs::read(&path).ok()?;
        if !data.starts_with(b"TZif") {
            return None;
        }
        TimeZone::tzif(name, &data).ok()
    } else {
        let tz = jiff::tz::db().get(name).ok()?;
        (tz.iana_name() == Some(name)).then_some(tz)
    }
}

/// The fields of C's `struct tm` that the engine uses; they may be out of range until normalized.
/// `year` is the full year, `mon` counts from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tm {
    year: i64,
    mon: i64,
    mday: i64,
    hour: i64,
    min: i64,
    sec: i64,
}

/// What `mktime()`/`timegm()` return: the normalized fields, the time, and the weekday
/// (0 = Sunday).
struct Resolved {
    tm: Tm,
    t: i64,
    wday: i64,
}

/// `mktime()` (for a zone) or `timegm()` (for UTC).
///
/// For a local time that happens twice (daylight saving time ends), glibc's `mktime()` with
/// `tm_isdst = -1` picks the one with the same UTC offset as the result of its previous call;
/// that is why systemd keeps firing in the first pass of a repeated hour when it started before
/// it, and in the second when it started inside it. `hint` models that remembered offset. A
/// local time that does not exist (daylight saving time starts) is read with the offset from
/// before the change, i.e. moved forward.
struct Clock<'a> {
    tz: Option<&'a TimeZone>,
    hint: i64,
}

impl<'a> Clock<'a> {
    fn utc() -> Clock<'a> {
        Clock { tz: None, hint: 0 }
    }

    fn zoned(tz: &'a TimeZone) -> Clock<'a> {
        Clock {
            tz: Some(tz),
            hint: 0,
        }
    }

    /// `localtime_r()`/`gmtime_r()`: the fields for the time `t`.
    fn localtime(&mut self, t: i64) -> Option<Tm> {
        let offset = match self.tz {
            None => 0,
            Some(tz) => {
                let off = i64::from(tz.to_offset(Timestamp::from_second(t).ok()?).seconds());
                // The first mktime() call on these fields resolves them to this very offset.
                self.hint = off;
                off
            }
        };
        Some(tm_from_local_seconds(t.checked_add(offset)?))
    }

    fn mktime(&mut self, tm: &Tm) -> Option<Resolved> {
        let local = local_seconds(tm)?;
        let Some(tz) = self.tz else {
            return Some(Resolved {
                tm: tm_from_local_seconds(local),
                t: local,
                wday: weekday_of(local),
            });
        };
        let n = tm_from_local_seconds(local);
        let dt = DateTime::new(
            i16::try_from(n.year).ok()?,
            (n.mon + 1) as i8,
            n.mday as i8,
            n.hour as i8,
            n.min as i8,
            n.sec as i8,
            0,
        )
        .ok()?;
        let offset = match tz.to_ambiguous_timestamp(dt).offset() {
            AmbiguousOffset::Unambiguous { offset } => i64::from(offset.seconds()),
            AmbiguousOffset::Gap { before, .. } => i64::from(before.seconds()),
            AmbiguousOffset::Fold { before, after } => {
                let (b, a) = (i64::from(before.seconds()), i64::from(after.seconds()));
                if self.hint == b || self.hint == a {
                    self.hint
                } else {
                    // glibc probes from the remembered offset; follow it.
                    let mut off = self.hint;
                    let mut found = b;
                    for _ in 0..6 {
                        let t = local - off;
                        let o = i64::from(tz.to_offset(Timestamp::from_second(t).ok()?).seconds());
                        if o == off {
                            found = o;
                            break;
                        }
                        off = o;
                    }
                    found
                }
            }
        };
        let t = local - offset;
        let actual = i64::from(tz.to_offset(Timestamp::from_second(t).ok()?).seconds());
        self.hint = actual;
        let local = t + actual;
        Some(Resolved {
            tm: tm_from_local_seconds(local),
            t,
            wday: weekday_of(local),
        })
    }
}

/// systemd's `tm_within_bounds()`: 1 if `tm` is a real time as it is, 0 if it had to be
/// normalized forward (then `tm` is the normalized time with the next smaller unit reset), and
/// -1 if it cannot be used (beyond 2199, before 1970, or normalized backwards).
fn within_bounds(tm: &mut Tm, clock: &mut Clock) -> i32 {
    if tm.year > MAX_YEAR {
        return -1;
    }
    let Some(r) = clock.mktime(tm) else {
        return -1;
    };
    if r.t < 0 {
        return -1;
    }
    let mut t = r.tm;
    let cmp = if t.year != tm.year {
        t.mon = 0;
        t.year.cmp(&tm.year)
    } else if t.mon != tm.mon {
        t.mday = 1;
        t.mon.cmp(&tm.mon)
    } else if t.mday != tm.mday {
        t.hour = 0;
        t.mday.cmp(&tm.mday)
    } else if t.hour != tm.hour {
        t.min = 0;
        t.hour.cmp(&tm.hour)
    } else if t.min != tm.min {
        t.sec = 0;
        t.min.cmp(&tm.min)
    } else {
        t.sec.cmp(&tm.sec)
    };
    match cmp {
        std::cmp::Ordering::Less => -1,
        std::cmp::Ordering::Greater => {
            *tm = t;
            0
        }
        std::cmp::Ordering::Equal => 1,
    }
}

/// systemd's `find_end_of_month()`: the day of `tm`'s month that is `day` days from its end
/// (`~1` is the last day), or -1.
fn end_of_month_day(tm: &Tm, day: i64, clock: &mut Clock) -> i64 {
    let mut t = *tm;
    t.mon += 1;
    t.mday = 1 - day;
    match clock.mktime(&t) {
        Some(r) if r.t >= 0 && r.tm.mon == tm.mon => r.tm.mday,
        _ => -1,
    }
}

/// Seconds since the epoch of the (possibly out-of-range) fields, read as UTC. None when the
/// year is absurdly far away.
fn local_seconds(tm: &Tm) -> Option<i64> {
    let year = tm.year.checked_add(tm.mon.div_euclid(12))?;
    if !(-1_000_000..=1_000_000).contains(&year) {
        return None;
    }
    let mon = tm.mon.rem_euclid(12);
    let days = days_from_civil(year, mon + 1, 1).checked_add(tm.mday.checked_sub(1)?)?;
    days.checked_mul(86_400)?
        .checked_add(tm.hour.checked_mul(3600)?)?
        .checked_add(tm.min.checked_mul(60)?)?
        .checked_add(tm.sec)
}

fn tm_from_local_seconds(s: i64) -> Tm {
    let days = s.div_euclid(86_400);
    let secs = s.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    Tm {
        year: y,
        mon: m - 1,
        mday: d,
        hour: secs / 3600,
        min: secs / 60 % 60,
        sec: secs % 60,
    }
}

fn weekday_of(local_seconds: i64) -> i64 {
    // 1970-01-01 was a Thursday.
    (local_seconds.div_euclid(86_400) + 4).rem_euclid(7)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (month 1..12).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`]: (year, month 1..12, day 1..31).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The fields of a calendar time, coarsest first.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
}

impl Level {
    /// The field's value as its chain counts it (months from 1, seconds in microseconds).
    fn get(self, c: &Tm, usec: i64) -> i64 {
        match self {
            Level::Year => c.year,
            Level::Month => c.mon + 1,
            Level::Day => c.mday,
            Level::Hour => c.hour,
            Level::Minute => c.min,
            Level::Second => c.sec * USEC_PER_SEC + usec,
        }
    }

    fn set(self, c: &mut Tm, usec: &mut i64, v: i64) {
        match self {
            Level::Year => c.year = v,
            Level::Month => c.mon = v - 1,
            Level::Day => c.mday = v,
            Level::Hour => c.hour = v,
            Level::Minute => c.min = v,
            Level::Second => {
                *usec = v % USEC_PER_SEC;
                c.sec = v / USEC_PER_SEC;
            }
        }
    }

    /// Move on to the next value of the next coarser field, starting this one and all finer
    /// ones over.
    fn carry(self, c: &mut Tm, usec: &mut i64) {
        let coarser = match self {
            Level::Year | Level::Month => {
                c.year += 1;
                Level::Year
            }
            Level::Day => {
                c.mon += 1;
                Level::Month
            }
            Level::Hour => {
                c.mday += 1;
                Level::Day
            }
            Level::Minute => {
                c.hour += 1;
                Level::Hour
            }
            Level::Second => {
                c.min += 1;
                Level::Minute
            }
        };
        reset_below(c, usec, coarser);
    }
}

/// Start every field finer than `level` over from its smallest value, as systemd's search does
/// whenever a coarser field moves on.
fn reset_below(c: &mut Tm, usec: &mut i64, level: Level) {
    if level < Level::Month {
        c.mon = 0;
    }
    if level < Level::Day {
        c.mday = 1;
    }
    if level < Level::Hour {
        c.hour = 0;
    }
    if level < Level::Minute {
        c.min = 0;
    }
    c.sec = 0;
    *usec = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        Calendar::parse(s).unwrap().normalized()
    }

    #[test]
    fn civil_round_trip() {
        for days in [-800_000, -1, 0, 1, 59, 365, 10_957, 20_000, 84_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn normalized_forms() {
        assert_eq!(norm("daily"), "*-*-* 00:00:00");
        assert_eq!(norm("weekly"), "Mon *-*-* 00:00:00");
        assert_eq!(norm("quarterly"), "*-01,04,07,10-01 00:00:00");
        assert_eq!(norm("Mon-Fri 2:15"), "Mon..Fri *-*-* 02:15:00");
        assert_eq!(norm("Sat,Sun,Mon"), "Mon,Sat,Sun *-*-* 00:00:00");
        assert_eq!(norm("*-*-1..31/7"), "*-*-01..29/7 00:00:00");
        assert_eq!(norm("26-01-01"), "2026-01-01 00:00:00");
        assert_eq!(norm("*:*:*"), "*-*-* *:*:*");
        assert_eq!(norm("12:00:30.5"), "*-*-* 12:00:30.500000");
        assert_eq!(norm("@0"), "1970-01-01 00:00:00 UTC");
        assert_eq!(norm("daily utc"), "*-*-* 00:00:00 UTC");
    }

    #[test]
    fn rejects_what_systemd_rejects() {
        for bad in [
            "",
            "*",
            " daily",
            "daily ",
            "*:*/15",
            "Fri..Mon",
            "Mon..",
            "*-*-* 24:00",
            "*-*-31/2",
            "*-*~1/2",
            "*-*-* 05..01:00",
            "1969-01-01",
            "2200-01-01",
            "12:00:0.",
        ] {
            assert!(Calendar::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn next_elapse_basics() {
        let utc = TimeZone::UTC;
        let base: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let next = |s: &str| {
            Calendar::parse(s)
                .unwrap()
                .next_after(base, &utc)
                .map(|t| t.to_string())
        };
        assert_eq!(next("daily").as_deref(), Some("2026-01-02T00:00:00Z"));
        assert_eq!(
            next("Mon..Fri 02:15").as_deref(),
            Some("2026-01-01T02:15:00Z")
        );
        assert_eq!(next("*-02-29").as_deref(), Some("2028-02-29T00:00:00Z"));
        assert_eq!(next("*-02~03").as_deref(), Some("2026-02-26T00:00:00Z"));
        assert_eq!(next("*-02-30"), None);
        assert_eq!(next("2026-01-01"), None);
    }

    #[test]
    fn describes() {
        let d = |s: &str| Calendar::parse(s).unwrap().describe();
        assert_eq!(d("daily"), "daily 00:00");
        assert_eq!(d("Mon..Fri 02:15"), "Mon..Fri 02:15");
        assert_eq!(d("hourly"), "hourly at :00");
        assert_eq!(d("minutely"), "every minute");
        assert_eq!(d("monthly"), "*-*-01 00:00");
        assert_eq!(d("*-*-* 03:00 Europe/Berlin"), "daily 03:00 Europe/Berlin");
    }
}
