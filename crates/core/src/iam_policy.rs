//! IAM policy documents: parsing and validating them as IAM does (with IAM's
//! `MalformedPolicyDocument` messages), and evaluating a role's trust policy for a request to
//! assume it (`sts:AssumeRole`, `sts:AssumeRoleWithWebIdentity`): principals (`AWS`, `Service`,
//! `Federated`, `*`), actions with wildcards, and the condition operators trust policies use
//! (`String*`, `Arn*`, `Bool`, `Null`, with `ForAnyValue:`/`ForAllValues:` and `…IfExists`).
//! Pure: what exists in the account is asked of the caller through a closure.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::glob::glob_match;

/// The only policy language version with every feature; `2008-10-17` is still accepted in trust
/// policies, as IAM does.
pub const VERSION: &str = "2012-10-17";
pub const LEGACY_VERSION: &str = "2008-10-17";

/// A document IAM refuses, with IAM's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

fn err<T>(message: impl Into<String>) -> Result<T, PolicyError> {
    Err(PolicyError(message.into()))
}

/// What a document is for: an identity policy (managed or inline) or a role's trust policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Identity,
    Trust,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// A statement's principals; `any` for `"*"` (or `{"AWS": "*"}`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Principals {
    pub any: bool,
    pub aws: Vec<String>,
    pub service: Vec<String>,
    pub federated: Vec<String>,
    pub canonical_user: Vec<String>,
}

/// One condition test: `operator` (`StringLike`), whether it is `IfExists`, its set qualifier, the
/// key and the values it allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub operator: String,
    pub if_exists: bool,
    pub set: SetQualifier,
    pub key: String,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetQualifier {
    Single,
    ForAnyValue,
    ForAllValues,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub effect: Effect,
    pub actions: Vec<String>,
    pub not_actions: Vec<String>,
    pub principal: Option<Principals>,
    pub not_principal: Option<Principals>,
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDocument {
    pub version: Option<String>,
    pub statements: Vec<Statement>,
}

const OPERATORS: [&str; 18] = [
    "StringEquals",
    "StringNotEquals",
    "StringEqualsIgnoreCase",
    "StringNotEqualsIgnoreCase",
    "StringLike",
    "StringNotLike",
    "ArnEquals",
    "ArnNotEquals",
    "ArnLike",
    "ArnNotLike",
    "Bool",
    "Null",
    "NumericEquals",
    "NumericNotEquals",
    "NumericLessThan",
    "NumericLessThanEquals",
    "NumericGreaterThan",
    "NumericGreaterThanEquals",
];
const DATE_OPERATORS: [&str; 6] = [
    "DateEquals",
    "DateNotEquals",
    "DateLessThan",
    "DateLessThanEquals",
    "DateGreaterThan",
    "DateGreaterThanEquals",
];
const OTHER_OPERATORS: [&str; 4] = [
    "IpAddress",
    "NotIpAddress",
    "BinaryEquals",
    "BinaryNotEquals",
];

/// Parses and validates `text` as a `kind` policy, with IAM's messages.
pub fn parse(text: &str, kind: Kind) -> Result<PolicyDocument, PolicyError> {
    let syntax = || {
        PolicyError(match kind {
            Kind::Identity => "Syntax errors in policy.".to_string(),
            Kind::Trust => "This policy contains invalid Json".to_string(),
        })
    };
    let value: Value = serde_json::from_str(text).map_err(|_| syntax())?;
    let Value::Object(doc) = value else {
        return Err(syntax());
    };
    let syntax_errors = || PolicyError("Syntax errors in policy.".to_string());
    for key in doc.keys() {
        if !matches!(key.as_str(), "Version" | "Id" | "Statement") {
            return match kind {
                Kind::Identity => Err(syntax_errors()),
                Kind::Trust => err(format!("Has prohibited field {key}")),
            };
        }
    }
    let version = match doc.get("Version") {
        None => None,
        Some(Value::String(v)) if v == VERSION || v == LEGACY_VERSION => Some(v.clone()),
        Some(_) => return Err(syntax_errors()),
    };
    if kind == Kind::Identity && version.as_deref() != Some(VERSION) {
        return err("Policy document must be version 2012-10-17 or greater.");
    }
    if doc.get("Id").is_some_and(|id| !id.is_string()) {
        return Err(syntax_errors());
    }
    let raw: Vec<&Value> = match doc.get("Statement") {
        Some(Value::Array(items)) if !items.is_empty() => items.iter().collect(),
        Some(v @ Value::Object(_)) => vec![v],
        Some(_) => return Err(syntax_errors()),
        None => {
            return match kind {
                Kind::Identity => Err(syntax_errors()),
                Kind::Trust => err("Missing required field Statement"),
            };
        }
    };
    let statements = raw
        .into_iter()
        .map(|s| statement(s, kind))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(PolicyDocument {
        version,
        statements,
    })
}

fn strings(value: &Value) -> Result<Vec<String>, PolicyError> {
    match value {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                _ => err("Syntax errors in policy."),
            })
            .collect(),
        _ => err("Syntax errors in policy."),
    }
}

