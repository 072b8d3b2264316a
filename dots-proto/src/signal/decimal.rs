//! decimal64 with fraction-digits 2 (the YANG type of 'ack-timeout' and
//! 'ack-random-factor', section 5.3): kept as an integer count of
//! hundredths so that equality and ordering are exact.

use std::fmt;
use std::str::FromStr;

/// A decimal with two fraction digits, e.g. `Decimal::from_hundredths(150)`
/// is 1.50.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Decimal(i64);

impl Decimal {
    pub const fn from_hundredths(h: i64) -> Self {
        Decimal(h)
    }
    pub const fn hundredths(self) -> i64 {
        self.0
    }

    /// From a CBOR decimal fraction (RFC 8949, 3.4.4): mantissa * 10^exp.
    /// Refuses values that need more than two fraction digits or overflow.
    pub fn from_fraction(exp: i64, mantissa: i64) -> Option<Self> {
        if !(-20..=18).contains(&exp) {
            return None;
        }
        let shift = exp + 2;
        if shift >= 0 {
            let p = 10i64.checked_pow(u32::try_from(shift).ok()?)?;
            mantissa.checked_mul(p).map(Decimal)
        } else {
            let p = 10i64.checked_pow(u32::try_from(-shift).ok()?)?;
            (mantissa % p == 0).then(|| Decimal(mantissa / p))
        }
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let a = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", a / 100, a % 100)
    }
}

impl FromStr for Decimal {
    type Err = ();
    /// RFC 7951 decimal64 string: `-?digits(.digits{1,2})?`.
    fn from_str(s: &str) -> Result<Self, ()> {
        let (neg, body) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (int, frac) = body.split_once('.').unwrap_or((body, ""));
        let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty() || int.len() > 16 || !digits(int) || frac.len() > 2 || !digits(frac) {
            return Err(());
        }
        if body.contains('.') && frac.is_empty() {
            return Err(());
        }
        let i: i64 = int.parse().map_err(|_| ())?;
        let mut f: i64 = if frac.is_empty() { 0 } else { frac.parse().map_err(|_| ())? };
        if frac.len() == 1 {
            f *= 10;
        }
        let v = i.checked_mul(100).and_then(|v| v.checked_add(f)).ok_or(())?;
        Ok(Decimal(if neg { -v } else { v }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings() {
        assert_eq!("1.50".parse::<Decimal>(), Ok(Decimal(150)));
        assert_eq!("2".parse::<Decimal>(), Ok(Decimal(200)));
        assert_eq!("1.1".parse::<Decimal>(), Ok(Decimal(110)));
        assert!("1.234".parse::<Decimal>().is_err());
        assert!("1.".parse::<Decimal>().is_err());
        assert!("x".parse::<Decimal>().is_err());
        assert_eq!(Decimal(150).to_string(), "1.50");
        assert_eq!(Decimal(-5).to_string(), "-0.05");
    }

    #[test]
    fn fractions() {
        assert_eq!(Decimal::from_fraction(-2, 150), Some(Decimal(150)));
        assert_eq!(Decimal::from_fraction(-1, 15), Some(Decimal(150)));
        assert_eq!(Decimal::from_fraction(-3, 1500), Some(Decimal(150)));
        assert_eq!(Decimal::from_fraction(-3, 1501), None);
        assert_eq!(Decimal::from_fraction(0, 2), Some(Decimal(200)));
        assert_eq!(Decimal::from_fraction(18, i64::MAX), None);
        assert_eq!(Decimal::from_fraction(i64::MIN, 1), None);
    }
}
