//! TEMPORARY shim until the schedule branch lands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleError {
    pub message: String,
    pub range: Option<std::ops::Range<usize>>,
    pub help: String,
}
pub fn cron_to_calendar(expr: &str) -> Result<Vec<String>, ScheduleError> {
    Ok(vec![expr.to_string()])
}
pub struct Calendar(String);
impl Calendar {
    pub fn parse(expr: &str) -> Result<Calendar, ScheduleError> {
        Ok(Calendar(expr.into()))
    }
    pub fn describe(&self) -> String {
        self.0.clone()
    }
}
pub fn parse_duration(s: &str, _z: bool) -> Result<u64, ScheduleError> {
    let n: u64 = s
        .trim_end_matches(|c: char| c.is_alphabetic())
        .parse()
        .map_err(|_| ScheduleError {
            message: "bad".into(),
            range: None,
            help: "x".into(),
        })?;
    Ok(n * match s.chars().last() {
        Some('d') => 86400,
        Some('h') => 3600,
        Some('m') => 60,
        _ => 1,
    })
}
pub fn format_duration(secs: u64) -> String {
    format!("{secs}s")
}
pub fn parse_size(s: &str) -> Result<String, ScheduleError> {
    Ok(s.into())
}
