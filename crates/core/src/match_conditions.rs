//! Admission webhooks' `matchConditions`: CEL expressions over the request, compiled once and
//! evaluated as kube-apiserver's `matchconditions` matcher does
//! (k8s.io/apiserver/pkg/admission/plugin/webhook/matchconditions).
//!
//! The interpreter is the `cel` crate (cel-rust), the maintained CEL implementation for Rust:
//! it parses and evaluates the CEL of cel-go (macros, the standard functions, and the
//! `strings`, `lists` and `math` extensions Kubernetes enables), with no C++ or Go toolchain.
//! It has no type checker, so what cel-go refuses when compiling by types (`1 + 'a'`, a
//! condition that is not a bool) is found here only when evaluated; names other than the
//! declared variables are refused when compiling, as cel-go's checker does.
//!
//! The variables are upstream's: `object`, `oldObject` (null when the request has none) and
//! `request` (the `AdmissionRequest` without its objects). `authorizer` is declared but not
//! available here: an expression that uses it fails when evaluated, and the webhook's
//! `failurePolicy` decides.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use cel::common::ast::{EntryExpr, Expr};
use cel::{Context, Env, IdedExpr, Program};
use serde_json::Value;

/// The variables a webhook's conditions may name.
pub const VARIABLES: &[&str] = &["object", "oldObject", "request", "authorizer"];

fn env() -> Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Env::stdlib();
        // The extension libraries kube-apiserver's CEL environment has and cel-rust implements.
        for ext in [
            cel::extensions::strings as fn(&mut Env) -> _,
            cel::extensions::lists,
            cel::extensions::math,
        ] {
            // Only a clash with a function already declared fails; the functions stay.
            let _ = env.add_extension(ext);
        }
        Arc::new(env)
    })
    .clone()
}

/// Every free name an expression uses (not its comprehensions' own variables), in order.
fn free_names(e: &IdedExpr, bound: &mut Vec<String>, out: &mut Vec<String>) {
    match &e.expr {
        Expr::Ident(name) => {
            if !name.starts_with('@')
                && !bound.iter().any(|b| b == name)
                && !out.iter().any(|n| n == name)
            {
                out.push(name.clone());
            }
        }
        Expr::Call(call) => {
            if let Some(t) = &call.target {
                free_names(t, bound, out);
            }
            for a in &call.args {
                free_names(a, bound, out);
            }
        }
        Expr::Comprehension(c) => {
            free_names(&c.iter_range, bound, out);
            let before = bound.len();
            bound.push(c.iter_var.clone());
            if let Some(v) = &c.iter_var2 {
                bound.push(v.clone());
            }
            bound.push(c.accu_var.clone());
            for part in [&c.accu_init, &c.loop_cond, &c.loop_step, &c.result] {
                free_names(part, bound, out);
            }
            bound.truncate(before);
        }
        Expr::List(l) => {
            for x in &l.elements {
                free_names(x, bound, out);
            }
        }
        Expr::Map(m) => {
            for entry in &m.entries {
                match &entry.expr {
                    EntryExpr::StructField(f) => free_names(&f.value, bound, out),
                    EntryExpr::MapEntry(me) => {
                        free_names(&me.key, bound, out);
                        free_names(&me.value, bound, out);
                    }
                }
            }
        }
        Expr::Select(s) => free_names(&s.operand, bound, out),
        Expr::Struct(s) => {
            for entry in &s.entries {
                match &entry.expr {
                    EntryExpr::StructField(f) => free_names(&f.value, bound, out),
                    EntryExpr::MapEntry(me) => {
                        free_names(&me.key, bound, out);
                        free_names(&me.value, bound, out);
                    }
                }
            }
        }
        Expr::Literal(_) | Expr::Unspecified => {}
    }
}

