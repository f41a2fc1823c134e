//! Log sequence numbers: positions in PostgreSQL's write-ahead log.
//!
//! Kept as our own small type (rather than a crate's) because it is stored in
//! SQLite, printed to operators in PostgreSQL's `X/Y` form, and compared
//! everywhere the durability contract (invariant 1) is enforced.

use std::fmt;
use std::str::FromStr;

/// A WAL position. `Lsn(0)` means "none yet".
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct Lsn(pub u64);

impl Lsn {
    pub const ZERO: Lsn = Lsn(0);

    /// The value SQLite stores (SQLite integers are signed 64-bit).
    pub fn to_sql(self) -> i64 {
        self.0 as i64
    }

    pub fn from_sql(v: i64) -> Lsn {
        Lsn(v as u64)
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

/// Error for text that is not of PostgreSQL's `X/Y` hexadecimal form.
#[derive(Debug, thiserror::Error)]
#[error("not a PostgreSQL LSN (expected the form 16/B374D848): {0:?}")]
pub struct LsnParseError(String);

impl FromStr for Lsn {
    type Err = LsnParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || LsnParseError(s.to_owned());
        let (hi, lo) = s.trim().split_once('/').ok_or_else(err)?;
        let hi = u32::from_str_radix(hi, 16).map_err(|_| err())?;
        let lo = u32::from_str_radix(lo, 16).map_err(|_| err())?;
        Ok(Lsn((u64::from(hi) << 32) | u64::from(lo)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_postgres_text_form() {
        let lsn: Lsn = "16/B374D848".parse().unwrap();
        assert_eq!(lsn.0, 0x16_B374_D848);
        assert_eq!(lsn.to_string(), "16/B374D848");
        assert_eq!(Lsn::from_sql(lsn.to_sql()), lsn);
        assert!("nonsense".parse::<Lsn>().is_err());
    }
}
