//! What Fargate pods and EC2 nodes cost (fargate-behavior.md §4): per-region rates, billing per
//! second with a 60-second minimum, and an override file in the same shape as the built-in table.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::sizing::{DEFAULT_STORAGE_GIB, FargateSize};

/// Hours in the month AWS's price pages use.
pub const HOURS_PER_MONTH: f64 = 730.0;
/// Fargate bills per second, with a one-minute minimum.
pub const MINIMUM_BILLED_SECONDS: u64 = 60;

/// Fargate's Linux/x86 on-demand rates in one region, in USD.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FargateRates {
    pub vcpu_hour: f64,
    pub gb_hour: f64,
    /// Per GB-hour of ephemeral storage above the 20 GB every pod gets.
    pub storage_gb_hour: f64,
}

/// Fargate and EC2 on-demand prices by region. Deserializes from the override file format:
/// `{"fargate": {"REGION": {"vcpuHour", "gbHour", "storageGbHour"}}, "ec2": {"REGION": {"TYPE": usdPerHour}}}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceTable {
    #[serde(default)]
    pub fargate: BTreeMap<String, FargateRates>,
    #[serde(default)]
    pub ec2: BTreeMap<String, BTreeMap<String, f64>>,
}

#[derive(Debug, Clone, PartialEq, Error)]
pub enum PriceError {
    #[error(
        "no Fargate prices for region {0}: built-in prices cover {1}; give the region's rates with a price file (see docs/pricing.md)"
    )]
    UnknownRegion(String, String),
    #[error("invalid price {0} for {1}: prices must be finite and not negative")]
    InvalidPrice(f64, String),
}

/// Regions whose Fargate Linux/x86 rates equal us-east-1's on the AWS pricing page.
const US_EAST_1_RATE_REGIONS: [&str; 3] = ["us-east-1", "us-east-2", "us-west-2"];

/// us-east-1 EC2 on-demand Linux prices (USD per hour) of common node-group instance types;
/// us-east-2 and us-west-2 charge the same for these types.
const EC2_ON_DEMAND: [(&str, f64); 28] = [
    ("t3.micro", 0.0104),
    ("t3.small", 0.0208),
    ("t3.medium", 0.0416),
    ("t3.large", 0.0832),
    ("t3.xlarge", 0.1664),
    ("t3.2xlarge", 0.3328),
    ("t3a.medium", 0.0376),
    ("t3a.large", 0.0752),
    ("m5.large", 0.096),
    ("m5.xlarge", 0.192),
    ("m5.2xlarge", 0.384),
    ("m5.4xlarge", 0.768),
    ("m6i.large", 0.096),
    ("m6i.xlarge", 0.192),
    ("m6i.2xlarge", 0.384),
    ("m7i.large", 0.1008),
    ("m7i.xlarge", 0.2016),
    ("m6g.large", 0.077),
    ("m6g.xlarge", 0.154),
    ("c5.large", 0.085),
    ("c5.xlarge", 0.17),
    ("c5.2xlarge", 0.34),
    ("c6i.large", 0.085),
    ("c6i.xlarge", 0.17),
    ("r5.large", 0.126),
    ("r5.xlarge", 0.252),
    ("r6i.large", 0.126),
    ("r6i.xlarge", 0.252),
];

impl PriceTable {
    /// The prices localfargate ships with.
    pub fn builtin() -> Self {
        let rates = FargateRates {
            vcpu_hour: 0.04048,
            gb_hour: 0.004445,
            storage_gb_hour: 0.000111,
        };
        let ec2: BTreeMap<String, f64> = EC2_ON_DEMAND
            .iter()
            .map(|(t, p)| (t.to_string(), *p))
            .collect();
        PriceTable {
            fargate: US_EAST_1_RATE_REGIONS
                .iter()
                .map(|r| (r.to_string(), rates))
                .collect(),
            ec2: US_EAST_1_RATE_REGIONS
                .iter()
                .map(|r| (r.to_string(), ec2.clone()))
                .collect(),
        }
    }

    /// This table with `other`'s entries replacing or adding to its own.
    pub fn merged(mut self, other: PriceTable) -> Result<Self, PriceError> {
        other.check()?;
        self.fargate.extend(other.fargate);
        for (region, prices) in other.ec2 {
            self.ec2.entry(region).or_default().extend(prices);
        }
        Ok(self)
    }

