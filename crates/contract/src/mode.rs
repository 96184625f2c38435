//! File permission bits, as every contract writes them: octal text the way `chmod` takes it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A file's permission bits (at most `0o7777`). Written as four octal digits ("0644"); read from
/// one to four octal digits, so `stat -c %a`'s "644" reads too. This is the only parser of modes:
/// anything else is an error, never a default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mode(u32);

impl Mode {
    /// `rw-r--r--`: every file bkc writes except the ones it runs.
    pub const FILE: Mode = Mode(0o644);
    /// `rwxr-xr-x`: bkc-run.
    pub const EXECUTABLE: Mode = Mode(0o755);

    /// The mode of `bits`; `None` when it has bits beyond `0o7777`.
    pub const fn new(bits: u32) -> Option<Mode> {
        if bits <= 0o7777 {
            Some(Mode(bits))
        } else {
            None
        }
    }

    pub const fn bits(self) -> u32 {
        self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a file mode (one to four octal digits, as chmod takes them)")]
pub struct ModeError(pub String);

impl FromStr for Mode {
    type Err = ModeError;

    fn from_str(s: &str) -> Result<Mode, ModeError> {
        let octal = !s.is_empty() && s.len() <= 4 && s.bytes().all(|b| matches!(b, b'0'..=b'7'));
        if !octal {
            return Err(ModeError(s.to_string()));
        }
        u32::from_str_radix(s, 8)
            .ok()
            .and_then(Mode::new)
            .ok_or_else(|| ModeError(s.to_string()))
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

/// So that `{:04o}` in a shell script's text and `{:o}` in a fingerprint keep meaning the bits.
impl fmt::Octal for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Octal::fmt(&self.0, f)
    }
}

impl Serialize for Mode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Mode, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(feature = "schema")]
impl schemars::JsonSchema for Mode {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Mode".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Permission bits in octal, as chmod takes them, e.g. \"0644\".",
            "type": "string",
            "pattern": "^[0-7]{1,4}$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_parser_for_every_spelling() {
        assert_eq!("0644".parse(), Ok(Mode::FILE));
        assert_eq!("644".parse(), Ok(Mode::FILE));
        assert_eq!("4755".parse::<Mode>().map(Mode::bits), Ok(0o4755));
        for bad in ["", "0o644", "0888", "12345", "-644", " 644", "rw-"] {
            assert!(bad.parse::<Mode>().is_err(), "{bad:?}");
        }
        assert_eq!(Mode::new(0o10000), None);
    }

    #[test]
    fn written_as_four_digits() {
        assert_eq!(Mode::EXECUTABLE.to_string(), "0755");
        assert_eq!(format!("{:04o}", Mode::FILE), "0644");
        assert_eq!(serde_json::to_string(&Mode::FILE).unwrap(), "\"0644\"");
        assert_eq!(
            serde_json::from_str::<Mode>("\"600\"").unwrap().bits(),
            0o600
        );
        assert!(serde_json::from_str::<Mode>("\"9\"").is_err());
    }
}
