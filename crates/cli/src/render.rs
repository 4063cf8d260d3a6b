//! The three renderings of a plan: a table for terminals, JSON for programs, Markdown for
//! pull-request comments. The JSON shape is documented in docs/plan.md and kept stable.

use std::fmt::Write;

use localfargate_core::plan::{PlacementKind, Totals, WorkloadPlan};
use serde::Serialize;

use crate::manifests::Skipped;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub cluster: Option<String>,
    pub region: String,
    pub selection_rule: String,
    pub workloads: Vec<WorkloadPlan>,
    pub totals: Totals,
    pub skipped: Vec<Skipped>,
    /// About the inputs as a whole (profiles that are not ACTIVE, for one).
    pub warnings: Vec<String>,
}

pub fn json(report: &Report) -> String {
    // Serializing plain data with string keys cannot fail.
    serde_json::to_string_pretty(report).unwrap_or_default() + "\n"
}

fn usd(v: f64) -> String {
    if v == 0.0 {
        "-".to_string()
    } else if v < 1.0 {
        format!("{v:.5}")
    } else {
        format!("{v:.2}")
    }
}

fn target(w: &WorkloadPlan) -> String {
    match (&w.profile, &w.node_group) {
        (Some(p), _) => p.clone(),
        (None, Some(g)) => format!("nodegroup/{g}"),
        _ => "-".to_string(),
    }
}

fn size(w: &WorkloadPlan) -> String {
    w.capacity_provisioned
        .clone()
        .unwrap_or_else(|| "-".to_string())
}

fn totals_line(t: &Totals) -> String {
    let mut s = format!(
        "{} workloads, {} pods: {} on Fargate, {} on EC2, {} pending, {} refused. Fargate ${:.2}/month",
        t.workloads,
        t.pods,
        t.fargate_pods,
        t.ec2_pods,
        t.pending_pods,
        t.refused_pods,
        t.fargate_monthly_usd
    );
    if t.node_groups_monthly_usd > 0.0 {
        let _ = write!(
            s,
            ", node groups ${:.2}/month, total ${:.2}/month",
            t.node_groups_monthly_usd, t.monthly_usd
        );
    }
    s.push('.');
    s
}

pub fn table(report: &Report) -> String {
    let header = [
        "KIND",
        "NAMESPACE",
        "NAME",
        "REPLICAS",
        "PLACEMENT",
        "PROFILE",
        "SIZE",
        "$/HOUR",
        "$/MONTH",
    ];
    let rows: Vec<[String; 9]> = report
        .workloads
        .iter()
        .map(|w| {
            [
                w.kind.clone(),
                w.namespace.clone(),
                w.name.clone(),
                w.replicas.to_string(),
                w.placement.as_str().to_string(),
                target(w),
                size(w),
                usd(w.hourly_usd),
                usd(w.monthly_usd),
            ]
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else {
                let _ = write!(l, "{cell:<width$}   ", width = widths[i]);
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
    let mut details = String::new();
    for w in &report.workloads {
        if w.reasons.is_empty() && w.warnings.is_empty() {
            continue;
        }
        let _ = writeln!(
            details,
            "\n{} {}/{} ({}):",
            w.kind,
            w.namespace,
            w.name,
            w.placement.as_str()
        );
        for r in &w.reasons {
            let _ = writeln!(details, "  - {r}");
        }
        for warning in &w.warnings {
            let _ = writeln!(details, "  ! {warning}");
        }
    }
    out.push_str(&details);
    if !report.skipped.is_empty() {
        let skipped: Vec<String> = report
            .skipped
            .iter()
            .map(|s| format!("{} {}", s.kind, s.name))
            .collect();
        let _ = writeln!(out, "\nSkipped (not workloads): {}", skipped.join(", "));
    }
    for warning in &report.warnings {
        let _ = writeln!(out, "\n! {warning}");
    }
    let _ = writeln!(out, "\n{}", totals_line(&report.totals));
    out
}

/// Text safe inside a Markdown table cell or list item of a pull-request comment.
fn md_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '|' => out.push_str("\\|"),
            '`' => out.push_str("\\`"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\n' | '\r' => out.push(' '),
            other => out.push(other),
        }
    }
    out
}

pub fn markdown(report: &Report) -> String {
    let mut out = String::new();
    let cluster = report
        .cluster
        .as_deref()
        .map(|c| format!(" for cluster `{c}`"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "### localfargate plan{cluster}\n\nRegion `{}`, selection rule `{}`.\n",
        report.region, report.selection_rule
    );
    out.push_str("| Workload | Replicas | Placement | Profile / node group | Size | $/hour per replica | $/month |\n");
    out.push_str("|---|---:|---|---|---|---:|---:|\n");
    for w in &report.workloads {
        let placement = match w.placement {
            PlacementKind::Fargate | PlacementKind::Ec2 => w.placement.as_str().to_string(),
            other => format!("**{}**", other.as_str()),
        };
        let notes = if w.warnings.is_empty() {
            String::new()
        } else {
            format!(" ⚠️ {}", w.warnings.len())
        };
        let _ = writeln!(
            out,
            "| {} `{}/{}`{} | {} | {} | {} | {} | {} | {} |",
            w.kind,
            md_escape(&w.namespace),
            md_escape(&w.name),
            notes,
            w.replicas,
            placement,
            md_escape(&target(w)),
            size(w),
            usd(w.hourly_usd),
            usd(w.monthly_usd)
        );
    }
    let _ = writeln!(out, "\n{}", totals_line(&report.totals));
    let noted: Vec<&WorkloadPlan> = report
        .workloads
        .iter()
        .filter(|w| !w.warnings.is_empty() || w.placement != PlacementKind::Fargate)
        .collect();
    if !noted.is_empty() || !report.warnings.is_empty() {
        out.push_str("\n<details><summary>Why, and warnings</summary>\n\n");
        for w in noted {
            let _ = writeln!(
                out,
                "**{} `{}/{}`** ({})",
                w.kind,
                w.namespace,
                w.name,
                w.placement.as_str()
            );
            for r in &w.reasons {
                let _ = writeln!(out, "- {}", md_escape(r));
            }
            for warning in &w.warnings {
                let _ = writeln!(out, "- ⚠️ {}", md_escape(warning));
            }
            out.push('\n');
        }
        for warning in &report.warnings {
            let _ = writeln!(out, "- ⚠️ {}", md_escape(warning));
        }
        out.push_str("</details>\n");
    }
    out
}