fn statement(value: &Value, kind: Kind) -> Result<Statement, PolicyError> {
    let Value::Object(s) = value else {
        return err("Syntax errors in policy.");
    };
    const FIELDS: [&str; 9] = [
        "Sid",
        "Effect",
        "Action",
        "NotAction",
        "Resource",
        "NotResource",
        "Principal",
        "NotPrincipal",
        "Condition",
    ];
    for key in s.keys() {
        if !FIELDS.contains(&key.as_str()) {
            return err("Syntax errors in policy.");
        }
    }
    if kind == Kind::Trust {
        for prohibited in ["Resource", "NotResource"] {
            if s.contains_key(prohibited) {
                return err(format!("Has prohibited field {prohibited}"));
            }
        }
    }
    if s.get("Sid").is_some_and(|v| !v.is_string()) {
        return err("Syntax errors in policy.");
    }
    let effect = match s.get("Effect") {
        Some(Value::String(e)) if e == "Allow" => Effect::Allow,
        Some(Value::String(e)) if e == "Deny" => Effect::Deny,
        None if kind == Kind::Trust => return err("Missing required field Effect"),
        _ => return err("Syntax errors in policy."),
    };
    if s.contains_key("Action") && s.contains_key("NotAction") {
        return err("Syntax errors in policy.");
    }
    let actions = s
        .get("Action")
        .map(strings)
        .transpose()?
        .unwrap_or_default();
    let not_actions = s
        .get("NotAction")
        .map(strings)
        .transpose()?
        .unwrap_or_default();
    if actions.is_empty() && not_actions.is_empty() {
        return match kind {
            Kind::Identity => err("Policy statement must contain actions."),
            Kind::Trust => err("Missing required field Action"),
        };
    }
    for action in actions.iter().chain(&not_actions) {
        check_action(action)?;
    }
    let principal = s.get("Principal").map(principals).transpose()?;
    let not_principal = s.get("NotPrincipal").map(principals).transpose()?;
    match kind {
        Kind::Identity => {
            if principal.is_some() || not_principal.is_some() {
                return err("Policy document should not specify a principal.");
            }
            if s.contains_key("Resource") && s.contains_key("NotResource") {
                return err("Syntax errors in policy.");
            }
            let resources = s
                .get("Resource")
                .or_else(|| s.get("NotResource"))
                .map(strings)
                .transpose()?
                .unwrap_or_default();
            if resources.is_empty() {
                return err("Policy statement must contain resources.");
            }
            for r in &resources {
                if r != "*" && !r.starts_with("arn:") {
                    return err(format!("Resource {r} must be in ARN format or \"*\"."));
                }
            }
        }
        Kind::Trust => {
            if principal.is_none() && not_principal.is_none() {
                return err("Missing required field Principal");
            }
        }
    }
    let conditions = match s.get("Condition") {
        None => Vec::new(),
        Some(Value::Object(c)) => conditions(c)?,
        Some(_) => return err("Syntax errors in policy."),
    };
    Ok(Statement {
        effect,
        actions,
        not_actions,
        principal,
        not_principal,
        conditions,
    })
}

fn check_action(action: &str) -> Result<(), PolicyError> {
    if action == "*" {
        return Ok(());
    }
    let Some((vendor, _)) = action.split_once(':') else {
        return err("Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.");
    };
    if action.matches(':').count() > 1 {
        return err("Actions/Condition can contain only one colon.");
    }
    if vendor.is_empty()
        || !vendor
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'*')
    {
        return err(format!("Vendor {vendor} is not valid"));
    }
    Ok(())
}