/// Where `name` is first written as a whole identifier in `source`: 1-based line and column,
/// as cel-go reports them.
fn position_of(source: &str, name: &str) -> (usize, usize) {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut from = 0;
    while let Some(found) = source[from..].find(name) {
        let at = from + found;
        let before = source[..at].chars().next_back();
        let after = source[at + name.len()..].chars().next();
        if !before.is_some_and(|c| is_ident(c) || c == '.') && !after.is_some_and(is_ident) {
            let line = source[..at].matches('\n').count() + 1;
            let line_start = source[..at].rfind('\n').map_or(0, |i| i + 1);
            return (line, source[line_start..at].chars().count() + 1);
        }
        from = at + name.len();
    }
    (1, 1)
}

/// Compile one condition's expression; `Err` is upstream's message (`compilation failed: …`).
pub fn compile(expression: &str) -> Result<Program, String> {
    let program = env()
        .compile(expression)
        .map_err(|e| format!("compilation failed: {e}"))?;
    let mut names = Vec::new();
    free_names(program.expression(), &mut Vec::new(), &mut names);
    // Type names and the standard functions' identifiers are not variables.
    let known: HashSet<&str> = VARIABLES
        .iter()
        .copied()
        .chain([
            "int",
            "uint",
            "double",
            "bool",
            "string",
            "bytes",
            "list",
            "map",
            "null_type",
            "type",
            "dyn",
        ])
        .collect();
    if let Some(name) = names.into_iter().find(|n| !known.contains(n.as_str())) {
        let (line, column) = position_of(expression, &name);
        // cel-go's issue: the message, then the line and a caret under the column.
        let text = expression.lines().nth(line - 1).unwrap_or_default();
        return Err(format!(
            "compilation failed: ERROR: <input>:{line}:{column}: undeclared reference to '{name}' (in container '')\n | {text}\n | {}^",
            ".".repeat(column - 1)
        ));
    }
    Ok(program)
}

/// One compiled condition.
#[derive(Debug)]
pub struct MatchCondition {
    pub name: String,
    pub expression: String,
    program: Result<Program, String>,
}

/// A webhook's conditions, compiled when its configuration is read.
#[derive(Debug, Default)]
pub struct MatchConditions {
    conditions: Vec<MatchCondition>,
}

/// What the conditions say of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// All true (or no conditions): the webhook is called.
    Match,
    /// This condition is false: the webhook is not called.
    Excluded(String),
    /// None false, and these failed: the failure policy decides.
    Error(String),
}

impl MatchConditions {
    /// Read a webhook's `matchConditions` (a JSON list of `{name, expression}`).
    pub fn from_json(v: &Value) -> Self {
        let conditions = v
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                let expression = c["expression"].as_str().unwrap_or_default().to_string();
                MatchCondition {
                    name: c["name"].as_str().unwrap_or_default().to_string(),
                    program: compile(&expression),
                    expression,
                }
            })
            .collect();
        MatchConditions { conditions }
    }

    pub fn is_empty(&self) -> bool {
        self.conditions.is_empty()
    }

    /// Evaluate every condition: one false excludes the request whatever the others did; else
    /// the errors, joined as upstream's aggregate is.
    pub fn evaluate(&self, object: &Value, old_object: &Value, request: &Value) -> Outcome {
        if self.conditions.is_empty() {
            return Outcome::Match;
        }
        let mut context = Context::with_env(env());
        let mut errors = Vec::new();
        for (name, value) in [
            ("object", object),
            ("oldObject", old_object),
            ("request", request),
        ] {
            if let Err(e) = context.add_variable(name, value) {
                errors.push(format!("variable {name} could not be read: {e}"));
            }
        }
        if !errors.is_empty() {
            return Outcome::Error(aggregate(errors));
        }
        for c in &self.conditions {
            let program = match &c.program {
                Ok(p) => p,
                Err(e) => {
                    errors.push(e.clone());
                    continue;
                }
            };
            if program.references().has_variable("authorizer") {
                errors.push(format!(
                    "expression '{}' resulted in error: the authorizer variable is not available in localfargate",
                    c.expression
                ));
                continue;
            }
            match program.execute(&context) {
                Ok(cel::Value::Bool(false)) => return Outcome::Excluded(c.name.clone()),
                // Upstream skips only on `false`: any other value lets the call happen.
                Ok(_) => {}
                Err(e) => errors.push(format!(
                    "expression '{}' resulted in error: {e}",
                    c.expression
                )),
            }
        }
        if errors.is_empty() {
            Outcome::Match
        } else {
            Outcome::Error(aggregate(errors))
        }
    }
}

