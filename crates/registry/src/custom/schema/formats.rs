//! The string formats kube-openapi's default registry (`strfmt.Default`) checks. A format it does
//! not know is not checked, as upstream; of the known ones, `isbn*`, `creditcard`, `ssn`,
//! `hexcolor`, `rgbcolor` and `bsonobjectid` are not checked here (see the module docs).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use regex::Regex;

static UUID: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$").ok()
});
static UUID3: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$").ok()
});
static UUID4: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$")
        .ok()
});
static UUID5: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$")
        .ok()
});
static HOSTNAME: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"^([a-zA-Z0-9\p{S}\p{L}]((-?[a-zA-Z0-9\p{S}\p{L}]{0,62})?)|([a-zA-Z0-9\p{S}\p{L}](([a-zA-Z0-9-\p{S}\p{L}]{0,61}[a-zA-Z0-9\p{S}\p{L}])?)(\.)){1,}([a-zA-Z\p{L}]){2,63})$").ok()
});
static BASE64: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})$")
        .ok()
});
static MAC: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"^(?:[0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$|^(?:[0-9A-Fa-f]{2}[:-]){7}[0-9A-Fa-f]{2}$|^(?:[0-9A-Fa-f]{2}[:-]){19}[0-9A-Fa-f]{2}$|^(?:[0-9A-Fa-f]{4}\.){2}[0-9A-Fa-f]{4}$|^(?:[0-9A-Fa-f]{4}\.){3}[0-9A-Fa-f]{4}$|^(?:[0-9A-Fa-f]{4}\.){9}[0-9A-Fa-f]{4}$").ok()
});
static LOCAL_DATE_TIME: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$").ok());
static GO_DURATION: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^[-+]?(?:[0-9]*(?:\.[0-9]*)?(?:ns|us|µs|ms|s|m|h))+$|^0$").ok());
static UNIT_DURATION: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"^(\d+)\s*(ns|nanoseconds?|us|µs|microseconds?|ms|milliseconds?|s|sec|secs?|seconds?|m|min|mins?|minutes?|h|hr|hours?|d|days?|w|wk|weeks?)$").ok()
});

/// The formats apiextensions-apiserver (1.31) keeps when it builds a custom resource's
/// validator (`StripUnsupportedFormatsPostProcess`), by their dash-less names. Any other format
/// — `int32`, `int64`, `float`, `double` included — is dropped, so it checks nothing.
const SUPPORTED: [&str; 24] = [
    "bsonobjectid",
    "uri",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "cidr",
    "mac",
    "uuid",
    "uuid3",
    "uuid4",
    "uuid5",
    "isbn",
    "isbn10",
    "isbn13",
    "creditcard",
    "ssn",
    "hexcolor",
    "rgbcolor",
    "byte",
    "password",
    "date",
    "duration",
    "datetime",
];

/// The format a custom resource is validated with: the schema's, or `""` when upstream strips it.
pub(crate) fn effective(format: Option<&str>) -> &str {
    match format {
        Some(f) if SUPPORTED.contains(&f.replace('-', "").as_str()) => f,
        _ => "",
    }
}

fn matches(re: &LazyLock<Option<Regex>>, text: &str) -> bool {
    re.as_ref().is_some_and(|r| r.is_match(text))
}

/// Whether `text` is valid for `format`; `None` for a format not checked (unknown upstream, or
/// one this module leaves out). Names are compared as the registry normalizes them (lower
/// case, no dashes): `date-time` is `datetime`.
pub(crate) fn validates(format: &str, text: &str) -> Option<bool> {
    let name: String = format
        .chars()
        .filter(|c| *c != '-')
        .flat_map(char::to_lowercase)
        .collect();
    Some(match name.as_str() {
        "datetime" => is_date_time(text),
        "date" => jiff::civil::Date::strptime("%Y-%m-%d", text).is_ok() && text.len() == 10,
        "byte" => matches(&BASE64, text),
        "uuid" => matches(&UUID, text),
        "uuid3" => matches(&UUID3, text),
        "uuid4" => matches(&UUID4, text),
        "uuid5" => matches(&UUID5, text),
        "ipv4" => is_ipv4(text),
        "ipv6" => text.contains(':') && text.parse::<Ipv6Addr>().is_ok(),
        "cidr" => is_cidr(text),
        "mac" => matches(&MAC, text),
        "hostname" => {
            matches(&HOSTNAME, text) && text.len() <= 255 && text.split('.').all(|p| p.len() <= 63)
        }
        "email" => is_email(text),
        "uri" => is_request_uri(text),
        "duration" => matches(&GO_DURATION, text) || matches(&UNIT_DURATION, text),
        "password" => true,
        _ => return None,
    })
}

/// RFC 3339 (with or without fractional seconds) or ISO 8601 local time without a zone.
fn is_date_time(text: &str) -> bool {
    text.parse::<jiff::Timestamp>().is_ok() && text.len() >= 20 || matches(&LOCAL_DATE_TIME, text)
}

/// Dotted IPv4, leading zeros allowed as `netutils.ParseIPSloppy` allows them.
fn is_ipv4(text: &str) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() == 4
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 3
                && p.bytes().all(|b| b.is_ascii_digit())
                && p.parse::<u16>().is_ok_and(|n| n <= 255)
        })
        || text.parse::<Ipv4Addr>().is_ok()
}

fn is_cidr(text: &str) -> bool {
    let Some((addr, bits)) = text.split_once('/') else {
        return false;
    };
    let Ok(bits) = bits.parse::<u8>() else {
        return false;
    };
    if is_ipv4(addr) {
        return bits <= 32;
    }
    matches!(addr.parse::<IpAddr>(), Ok(IpAddr::V6(_))) && bits <= 128
}

/// `mail.ParseAddress` reduced: `local@domain`, optionally as `Name <local@domain>`.
fn is_email(text: &str) -> bool {
    let address = match (text.find('<'), text.strip_suffix('>')) {
        (Some(open), Some(inner)) => &inner[open + 1..],
        _ => text.trim(),
    };
    match address.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !address.contains(char::is_whitespace)
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        }
        None => false,
    }
}

/// `url.ParseRequestURI` reduced: an absolute URI with a scheme, or an absolute path.
fn is_request_uri(text: &str) -> bool {
    if text.starts_with('/') {
        return !text.contains(char::is_whitespace);
    }
    match text.split_once(':') {
        Some((scheme, rest)) => {
            let mut chars = scheme.chars();
            chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
                && !rest.is_empty()
                && !text.contains(char::is_whitespace)
        }
        None => false,
    }
}
