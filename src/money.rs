//! Money is integer minor units plus an ISO 4217 code (invariant 10). One table of how many
//! decimals each currency has, for every source and transform, so that an amount read from a
//! dashboard export, an API object and a confirmation mail is the same number.

/// The number of decimals of a currency's minor unit, per ISO 4217. Unknown codes have two, as
/// most currencies do.
pub fn exponent(currency: &str) -> u32 {
    match currency.trim().to_ascii_uppercase().as_str() {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        "CLF" | "UYW" => 4,
        _ => 2,
    }
}

/// Stripe's integer amounts in ISO minor units. Stripe writes a few currencies with another
/// number of decimals than ISO 4217: ISK amounts carry two decimals that are always zero
/// (100 = 1 króna), and MGA has none (ISO gives it two).
pub fn from_stripe(amount: i64, currency: &str) -> i64 {
    match currency.trim().to_ascii_uppercase().as_str() {
        "ISK" => amount / 100,
        "MGA" => amount.saturating_mul(100),
        _ => amount,
    }
}

/// Minor units in major units, exactly, for people ("289.50" EUR, "12000" JPY).
pub fn format_major(minor: i64, currency: &str) -> String {
    let e = exponent(currency) as usize;
    if e == 0 {
        return minor.to_string();
    }
    let sign = if minor < 0 { "-" } else { "" };
    let digits = format!("{:0>width$}", minor.unsigned_abs(), width = e + 1);
    let (int, frac) = digits.split_at(digits.len() - e);
    format!("{sign}{int}.{frac}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponents() {
        assert_eq!(exponent("jpy"), 0);
        assert_eq!(exponent("EUR"), 2);
        assert_eq!(exponent("KWD"), 3);
        assert_eq!(exponent("ISK"), 0);
        assert_eq!(from_stripe(150_000, "isk"), 1_500);
        assert_eq!(from_stripe(1_500, "JPY"), 1_500);
    }
}
