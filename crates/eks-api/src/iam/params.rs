//! A Query request's parameters, with IAM's validation errors.

use super::IamError;

/// The request's parameters and the caller's principal ARN.
pub struct Params<'a>(pub &'a [(String, String)], pub &'a str);

/// The member name IAM's validation messages use: `RoleName` → `roleName`.
fn member(name: &str) -> String {
    let mut c = name.chars();
    match c.next() {
        Some(first) => first.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

impl Params<'_> {
    pub fn opt(&self, name: &str) -> Option<&str> {
        crate::wire::query_one(self.0, name)
    }

    pub fn required(&self, name: &str) -> Result<&str, IamError> {
        self.opt(name).ok_or_else(|| {
            IamError::validation(format!(
                "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
                member(name)
            ))
        })
    }

    /// A name as IAM constrains role, user and policy names: `min`–`max` characters of
    /// `[\w+=,.@-]`.
    pub fn name(&self, param: &str, max: usize) -> Result<&str, IamError> {
        let value = self.required(param)?;
        check_name(param, value, max)?;
        Ok(value)
    }

    pub fn path(&self, param: &str) -> Result<String, IamError> {
        let Some(path) = self.opt(param) else {
            return Ok("/".to_string());
        };
        let ok = path.len() <= 512
            && (path == "/"
                || (path.starts_with('/')
                    && path.ends_with('/')
                    && path.len() > 2
                    && path.bytes().all(|b| (0x21..=0x7e).contains(&b))));
        if !ok {
            return Err(IamError::validation(format!(
                "1 validation error detected: Value '{path}' at '{}' failed to satisfy constraint: Member must satisfy regular expression pattern: (\\u002F)|(\\u002F[\\u0021-\\u007E]+\\u002F)",
                member(param)
            )));
        }
        Ok(path.to_string())
    }

    pub fn int(&self, name: &str, min: i64, max: i64) -> Result<Option<i64>, IamError> {
        let Some(v) = self.opt(name) else {
            return Ok(None);
        };
        match v.parse::<i64>() {
            Ok(n) if n < min => Err(IamError::validation(format!(
                "1 validation error detected: Value '{n}' at '{}' failed to satisfy constraint: Member must have value greater than or equal to {min}",
                member(name)
            ))),
            Ok(n) if n > max => Err(IamError::validation(format!(
                "1 validation error detected: Value '{n}' at '{}' failed to satisfy constraint: Member must have value less than or equal to {max}",
                member(name)
            ))),
            Ok(n) => Ok(Some(n)),
            Err(_) => Err(IamError::validation(format!(
                "1 validation error detected: Value '{v}' at '{}' failed to satisfy constraint: Member must be a number",
                member(name)
            ))),
        }
    }

    pub fn bool(&self, name: &str) -> bool {
        self.opt(name)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// A list parameter: `Name.member.1`, `Name.member.2`, … in index order.
    pub fn list(&self, name: &str) -> Vec<String> {
        let prefix = format!("{name}.member.");
        let mut items: Vec<(u32, String)> = self
            .0
            .iter()
            .filter_map(|(k, v)| {
                let i = k.strip_prefix(&prefix)?.parse::<u32>().ok()?;
                Some((i, v.clone()))
            })
            .collect();
        items.sort_by_key(|(i, _)| *i);
        items.into_iter().map(|(_, v)| v).collect()
    }

    /// `Tags.member.N.Key` / `.Value`, validated as IAM does (at most 50, keys 1–128, values
    /// up to 256, no `aws:` prefix, no duplicate keys).
    pub fn tags(&self) -> Result<Vec<(String, String)>, IamError> {
        let mut by_index: std::collections::BTreeMap<u32, (Option<String>, Option<String>)> =
            Default::default();
        for (k, v) in self.0 {
            let Some(rest) = k.strip_prefix("Tags.member.") else {
                continue;
            };
            let Some((i, field)) = rest.split_once('.') else {
                continue;
            };
            let Ok(i) = i.parse::<u32>() else { continue };
            let entry = by_index.entry(i).or_default();
            match field {
                "Key" => entry.0 = Some(v.clone()),
                "Value" => entry.1 = Some(v.clone()),
                _ => {}
            }
        }
        let mut tags: Vec<(String, String)> = Vec::new();
        for (_, (k, v)) in by_index {
            let (Some(k), v) = (k, v) else {
                return Err(IamError::validation(
                    "1 validation error detected: Value null at 'tags.member.key' failed to satisfy constraint: Member must not be null",
                ));
            };
            let v = v.unwrap_or_default();
            check_tag(&k, &v)?;
            if tags.iter().any(|(key, _)| *key == k) {
                return Err(IamError::invalid_input(
                    "Duplicate tag keys found. Please note that Tag keys are case insensitive.",
                ));
            }
            tags.push((k, v));
        }
        if tags.len() > 50 {
            return Err(IamError::limit_exceeded(
                "The number of tags has reached the maximum limit.",
            ));
        }
        Ok(tags)
    }
}

pub fn check_name(param: &str, value: &str, max: usize) -> Result<(), IamError> {
    let len = value.chars().count();
    if len > max {
        return Err(IamError::validation(format!(
            "1 validation error detected: Value '{value}' at '{}' failed to satisfy constraint: Member must have length less than or equal to {max}",
            member(param)
        )));
    }
    let ok = len >= 1
        && value
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || "+=,.@-".contains(c));
    if !ok {
        return Err(IamError::validation(format!(
            "1 validation error detected: Value '{value}' at '{}' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]+",
            member(param)
        )));
    }
    Ok(())
}

fn check_tag(key: &str, value: &str) -> Result<(), IamError> {
    let allowed = |c: char| c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c);
    if key.is_empty() || key.chars().count() > 128 || !key.chars().all(allowed) {
        return Err(IamError::validation(format!(
            "1 validation error detected: Value '{key}' at 'tags.1.member.key' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\p{{L}}\\p{{Z}}\\p{{N}}_.:/=+\\-@]+"
        )));
    }
    if value.chars().count() > 256 || !value.chars().all(allowed) {
        return Err(IamError::validation(format!(
            "1 validation error detected: Value '{value}' at 'tags.1.member.value' failed to satisfy constraint: Member must have length less than or equal to 256"
        )));
    }
    if key.to_ascii_lowercase().starts_with("aws:") {
        return Err(IamError::invalid_input(
            "User-defined tag keys can't start with 'aws:'. This prefix is reserved for AWS tags.",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn names_are_checked_with_iams_messages() {
        assert!(check_name("RoleName", "AmazonEKSFargatePodExecutionRole", 64).is_ok());
        assert!(check_name("RoleName", "a+=,.@-_1", 64).is_ok());
        let long = "r".repeat(65);
        let e = check_name("RoleName", &long, 64).unwrap_err();
        assert_eq!(e.code, "ValidationError");
        assert_eq!(
            e.message,
            format!(
                "1 validation error detected: Value '{long}' at 'roleName' failed to satisfy constraint: Member must have length less than or equal to 64"
            )
        );
        assert!(
            check_name("PolicyName", "a b", 128)
                .unwrap_err()
                .message
                .contains("at 'policyName'")
        );
        assert!(check_name("RoleName", "", 64).is_err());
    }

    #[test]
    fn lists_tags_and_paths() {
        let q = pairs(&[
            ("ClientIDList.member.2", "b"),
            ("ClientIDList.member.1", "a"),
            ("Tags.member.1.Key", "team"),
            ("Tags.member.1.Value", "x"),
            ("Tags.member.2.Key", "empty"),
            ("Path", "/team/"),
        ]);
        let p = Params(&q, "arn:aws:iam::000000000000:user/me");
        assert_eq!(p.list("ClientIDList"), ["a", "b"]);
        assert_eq!(
            p.tags().unwrap(),
            [
                ("team".to_string(), "x".to_string()),
                ("empty".to_string(), String::new())
            ]
        );
        assert_eq!(p.path("Path").unwrap(), "/team/");
        let bad = pairs(&[("Path", "team")]);
        assert!(Params(&bad, "").path("Path").is_err());
        let reserved = pairs(&[("Tags.member.1.Key", "aws:x"), ("Tags.member.1.Value", "v")]);
        assert_eq!(
            Params(&reserved, "").tags().unwrap_err().code,
            "InvalidInput"
        );
        let dup = pairs(&[
            ("Tags.member.1.Key", "k"),
            ("Tags.member.1.Value", "1"),
            ("Tags.member.2.Key", "k"),
            ("Tags.member.2.Value", "2"),
        ]);
        assert!(Params(&dup, "").tags().is_err());
    }
}