fn principals(value: &Value) -> Result<Principals, PolicyError> {
    let mut p = Principals::default();
    match value {
        Value::String(s) if s == "*" => p.any = true,
        Value::Object(map) => {
            for (kind, v) in map {
                let values = strings(v)?;
                let target = match kind.as_str() {
                    "AWS" => &mut p.aws,
                    "Service" => &mut p.service,
                    "Federated" => &mut p.federated,
                    "CanonicalUser" => &mut p.canonical_user,
                    _ => {
                        return err(format!("Invalid principal in policy: \"{kind}\""));
                    }
                };
                if kind == "AWS" && values.iter().any(|v| v == "*") {
                    p.any = true;
                }
                target.extend(values);
            }
        }
        _ => return err("Syntax errors in policy."),
    }
    Ok(p)
}

fn conditions(block: &Map<String, Value>) -> Result<Vec<Condition>, PolicyError> {
    let mut out = Vec::new();
    for (op, tests) in block {
        let (set, rest) = if let Some(r) = op.strip_prefix("ForAnyValue:") {
            (SetQualifier::ForAnyValue, r)
        } else if let Some(r) = op.strip_prefix("ForAllValues:") {
            (SetQualifier::ForAllValues, r)
        } else {
            (SetQualifier::Single, op.as_str())
        };
        let (if_exists, base) = match rest.strip_suffix("IfExists") {
            Some(b) => (true, b),
            None => (false, rest),
        };
        let known = OPERATORS.contains(&base)
            || DATE_OPERATORS.contains(&base)
            || OTHER_OPERATORS.contains(&base);
        if !known {
            return err("Syntax errors in policy.");
        }
        let Value::Object(tests) = tests else {
            return err("Syntax errors in policy.");
        };
        for (key, values) in tests {
            let values = match values {
                Value::Bool(b) => vec![b.to_string()],
                Value::Number(n) => vec![n.to_string()],
                Value::Array(items) => items
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => Ok(s.clone()),
                        Value::Bool(b) => Ok(b.to_string()),
                        Value::Number(n) => Ok(n.to_string()),
                        _ => err("Syntax errors in policy."),
                    })
                    .collect::<Result<_, _>>()?,
                other => strings(other)?,
            };
            out.push(Condition {
                operator: base.to_string(),
                if_exists,
                set,
                key: key.clone(),
                values,
            });
        }
    }
    Ok(out)
}

impl PolicyDocument {
    /// Every principal the document names, as `(type, value)` (`("AWS", arn)`), for the caller
    /// to check they exist, as IAM does when it stores a trust policy.
    pub fn named_principals(&self) -> Vec<(&'static str, &str)> {
        let mut out = Vec::new();
        for s in &self.statements {
            for p in [&s.principal, &s.not_principal].into_iter().flatten() {
                out.extend(p.aws.iter().map(|v| ("AWS", v.as_str())));
                out.extend(p.service.iter().map(|v| ("Service", v.as_str())));
                out.extend(p.federated.iter().map(|v| ("Federated", v.as_str())));
            }
        }
        out
    }

    /// Whether the document allows `request`: some statement allows it and none denies it.
    pub fn allows(&self, request: &Request<'_>) -> bool {
        let applies = |s: &Statement| {
            action_matches(s, request.action)
                && principal_matches(s, &request.principal)
                && s.conditions.iter().all(|c| condition_holds(c, request))
        };
        let denied = self
            .statements
            .iter()
            .any(|s| s.effect == Effect::Deny && applies(s));
        !denied
            && self
                .statements
                .iter()
                .any(|s| s.effect == Effect::Allow && applies(s))
    }

    /// Whether some Allow statement names a service principal (the role "trusts" it) for
    /// `sts:AssumeRole`, whatever its conditions.
    pub fn trusts_service(&self, service: &str) -> bool {
        self.statements.iter().any(|s| {
            s.effect == Effect::Allow
                && action_matches(s, "sts:AssumeRole")
                && s.principal
                    .as_ref()
                    .is_some_and(|p| p.any || p.service.iter().any(|v| v == service))
        })
    }
}

/// Who asks to assume a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// An IAM user, role or assumed-role session (its ARN).
    Aws(String),
    /// An AWS service (`eks-fargate-pods.amazonaws.com`).
    Service(String),
    /// A federated identity: the IAM OIDC provider's ARN.
    Federated(String),
}

/// A request to evaluate: the principal, the action (`sts:AssumeRole`) and the request context
/// (`aws:SourceArn`, `oidc.example.com/id/X:sub`, …), keys compared case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    pub principal: Principal,
    pub action: &'a str,
    pub context: BTreeMap<String, Vec<String>>,
}

