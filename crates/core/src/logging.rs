//! Fargate's built-in log router: whether a new pod gets logging, decided once from the
//! `aws-logging` ConfigMap in the `aws-observability` namespace, with the annotation and the event
//! AWS records.

use std::collections::BTreeMap;

use crate::admission::LoggingStatus;

pub const LOGGING_NAMESPACE: &str = "aws-observability";
pub const LOGGING_CONFIGMAP: &str = "aws-logging";
/// The label the namespace must carry.
pub const LOGGING_NAMESPACE_LABEL: (&str, &str) = ("aws-observability", "enabled");
pub const MAX_CONFIGMAP_CHARS: usize = 5300;
pub const SUPPORTED_FILTERS: [&str; 8] = [
    "grep",
    "parser",
    "record_modifier",
    "rewrite_tag",
    "throttle",
    "nest",
    "modify",
    "kubernetes",
];
pub const SUPPORTED_OUTPUTS: [&str; 6] = [
    "es",
    "firehose",
    "kinesis_firehose",
    "cloudwatch",
    "cloudwatch_logs",
    "kinesis",
];
/// The annotation reason for a ConfigMap Fargate rejects. AWS's exact code is not documented;
/// this one is ours.
pub const LOGGING_CONFIGMAP_INVALID: &str = "LOGGING_CONFIGMAP_INVALID";

/// What the fargate-scheduler records about logging for one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggingDecision {
    pub status: LoggingStatus,
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

fn disabled_invalid(problem: &str) -> LoggingDecision {
    LoggingDecision {
        status: LoggingStatus::Disabled(LOGGING_CONFIGMAP_INVALID.to_string()),
        warning: true,
        reason: "LoggingDisabled",
        message: format!(
            "Disabled logging for pod due to invalid configmap. {problem}. Please fix the logging configmap"
        ),
    }
}

/// `[SECTION]` headers and each section's `Name`, in order.
fn sections(text: &str) -> Vec<(String, Option<String>)> {
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            out.push((header.trim().to_ascii_uppercase(), None));
        } else if let Some((key, value)) = line.split_once(char::is_whitespace)
            && key.eq_ignore_ascii_case("name")
            && let Some(last) = out.last_mut()
        {
            last.1 = Some(value.trim().to_string());
        }
    }
    out
}

/// Decide from the namespace's labels (None: no namespace) and the ConfigMap's data (None: none).
pub fn decide(
    namespace_labels: Option<&BTreeMap<String, String>>,
    configmap: Option<&BTreeMap<String, String>>,
) -> LoggingDecision {
    let labelled = namespace_labels.is_some_and(|l| {
        l.get(LOGGING_NAMESPACE_LABEL.0)
            .is_some_and(|v| v == LOGGING_NAMESPACE_LABEL.1)
    });
    let Some(data) = configmap.filter(|_| labelled) else {
        return LoggingDecision {
            status: LoggingStatus::configmap_not_found(),
            warning: true,
            reason: "LoggingDisabled",
            message: "Disabled logging because aws-logging configmap was not found. configmap \"aws-logging\" not found".to_string(),
        };
    };
    let size: usize = data.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > MAX_CONFIGMAP_CHARS {
        return disabled_invalid(&format!(
            "the configmap has {size} characters, more than the {MAX_CONFIGMAP_CHARS} allowed"
        ));
    }
    if data.values().any(|v| v.contains("${")) {
        return disabled_invalid("environment variables are not allowed");
    }
    let allowed = [
        ("filters.conf", "FILTER"),
        ("output.conf", "OUTPUT"),
        ("parsers.conf", "PARSER"),
    ];
    let mut outputs = 0;
    for (key, text) in data {
        let Some((_, expected)) = allowed.iter().find(|(k, _)| k == key) else {
            continue;
        };
        for (section, name) in sections(text) {
            if section != *expected {
                return disabled_invalid(&format!(
                    "[{section}] is not allowed under {key}; only [{expected}] is"
                ));
            }
            let Some(name) = name else {
                return disabled_invalid(&format!("Name is required for each [{section}]"));
            };
            let lower = name.to_ascii_lowercase();
            match section.as_str() {
                "OUTPUT" if !SUPPORTED_OUTPUTS.contains(&lower.as_str()) => {
                    return disabled_invalid(&format!("{name} is not a supported output plugin"));
                }
                "OUTPUT" => outputs += 1,
                "FILTER" if !SUPPORTED_FILTERS.contains(&lower.as_str()) => {
                    return disabled_invalid(&format!("{name} is not a supported filter plugin"));
                }
                _ => {}
            }
        }
    }
    if outputs == 0 {
        return disabled_invalid("at least one supported output plugin has to be provided");
    }
    LoggingDecision {
        status: LoggingStatus::Enabled,
        warning: false,
        reason: "LoggingEnabled",
        message: "Successfully enabled logging for pod".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> BTreeMap<String, String> {
        BTreeMap::from([("aws-observability".to_string(), "enabled".to_string())])
    }

    fn data(output: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("output.conf".to_string(), output.to_string())])
    }

    #[test]
    fn missing_configmap_disables_logging_with_awss_words() {
        let d = decide(None, None);
        assert_eq!(
            d.status.to_string(),
            "LoggingDisabled: LOGGING_CONFIGMAP_NOT_FOUND"
        );
        assert_eq!(
            d.message,
            "Disabled logging because aws-logging configmap was not found. configmap \"aws-logging\" not found"
        );
        // The namespace must carry its label.
        let d = decide(
            Some(&BTreeMap::new()),
            Some(&data("[OUTPUT]\n    Name cloudwatch_logs\n    Match *\n")),
        );
        assert_eq!(d.status, LoggingStatus::configmap_not_found());
    }

    #[test]
    fn a_supported_output_enables_logging() {
        let d = decide(
            Some(&labels()),
            Some(&data(
                "[OUTPUT]\n    Name cloudwatch_logs\n    Match   *\n    region us-east-1\n",
            )),
        );
        assert_eq!(d.status, LoggingStatus::Enabled);
        assert_eq!(d.reason, "LoggingEnabled");
        assert_eq!(d.message, "Successfully enabled logging for pod");
        assert!(!d.warning);
    }

    #[test]
    fn unsupported_plugins_are_named() {
        let d = decide(
            Some(&labels()),
            Some(&data(
                "[OUTPUT]\n    Name amazon_data_firehose\n    Match *\n",
            )),
        );
        assert_eq!(
            d.message,
            "Disabled logging for pod due to invalid configmap. amazon_data_firehose is not a supported output plugin. Please fix the logging configmap"
        );
        let mut both = data("[OUTPUT]\n    Name es\n    Match *\n");
        both.insert(
            "filters.conf".into(),
            "[FILTER]\n    Name lua\n    Match *\n".into(),
        );
        assert!(
            decide(Some(&labels()), Some(&both))
                .message
                .contains("lua is not a supported filter plugin")
        );
        assert!(
            decide(Some(&labels()), Some(&data("[INPUT]\n    Name tail\n")))
                .message
                .contains("[INPUT] is not allowed")
        );
        assert!(
            decide(
                Some(&labels()),
                Some(&data("[OUTPUT]\n    Name es\n    Host ${HOST}\n"))
            )
            .message
            .contains("environment variables")
        );
        let big = data(&format!("[OUTPUT]\n    Name es\n#{}\n", "x".repeat(6000)));
        assert!(decide(Some(&labels()), Some(&big)).message.contains("5300"));
    }
}
