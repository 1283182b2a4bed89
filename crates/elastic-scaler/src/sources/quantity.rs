//! Kubernetes quantities (`100m`, `1.5`, `2Gi`, `1e3`) as numbers.

/// The value of a quantity string, or `None` if it is not one.
pub fn parse(q: &str) -> Option<f64> {
    let q = q.trim();
    // `E` is both the exa suffix and the exponent marker: a trailing `E` or `Ei` is the suffix.
    for (suffix, mult) in [("Ei", 1024f64.powi(6)), ("E", 1e18)] {
        if let Some(num) = q.strip_suffix(suffix) {
            let v = num.parse::<f64>().ok()? * mult;
            return v.is_finite().then_some(v);
        }
    }
    let split = q
        .find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let (num, exp_suffix) = match num.find(['e', 'E']) {
        Some(i) if suffix.is_empty() => (&num[..i], Some(&num[i + 1..])),
        _ => (num, None),
    };
    let base: f64 = num.parse().ok()?;
    let mult = match exp_suffix {
        Some(e) => 10f64.powi(e.parse().ok()?),
        None => match suffix {
            "" => 1.0,
            "n" => 1e-9,
            "u" => 1e-6,
            "m" => 1e-3,
            "k" => 1e3,
            "M" => 1e6,
            "G" => 1e9,
            "T" => 1e12,
            "P" => 1e15,
            "Ki" => 1024.0,
            "Mi" => 1024f64.powi(2),
            "Gi" => 1024f64.powi(3),
            "Ti" => 1024f64.powi(4),
            "Pi" => 1024f64.powi(5),
            _ => return None,
        },
    };
    let v = base * mult;
    v.is_finite().then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes() {
        assert_eq!(parse("100m"), Some(0.1));
        assert_eq!(parse("1.5"), Some(1.5));
        assert_eq!(parse("2Ki"), Some(2048.0));
        assert_eq!(parse("1e3"), Some(1000.0));
        assert_eq!(parse("3k"), Some(3000.0));
        assert_eq!(parse("ten"), None);
        assert_eq!(parse("5Q"), None);
        assert_eq!(parse("2E"), Some(2e18));
        assert_eq!(parse("1Ei"), Some(1024f64.powi(6)));
        assert_eq!(parse("2E3"), Some(2000.0));
        assert_eq!(parse("1.5e-3"), Some(0.0015));
        assert_eq!(parse("E"), None);
    }
}