impl<'a> Request<'a> {
    pub fn new(principal: Principal, action: &'a str) -> Self {
        Request {
            principal,
            action,
            context: BTreeMap::new(),
        }
    }

    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.context
            .entry(key.to_ascii_lowercase())
            .or_default()
            .push(value.to_string());
        self
    }
}

fn action_matches(s: &Statement, action: &str) -> bool {
    let m =
        |pattern: &String| glob_match(&pattern.to_ascii_lowercase(), &action.to_ascii_lowercase());
    if s.not_actions.is_empty() {
        s.actions.iter().any(m)
    } else {
        !s.not_actions.iter().any(m)
    }
}

/// The account of an ARN or of a bare 12-digit account id.
fn account_of(p: &str) -> Option<&str> {
    if p.len() == 12 && p.bytes().all(|b| b.is_ascii_digit()) {
        return Some(p);
    }
    p.split(':').nth(4)
}

fn aws_principal_matches(pattern: &str, caller: &str) -> bool {
    if pattern == "*" || pattern == caller {
        return true;
    }
    // The account (`123456789012` or `arn:aws:iam::123456789012:root`) trusts its principals.
    let is_account = pattern.len() == 12 && pattern.bytes().all(|b| b.is_ascii_digit())
        || pattern.ends_with(":root");
    if is_account {
        return account_of(pattern).is_some() && account_of(pattern) == account_of(caller);
    }
    // A role trusts its own sessions: `arn:aws:iam::A:role/R` names `arn:aws:sts::A:assumed-role/R/S`.
    if let Some((prefix, role)) = pattern.split_once(":role/") {
        let role_name = role.rsplit('/').next().unwrap_or(role);
        let session_prefix = format!(
            "{}:assumed-role/{role_name}/",
            prefix.replacen(":iam:", ":sts:", 1)
        );
        return caller.starts_with(&session_prefix);
    }
    false
}

fn principal_matches(s: &Statement, caller: &Principal) -> bool {
    let matches = |p: &Principals| {
        if p.any {
            return true;
        }
        match caller {
            Principal::Aws(arn) => p.aws.iter().any(|x| aws_principal_matches(x, arn)),
            Principal::Service(name) => p.service.iter().any(|x| x == name),
            Principal::Federated(arn) => p.federated.iter().any(|x| x == arn),
        }
    };
    match (&s.principal, &s.not_principal) {
        (Some(p), _) => matches(p),
        (None, Some(np)) => !matches(np),
        // Identity policies name no principal: they apply to whoever holds them.
        (None, None) => true,
    }
}

fn value_matches(operator: &str, pattern: &str, value: &str) -> bool {
    match operator {
        "StringEquals" | "StringNotEquals" | "ArnEquals" | "ArnNotEquals" => pattern == value,
        "StringEqualsIgnoreCase" | "StringNotEqualsIgnoreCase" => {
            pattern.eq_ignore_ascii_case(value)
        }
        "StringLike" | "StringNotLike" => glob_match(pattern, value),
        "ArnLike" | "ArnNotLike" => arn_like(pattern, value),
        "Bool" => pattern.eq_ignore_ascii_case(value),
        op if op.starts_with("Numeric") => {
            let (Ok(a), Ok(b)) = (value.parse::<f64>(), pattern.parse::<f64>()) else {
                return false;
            };
            match op {
                "NumericEquals" => a == b,
                "NumericNotEquals" => a != b,
                "NumericLessThan" => a < b,
                "NumericLessThanEquals" => a <= b,
                "NumericGreaterThan" => a > b,
                "NumericGreaterThanEquals" => a >= b,
                _ => false,
            }
        }
        _ => false,
    }
}

/// ARNs compare component by component (six of them), each with wildcards.
fn arn_like(pattern: &str, value: &str) -> bool {
    let p: Vec<&str> = pattern.splitn(6, ':').collect();
    let v: Vec<&str> = value.splitn(6, ':').collect();
    p.len() == 6 && v.len() == 6 && p.iter().zip(&v).all(|(p, v)| glob_match(p, v))
}

fn negated(operator: &str) -> bool {
    operator.contains("Not") && operator != "Null"
}