/// `utilerrors.NewAggregate(...).Error()`: one message alone, several in brackets.
fn aggregate(errors: Vec<String>) -> String {
    if errors.len() == 1 {
        errors.into_iter().next().unwrap_or_default()
    } else {
        format!("[{}]", errors.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conditions(list: Value) -> MatchConditions {
        MatchConditions::from_json(&list)
    }

    #[test]
    fn all_true_match_and_one_false_excludes() {
        let c = conditions(json!([
            {"name": "is-pod", "expression": "request.resource.resource == 'pods'"},
            {"name": "labelled", "expression": "has(object.metadata.labels) && 'hook' in object.metadata.labels"},
        ]));
        let req = json!({"resource": {"group": "", "version": "v1", "resource": "pods"}});
        let with = json!({"metadata": {"name": "a", "labels": {"hook": "yes"}}});
        let without = json!({"metadata": {"name": "b"}});
        assert_eq!(c.evaluate(&with, &Value::Null, &req), Outcome::Match);
        assert_eq!(
            c.evaluate(&without, &Value::Null, &req),
            Outcome::Excluded("labelled".into())
        );
    }

    #[test]
    fn false_wins_over_an_error_and_errors_aggregate() {
        let c = conditions(json!([
            {"name": "boom", "expression": "object.spec.missing == 1"},
            {"name": "no", "expression": "false"},
        ]));
        let obj = json!({"spec": {}});
        assert_eq!(
            c.evaluate(&obj, &Value::Null, &json!({})),
            Outcome::Excluded("no".into())
        );
        let c = conditions(json!([
            {"name": "boom", "expression": "object.spec.missing == 1"},
            {"name": "yes", "expression": "true"},
        ]));
        match c.evaluate(&obj, &Value::Null, &json!({})) {
            Outcome::Error(m) => assert!(
                m.starts_with("expression 'object.spec.missing == 1' resulted in error: "),
                "{m}"
            ),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn old_object_is_null_on_create_and_comprehensions_bind_their_variables() {
        let c = conditions(json!([
            {"name": "create", "expression": "oldObject == null"},
            {"name": "images", "expression": "object.spec.containers.all(c, c.image.startsWith('busybox'))"},
        ]));
        let pod = json!({"spec": {"containers": [{"image": "busybox:1"}, {"image": "busybox:2"}]}});
        assert_eq!(c.evaluate(&pod, &Value::Null, &json!({})), Outcome::Match);
        assert_eq!(
            c.evaluate(&pod, &json!({"spec": {}}), &json!({})),
            Outcome::Excluded("create".into())
        );
    }

    #[test]
    fn compile_refuses_syntax_and_undeclared_names() {
        let e = compile("object.metadata.name ==").unwrap_err();
        assert!(
            e.starts_with("compilation failed: ERROR: <input>:1:"),
            "{e}"
        );
        let e = compile("foo == 1").unwrap_err();
        assert_eq!(
            e,
            "compilation failed: ERROR: <input>:1:1: undeclared reference to 'foo' (in container '')\n | foo == 1\n | ^"
        );
        let e = compile("object.x == 1 &&\n  bar").unwrap_err();
        assert!(
            e.ends_with(
                "<input>:2:3: undeclared reference to 'bar' (in container '')\n |   bar\n | ..^"
            ),
            "{e}"
        );
        assert!(compile("object.spec.containers.exists(c, c.name == 'x')").is_ok());
    }

    #[test]
    fn the_authorizer_is_an_evaluation_error() {
        let c = conditions(json!([
            {"name": "authz", "expression": "authorizer.group('').resource('pods').check('get').allowed()"},
        ]));
        match c.evaluate(&json!({}), &Value::Null, &json!({})) {
            Outcome::Error(m) => assert!(m.contains("authorizer"), "{m}"),
            other => panic!("expected an error, got {other:?}"),
        }
    }
}
