//! Coordinates for SVG attributes. Charts write their numbers with one
//! decimal through integer formatting: Rust's float formatter would add
//! several KiB to the WASM for nothing a chart needs.

/// `v` rounded to one decimal, e.g. `-0.5`, `12.3`, `7.0`.
pub fn tenths(v: f64) -> String {
    let t = (v * 10.0).round();
    // Chart coordinates are small; anything else is clamped, never wrapped.
    let t = t.clamp(-1e15, 1e15) as i64;
    let sign = if t < 0 { "-" } else { "" };
    let t = t.unsigned_abs();
    format!("{sign}{}.{}", t / 10, t % 10)
}

#[cfg(test)]
mod tests {
    use super::tenths;

    #[test]
    fn one_decimal_like_the_float_formatter() {
        for v in [0.0, 0.04, 0.05, 1.0, 12.34, 599.96, -0.5, -0.04, -3.25, 119.0, 2.0e6] {
            let expected = format!("{:.1}", (v * 10.0_f64).round() / 10.0);
            let expected = if expected == "-0.0" { "0.0".to_string() } else { expected };
            assert_eq!(tenths(v), expected, "{v}");
        }
        assert_eq!(tenths(f64::NAN), "0.0");
        assert_eq!(tenths(f64::INFINITY), "100000000000000.0");
    }
}