fn condition_holds(c: &Condition, request: &Request<'_>) -> bool {
    let present = request.context.get(&c.key.to_ascii_lowercase());
    if c.operator == "Null" {
        let want_absent = c.values.iter().any(|v| v.eq_ignore_ascii_case("true"));
        return present.is_none() == want_absent;
    }
    let Some(values) = present.filter(|v| !v.is_empty()) else {
        // A missing key: IfExists passes; ForAllValues over nothing is true; the rest fail
        // (a negated operator on a missing key matches, as IAM evaluates it).
        return c.if_exists || c.set == SetQualifier::ForAllValues || negated(&c.operator);
    };
    let one = |value: &str| {
        let any = c
            .values
            .iter()
            .any(|p| value_matches(&c.operator, p, value));
        if negated(&c.operator) { !any } else { any }
    };
    match c.set {
        SetQualifier::Single | SetQualifier::ForAnyValue => values.iter().any(|v| one(v)),
        SetQualifier::ForAllValues => values.iter().all(|v| one(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trust(doc: &str) -> PolicyDocument {
        parse(doc, Kind::Trust).unwrap()
    }

    #[test]
    fn identity_policies_are_refused_with_iams_messages() {
        let msg = |d: &str| parse(d, Kind::Identity).unwrap_err().0;
        assert_eq!(msg("not json"), "Syntax errors in policy.");
        assert_eq!(
            msg(r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}}"#),
            "Policy document must be version 2012-10-17 or greater."
        );
        assert_eq!(
            msg(r#"{"Version":"2012-10-17"}"#),
            "Syntax errors in policy."
        );
        assert_eq!(
            msg(r#"{"Version":"2012-10-17","Statement":[]}"#),
            "Syntax errors in policy."
        );
        assert_eq!(
            msg(r#"{"Version":"2012-10-17","Statement":{"Action":"s3:*","Resource":"*"}}"#),
            "Syntax errors in policy."
        );
        assert_eq!(
            msg(
                r#"{"Version":"2012-10-17","Statement":{"Effect":"Maybe","Action":"s3:*","Resource":"*"}}"#
            ),
            "Syntax errors in policy."
        );
        assert_eq!(
            msg(r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Resource":"*"}}"#),
            "Policy statement must contain actions."
        );
        assert_eq!(
            msg(
                r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject"}}"#
            ),
            "Policy statement must contain resources."
        );
        assert_eq!(
            msg(
                r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"get","Resource":"*"}}"#
            ),
            "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."
        );
        assert_eq!(
            msg(
                r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:Get","Resource":"bucket"}}"#
            ),
            "Resource bucket must be in ARN format or \"*\"."
        );
        assert_eq!(
            msg(
                r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":"*","Action":"s3:Get","Resource":"*"}}"#
            ),
            "Policy document should not specify a principal."
        );
        assert!(
            parse(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ecr:GetAuthorizationToken","ecr:BatchGetImage"],"Resource":"*"}]}"#,
                Kind::Identity
            )
            .is_ok()
        );
    }

    #[test]
    fn trust_policies_are_refused_with_iams_messages() {
        let msg = |d: &str| parse(d, Kind::Trust).unwrap_err().0;
        assert_eq!(msg("{"), "This policy contains invalid Json");
        assert_eq!(
            msg(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole"}]}"#
            ),
            "Missing required field Principal"
        );
        assert_eq!(
            msg(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"eks.amazonaws.com"},"Action":"sts:AssumeRole","Resource":"*"}]}"#
            ),
            "Has prohibited field Resource"
        );
        assert_eq!(
            msg(
                r#"{"Version":"2012-10-17","Statement":[{"Principal":{"Service":"eks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#
            ),
            "Missing required field Effect"
        );
        assert_eq!(
            msg(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Robot":"x"},"Action":"sts:AssumeRole"}]}"#
            ),
            "Invalid principal in policy: \"Robot\""
        );
    }

    #[test]
    fn service_principals_and_actions() {
        let d = trust(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":["eks-fargate-pods.amazonaws.com"]},"Action":"sts:AssumeRole"}]}"#,
        );
        assert!(d.trusts_service("eks-fargate-pods.amazonaws.com"));
        assert!(!d.trusts_service("eks.amazonaws.com"));
        let svc = Principal::Service("eks-fargate-pods.amazonaws.com".into());
        assert!(d.allows(&Request::new(svc.clone(), "sts:AssumeRole")));
        assert!(!d.allows(&Request::new(svc, "sts:TagSession")));
    }

    #[test]
    fn aws_principals_accounts_roles_and_sessions() {
        let d = trust(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::111122223333:root","arn:aws:iam::444455556666:role/ci"]},"Action":"sts:*"}]}"#,
        );
        let ask = |arn: &str| d.allows(&Request::new(Principal::Aws(arn.into()), "sts:AssumeRole"));
        assert!(ask("arn:aws:iam::111122223333:user/alice"));
        assert!(ask("arn:aws:sts::111122223333:assumed-role/x/y"));
        assert!(ask("arn:aws:sts::444455556666:assumed-role/ci/build-7"));
        assert!(!ask("arn:aws:iam::444455556666:user/bob"));
        assert!(!ask("arn:aws:sts::444455556666:assumed-role/cid/s"));
        let bare = trust(
            r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"sts:AssumeRole"}]}"#,
        );
        assert!(bare.allows(&Request::new(
            Principal::Aws("arn:aws:iam::111122223333:user/a".into()),
            "sts:AssumeRole"
        )));
    }

    #[test]
    fn irsa_conditions_on_sub_and_aud() {
        let issuer = "oidc.eks.us-east-1.amazonaws.com/id/ABC";
        let provider = format!("arn:aws:iam::111122223333:oidc-provider/{issuer}");
        let d = trust(&format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"Federated":"{provider}"}},"Action":"sts:AssumeRoleWithWebIdentity","Condition":{{"StringEquals":{{"{issuer}:sub":"system:serviceaccount:jobs:processor","{issuer}:aud":"sts.amazonaws.com"}}}}}}]}}"#
        ));
        let req = |sub: &str| {
            Request::new(
                Principal::Federated(provider.clone()),
                "sts:AssumeRoleWithWebIdentity",
            )
            .with(&format!("{issuer}:sub"), sub)
            .with(&format!("{issuer}:aud"), "sts.amazonaws.com")
        };
        assert!(d.allows(&req("system:serviceaccount:jobs:processor")));
        assert!(!d.allows(&req("system:serviceaccount:jobs:other")));
        let wrong_provider = Request::new(
            Principal::Federated("arn:aws:iam::111122223333:oidc-provider/else".into()),
            "sts:AssumeRoleWithWebIdentity",
        );
        assert!(!d.allows(&wrong_provider));
    }

    #[test]
    fn like_if_exists_for_any_value_and_deny() {
        let d = trust(
            r#"{"Version":"2012-10-17","Statement":[
              {"Effect":"Allow","Principal":{"Service":"eks-fargate-pods.amazonaws.com"},"Action":"sts:AssumeRole",
               "Condition":{"ArnLike":{"aws:SourceArn":"arn:aws:eks:us-east-1:111122223333:fargateprofile/c1/*"},
                            "StringEqualsIfExists":{"aws:SourceAccount":"111122223333"},
                            "ForAnyValue:StringLike":{"aws:TagKeys":["team-*"]}}},
              {"Effect":"Deny","Principal":"*","Action":"sts:AssumeRole","Condition":{"StringEquals":{"aws:SourceAccount":"999999999999"}}}]}"#,
        );
        let base = || {
            Request::new(
                Principal::Service("eks-fargate-pods.amazonaws.com".into()),
                "sts:AssumeRole",
            )
            .with("aws:TagKeys", "other")
            .with("aws:TagKeys", "team-a")
        };
        let arn = "arn:aws:eks:us-east-1:111122223333:fargateprofile/c1/p1/abc";
        assert!(d.allows(&base().with("aws:SourceArn", arn)));
        assert!(
            d.allows(
                &base()
                    .with("AWS:SOURCEARN", arn)
                    .with("aws:SourceAccount", "111122223333")
            )
        );
        assert!(!d.allows(&base().with(
            "aws:SourceArn",
            "arn:aws:eks:us-east-1:111122223333:fargateprofile/c2/p/x"
        )));
        assert!(!d.allows(&base()));
        assert!(
            !d.allows(
                &base()
                    .with("aws:SourceArn", arn)
                    .with("aws:SourceAccount", "999999999999")
            )
        );
        let no_tags = Request::new(
            Principal::Service("eks-fargate-pods.amazonaws.com".into()),
            "sts:AssumeRole",
        )
        .with("aws:SourceArn", arn);
        assert!(!d.allows(&no_tags));
    }

    #[test]
    fn named_principals_are_listed_for_existence_checks() {
        let d = trust(
            r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::1:role/a","Service":"x.amazonaws.com","Federated":"arn:aws:iam::1:oidc-provider/i"},"Action":"sts:AssumeRole"}]}"#,
        );
        let mut names = d.named_principals();
        names.sort();
        assert_eq!(
            names,
            [
                ("AWS", "arn:aws:iam::1:role/a"),
                ("Federated", "arn:aws:iam::1:oidc-provider/i"),
                ("Service", "x.amazonaws.com")
            ]
        );
    }
}
