//! Quantities as quota and LimitRange arithmetic needs them: exact sums and comparisons, and
//! printed back as upstream's `Quantity.String()` prints a sum (in the format of the first
//! quantity added, as `Quantity.Add` keeps the receiver's).

use std::collections::BTreeMap;

use localfargate_core::quantity::{self, Format, NANOS_PER_UNIT};

/// A non-negative quantity, in nano-units, with the format it prints in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Amount {
    pub nanos: u128,
    pub format: Format,
}

impl Default for Amount {
    fn default() -> Self {
        Amount::ZERO
    }
}

impl Amount {
    pub const ZERO: Amount = Amount {
        nanos: 0,
        format: Format::DecimalSI,
    };

    /// A whole count (objects, pods).
    pub fn count(n: u64) -> Amount {
        Amount {
            nanos: u128::from(n) * NANOS_PER_UNIT,
            format: Format::DecimalSI,
        }
    }

    /// A quantity as written; `None` when it is not one (validation reports those) or negative.
    pub fn parse(text: &str) -> Option<Amount> {
        let (negative, nanos) = quantity::signed_nanos(text).ok()?;
        if negative {
            return None;
        }
        let format = quantity::format_of(text).ok()?;
        Some(Amount { nanos, format })
    }
}

/// `self + other`, in `self`'s format, or `other`'s when `self` is zero (`Quantity.Add`).
impl std::ops::Add for Amount {
    type Output = Amount;

    fn add(self, other: Amount) -> Amount {
        let format = if self.nanos == 0 {
            other.format
        } else {
            self.format
        };
        Amount {
            nanos: self.nanos.saturating_add(other.nanos),
            format,
        }
    }
}

impl std::fmt::Display for Amount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = quantity::canonical_nanos(false, self.nanos, self.format);
        f.write_str(&text)
    }
}

/// Resource name → amount, as `corev1.ResourceList`.
pub type Amounts = BTreeMap<String, Amount>;

/// Add `other` into `into`, key by key (`quota.Add`).
pub fn add_into(into: &mut Amounts, other: &Amounts) {
    for (k, v) in other {
        let sum = into.get(k).copied().unwrap_or(Amount::ZERO) + *v;
        into.insert(k.clone(), sum);
    }
}

/// `into[k] = max(into[k], other[k])` for every key of `other`.
pub fn max_into(into: &mut Amounts, other: &Amounts) {
    for (k, v) in other {
        match into.get(k) {
            Some(have) if have.nanos >= v.nanos => {}
            _ => {
                into.insert(k.clone(), *v);
            }
        }
    }
}

/// A `ResourceList` JSON object as amounts; entries that are not quantities are left out.
pub fn amounts_of(list: &serde_json::Value) -> Amounts {
    list.as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), Amount::parse(v.as_str()?)?)))
        .collect()
}

/// A typed `ResourceList` as amounts; entries that are not quantities are left out.
pub fn amounts_of_list(
    list: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
) -> Amounts {
    list.into_iter()
        .flatten()
        .filter_map(|(k, q)| Some((k.clone(), Amount::parse(&q.0)?)))
        .collect()
}

/// `k=v,k=v` in key order, as the quota admission's messages print a `ResourceList`.
pub fn pretty(list: &Amounts) -> String {
    list.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_print_as_upstream_prints_them() {
        let a = |s| Amount::parse(s).unwrap();
        assert_eq!((a("500m") + a("250m")).to_string(), "750m");
        assert_eq!((a("500m") + a("500m")).to_string(), "1");
        assert_eq!((a("128Mi") + a("128Mi")).to_string(), "256Mi");
        assert_eq!((Amount::ZERO + a("1Gi")).to_string(), "1Gi");
        assert_eq!(a("1000m").to_string(), "1");
        assert_eq!(Amount::count(3).to_string(), "3");
        assert_eq!(Amount::ZERO.to_string(), "0");
        assert_eq!(Amount::parse("-1"), None);
    }
}