    fn check(&self) -> Result<(), PriceError> {
        let ok = |v: f64, what: String| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(PriceError::InvalidPrice(v, what))
            }
        };
        for (region, r) in &self.fargate {
            ok(r.vcpu_hour, format!("fargate {region} vcpuHour"))?;
            ok(r.gb_hour, format!("fargate {region} gbHour"))?;
            ok(r.storage_gb_hour, format!("fargate {region} storageGbHour"))?;
        }
        for (region, types) in &self.ec2 {
            for (t, p) in types {
                ok(*p, format!("ec2 {region} {t}"))?;
            }
        }
        Ok(())
    }

    pub fn fargate(&self, region: &str) -> Result<FargateRates, PriceError> {
        self.fargate.get(region).copied().ok_or_else(|| {
            let known: Vec<&str> = self.fargate.keys().map(String::as_str).collect();
            PriceError::UnknownRegion(region.to_string(), known.join(", "))
        })
    }

    /// On-demand price of an EC2 instance type, when known.
    pub fn ec2(&self, region: &str, instance_type: &str) -> Option<f64> {
        self.ec2.get(region)?.get(instance_type).copied()
    }
}

impl FargateRates {
    /// USD per hour for one pod of this size with this much ephemeral storage provisioned.
    pub fn hourly(&self, size: FargateSize, storage_gib: u64) -> f64 {
        let billed_storage = storage_gib.saturating_sub(DEFAULT_STORAGE_GIB) as f64;
        size.vcpu() * self.vcpu_hour
            + size.memory_gib() * self.gb_hour
            + billed_storage * self.storage_gb_hour
    }
}

/// The cost of running for `seconds` at `hourly` USD per hour: whole seconds, at least a minute.
pub fn billed(hourly: f64, seconds: f64) -> f64 {
    let seconds = if seconds.is_finite() && seconds > 0.0 {
        seconds.ceil() as u64
    } else {
        0
    };
    hourly * seconds.max(MINIMUM_BILLED_SECONDS) as f64 / 3600.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn smallest_pod_costs_about_nine_dollars_a_month() {
        let rates = PriceTable::builtin().fargate("us-east-1").unwrap();
        let hourly = rates.hourly(FargateSize::SMALLEST, 20);
        assert!(close(hourly, 0.25 * 0.04048 + 0.5 * 0.004445), "{hourly}");
        assert!(close(hourly, 0.0123425));
        let monthly = hourly * HOURS_PER_MONTH;
        assert!((9.0..9.02).contains(&monthly), "{monthly}");
    }

    #[test]
    fn storage_above_twenty_gib_is_billed() {
        let rates = PriceTable::builtin().fargate("us-east-1").unwrap();
        let size = FargateSize {
            vcpu_millis: 1000,
            memory_mib: 2048,
        };
        let base = rates.hourly(size, 20);
        assert!(close(rates.hourly(size, 115) - base, 95.0 * 0.000111));
    }

    #[test]
    fn per_second_with_one_minute_minimum() {
        assert!(close(billed(3.6, 1.0), 0.06), "a second bills a minute");
        assert!(close(billed(3.6, 60.0), 0.06));
        assert!(close(billed(3.6, 90.0), 0.09));
        assert!(close(billed(3.6, 90.2), 0.091), "rounded up to the second");
        assert!(close(billed(3.6, 3600.0), 3.6));
        assert!(close(billed(3.6, -5.0), 0.06));
    }

    #[test]
    fn unknown_region_is_a_clear_error() {
        let err = PriceTable::builtin()
            .fargate("eu-west-3")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no Fargate prices for region eu-west-3"),
            "{err}"
        );
        assert!(err.contains("us-east-1"), "{err}");
    }

    #[test]
    fn override_file_merges() {
        let file: PriceTable = serde_json::from_str(
            r#"{"fargate": {"eu-west-3": {"vcpuHour": 0.05, "gbHour": 0.005, "storageGbHour": 0.0001}},
                "ec2": {"us-east-1": {"m5.large": 0.1, "x9.huge": 9.0}}}"#,
        )
        .unwrap();
        let table = PriceTable::builtin().merged(file).unwrap();
        assert!(close(table.fargate("eu-west-3").unwrap().vcpu_hour, 0.05));
        assert!(close(
            table.fargate("us-east-1").unwrap().vcpu_hour,
            0.04048
        ));
        assert_eq!(table.ec2("us-east-1", "m5.large"), Some(0.1));
        assert_eq!(table.ec2("us-east-1", "x9.huge"), Some(9.0));
        assert_eq!(table.ec2("us-east-1", "t3.medium"), Some(0.0416));
        let bad: PriceTable =
            serde_json::from_str(r#"{"ec2": {"us-east-1": {"m5.large": -1}}}"#).unwrap();
        assert!(PriceTable::builtin().merged(bad).is_err());
        assert!(serde_json::from_str::<PriceTable>(r#"{"fargat": {}}"#).is_err());
        let extra = r#"{"fargate": {"x": {"vcpuHour": 1, "gbHour": 1, "storageGbHour": 1, "spotVcpuHour": 2}}}"#;
        assert!(
            serde_json::from_str::<PriceTable>(extra).is_err(),
            "unknown rate keys are errors"
        );
    }
}
