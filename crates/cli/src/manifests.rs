//! Kubernetes manifests from files and directories, reduced to the workloads `plan` places.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job, JobSpec};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod, PodTemplateSpec};
use localfargate_core::admission::ClaimState;
use localfargate_core::plan::Workload;
use serde::Serialize;
use serde_yaml::{Mapping, Value};

use crate::yaml::{self, Document, InputError};

/// An object `plan` does not place.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub kind: String,
    pub name: String,
    pub source: String,
}

#[derive(Default)]
pub struct Manifests {
    pub workloads: Vec<Workload>,
    pub skipped: Vec<Skipped>,
    /// PVCs and PVs found in the inputs, to check what pods mount.
    claims: Vec<PersistentVolumeClaim>,
    volumes: Vec<PersistentVolume>,
    storage_classes: Vec<String>,
}

impl Manifests {
    /// What the inputs say about each claim; claims not in the inputs are left out (unknown).
    pub fn claims(&self) -> BTreeMap<(String, String), ClaimState> {
        self.claims
            .iter()
            .filter_map(|pvc| {
                let ns = pvc.metadata.namespace.clone()?;
                let name = pvc.metadata.name.clone()?;
                let state = self.binding(pvc, &ns, &name);
                Some(((ns, name), state))
            })
            .collect()
    }

    /// The volume a claim binds to, as Kubernetes binds it: the one it names, else one whose
    /// `claimRef` names it, else one of its storage class. A claim whose class is a StorageClass in
    /// the inputs and that no volume satisfies would need dynamic provisioning, which Fargate does
    /// not have: it stays unbound. Anything else is not decidable from the inputs.
    fn binding(&self, pvc: &PersistentVolumeClaim, ns: &str, name: &str) -> ClaimState {
        let spec = pvc.spec.as_ref();
        let class = spec
            .and_then(|s| s.storage_class_name.as_deref())
            .unwrap_or("");
        let pv_name = |pv: &PersistentVolume| pv.metadata.name.clone().unwrap_or_default();
        let bound = |pv: &PersistentVolume| ClaimState::Bound {
            volume: pv_name(pv),
            csi_driver: pv
                .spec
                .as_ref()
                .and_then(|s| s.csi.as_ref())
                .map(|c| c.driver.clone()),
        };
        if let Some(volume) = spec
            .and_then(|s| s.volume_name.as_deref())
            .filter(|v| !v.is_empty())
        {
            return match self.volumes.iter().find(|pv| pv_name(pv) == volume) {
                Some(pv) => bound(pv),
                None => ClaimState::Unknown,
            };
        }
        let claim_ref = |pv: &&PersistentVolume| {
            pv.spec
                .as_ref()
                .and_then(|s| s.claim_ref.as_ref())
                .is_some_and(|r| {
                    r.name.as_deref() == Some(name)
                        && r.namespace.as_deref().unwrap_or("default") == ns
                })
        };
        if let Some(pv) = self.volumes.iter().find(claim_ref) {
            return bound(pv);
        }
        let same_class = |pv: &&PersistentVolume| {
            let s = pv.spec.as_ref();
            s.and_then(|s| s.claim_ref.as_ref()).is_none()
                && s.and_then(|s| s.storage_class_name.as_deref())
                    .unwrap_or("")
                    == class
        };
        if let Some(pv) = self.volumes.iter().find(same_class) {
            return bound(pv);
        }
        if !class.is_empty() && self.storage_classes.iter().any(|c| c == class) {
            return ClaimState::NotBound;
        }
        ClaimState::Unknown
    }
}

/// Files under the given paths: files as given, directories walked for .yaml, .yml and .json in
/// name order, `-` for standard input.
pub fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, InputError> {
    let mut out = Vec::new();
    for path in paths {
        if path == Path::new("-") || path.is_file() {
            out.push(path.clone());
        } else if path.is_dir() {
            walk(path, &mut out)?;
        } else {
            return Err(InputError::at(path, None, "no such file or directory"));
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), InputError> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| InputError::at(dir, None, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for entry in entries {
        // A symlinked directory could lead back up the tree: only real directories are walked.
        let is_link = std::fs::symlink_metadata(&entry).is_ok_and(|m| m.file_type().is_symlink());
        if entry.is_dir() && !is_link {
            walk(&entry, out)?;
        } else if matches!(
            entry.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(entry);
        }
    }
    Ok(())
}

/// Read every workload from the files. `default_namespace` stands in where a manifest has none.
/// Files are parsed on all cores; the result keeps the order the files were given in.
pub fn load(paths: &[PathBuf], default_namespace: &str) -> Result<Manifests, InputError> {
    let files = expand(paths)?;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(files.len())
        .max(1);
    let chunk = files.len().div_ceil(threads).max(1);
    let parts: Vec<Result<Manifests, InputError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|files| scope.spawn(move || load_files(files, default_namespace)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(InputError("a manifest reader failed".to_string())))
            })
            .collect()
    });
    let mut all = Manifests::default();
    for part in parts {
        let part = part?;
        all.workloads.extend(part.workloads);
        all.skipped.extend(part.skipped);
        all.claims.extend(part.claims);
        all.volumes.extend(part.volumes);
        all.storage_classes.extend(part.storage_classes);
    }
    Ok(all)
}

fn load_files(files: &[PathBuf], default_namespace: &str) -> Result<Manifests, InputError> {
    let mut manifests = Manifests::default();
    for path in files {
        let text = yaml::read(path)?;
        for doc in yaml::documents(path, &text)? {
            add_object(&mut manifests, path, doc, default_namespace)?;
        }
    }
    Ok(manifests)
}

/// How deeply `List`s may nest; real inputs nest one deep at most.
const MAX_LIST_DEPTH: usize = 8;

fn add_object(
    m: &mut Manifests,
    path: &Path,
    doc: Document,
    default_ns: &str,
) -> Result<(), InputError> {
    add_nested(m, path, doc, default_ns, 0)
}

fn add_nested(
    m: &mut Manifests,
    path: &Path,
    mut doc: Document,
    default_ns: &str,
    depth: usize,
) -> Result<(), InputError> {
    let Value::Mapping(map) = &doc.value else {
        return Err(InputError::at(
            path,
            Some(doc.line),
            "expected a Kubernetes object (a mapping with kind)",
        ));
    };
    let kind = str_field(map, "kind").unwrap_or_default();
    if kind.is_empty() {
        return Err(InputError::at(path, Some(doc.line), "object has no kind"));
    }
    let is_list = kind == "List"
        || (kind.ends_with("List") && matches!(map.get("items"), Some(Value::Sequence(_))));
    if is_list {
        if depth >= MAX_LIST_DEPTH {
            return Err(InputError::at(
                path,
                Some(doc.line),
                format!("{kind} nested more than {MAX_LIST_DEPTH} deep"),
            ));
        }
        let items = match map.get("items") {
            Some(Value::Sequence(items)) => items.clone(),
            None | Some(Value::Null) => Vec::new(),
            Some(_) => {
                return Err(InputError::at(
                    path,
                    Some(doc.line),
                    format!("{kind}: items must be a list"),
                ));
            }
        };
        for item in items {
            add_nested(
                m,
                path,
                Document {
                    value: item,
                    line: doc.line,
                },
                default_ns,
                depth + 1,
            )?;
        }
        return Ok(());
    }
    // Any kind, before it is decoded as its type: the name its messages give, as written.
    let name = map
        .get("metadata")
        .and_then(|md| md.get("name").or_else(|| md.get("generateName")))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let label = format!(
        "{kind} {}",
        if name.is_empty() { "(unnamed)" } else { &name }
    );
    quantities_as_strings(&mut doc.value);
    let source = format!("{}:{}", path.display(), doc.line);
    let namespaced = |ns: Option<String>| ns.unwrap_or_else(|| default_ns.to_string());
    let replicas = |r: Option<i32>| r.unwrap_or(1).max(0) as u32;
    // Each kind gives its namespace, the pods it runs at once, its pod template and, for Jobs,
    // ttlSecondsAfterFinished.
    let (namespace, replicas, pod, job_ttl) = match kind.as_str() {
        "Pod" => {
            let pod: Pod = yaml::typed(path, doc, &label)?;
            (pod.metadata.namespace.clone(), 1, pod, None)
        }
        "Deployment" => {
            let d: Deployment = yaml::typed(path, doc, &label)?;
            let s = d.spec.unwrap_or_default();
            (
                d.metadata.namespace,
                replicas(s.replicas),
                pod_from(Some(s.template)),
                None,
            )
        }
        "ReplicaSet" => {
            let d: ReplicaSet = yaml::typed(path, doc, &label)?;
            let s = d.spec.unwrap_or_default();
            (
                d.metadata.namespace,
                replicas(s.replicas),
                pod_from(s.template),
                None,
            )
        }
        "StatefulSet" => {
            let d: StatefulSet = yaml::typed(path, doc, &label)?;
            let s = d.spec.unwrap_or_default();
            (
                d.metadata.namespace,
                replicas(s.replicas),
                pod_from(Some(s.template)),
                None,
            )
        }
        "DaemonSet" => {
            let d: DaemonSet = yaml::typed(path, doc, &label)?;
            // Counted per node by the planner.
            let template = d.spec.map(|s| s.template);
            (d.metadata.namespace, 0, pod_from(template), None)
        }
        "Job" => {
            let j: Job = yaml::typed(path, doc, &label)?;
            let s = j.spec.unwrap_or_default();
            let (n, ttl) = job_shape(&s);
            (
                j.metadata.namespace,
                n,
                pod_from(Some(s.template)),
                Some(ttl),
            )
        }
        "CronJob" => {
            let c: CronJob = yaml::typed(path, doc, &label)?;
            let s = c
                .spec
                .unwrap_or_default()
                .job_template
                .spec
                .unwrap_or_default();
            let (n, ttl) = job_shape(&s);
            (
                c.metadata.namespace,
                n,
                pod_from(Some(s.template)),
                Some(ttl),
            )
        }
        "PersistentVolumeClaim" => {
            let mut pvc: PersistentVolumeClaim = yaml::typed(path, doc, &label)?;
            pvc.metadata.namespace = Some(namespaced(pvc.metadata.namespace.take()));
            m.claims.push(pvc);
            return Ok(());
        }
        "StorageClass" => {
            m.storage_classes.push(name);
            return Ok(());
        }
        "PersistentVolume" => {
            m.volumes.push(yaml::typed(path, doc, &label)?);
            return Ok(());
        }
        _ => {
            m.skipped.push(Skipped { kind, name, source });
            return Ok(());
        }
    };
    m.workloads.push(Workload {
        kind,
        namespace: namespaced(namespace),
        name,
        replicas,
        pod,
        job_ttl,
    });
    Ok(())
}

/// Pods a Job runs at once, and its ttlSecondsAfterFinished.
fn job_shape(spec: &JobSpec) -> (u32, Option<i32>) {
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let running = match spec.completions {
        Some(c) => parallelism.min(c.max(0)),
        None => parallelism,
    };
    (running as u32, spec.ttl_seconds_after_finished)
}

fn pod_from(template: Option<PodTemplateSpec>) -> Pod {
    let template = template.unwrap_or_default();
    Pod {
        metadata: template.metadata.unwrap_or_default(),
        spec: template.spec,
        status: None,
    }
}

fn str_field(map: &Mapping, key: &str) -> Option<String> {
    map.get(key).and_then(Value::as_str).map(str::to_string)
}

/// Kubernetes accepts `cpu: 1` and `memory: 1.5` as quantities; the typed model wants strings.
/// Numbers in resource maps (requests, limits, overhead, capacity, sizeLimit) become strings.
fn quantities_as_strings(value: &mut Value) {
    match value {
        Value::Mapping(map) => {
            for (key, child) in map.iter_mut() {
                let key = key.as_str().unwrap_or("");
                if matches!(
                    key,
                    "requests" | "limits" | "overhead" | "capacity" | "hard"
                ) && let Value::Mapping(resources) = child
                {
                    for (_, q) in resources.iter_mut() {
                        number_to_string(q);
                    }
                } else if key == "sizeLimit" || key == "storage" {
                    number_to_string(child);
                } else {
                    quantities_as_strings(child);
                }
            }
        }
        Value::Sequence(items) => items.iter_mut().for_each(quantities_as_strings),
        _ => {}
    }
}

fn number_to_string(v: &mut Value) {
    if let Value::Number(n) = v {
        *v = Value::String(n.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifests, String> {
        let mut m = Manifests::default();
        for doc in yaml::documents(Path::new("t.yaml"), text).map_err(|e| e.to_string())? {
            add_object(&mut m, Path::new("t.yaml"), doc, "default").map_err(|e| e.to_string())?;
        }
        Ok(m)
    }

    #[test]
    fn workloads_lists_and_skipped_kinds() {
        let m = parse(
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: apps/v1\n  kind: Deployment\n  metadata: {name: web, namespace: prod}\n  spec:\n    replicas: 3\n    selector: {matchLabels: {app: web}}\n    template:\n      metadata: {labels: {app: web}}\n      spec:\n        containers:\n        - name: app\n          image: nginx\n          resources: {requests: {cpu: 1, memory: 1.5Gi}}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web}\n---\napiVersion: batch/v1\nkind: CronJob\nmetadata: {name: nightly}\nspec:\n  schedule: '0 0 * * *'\n  jobTemplate:\n    spec:\n      parallelism: 4\n      completions: 2\n      template:\n        spec:\n          restartPolicy: Never\n          containers: [{name: c, image: x}]\n",
        )
        .unwrap();
        assert_eq!(m.workloads.len(), 2);
        let web = &m.workloads[0];
        assert_eq!(
            (
                web.kind.as_str(),
                web.namespace.as_str(),
                web.name.as_str(),
                web.replicas
            ),
            ("Deployment", "prod", "web", 3)
        );
        let cpu = &web.pod.spec.as_ref().unwrap().containers[0]
            .resources
            .as_ref()
            .unwrap()
            .requests
            .as_ref()
            .unwrap()["cpu"];
        assert_eq!(cpu.0, "1", "numeric quantities become strings");
        let cron = &m.workloads[1];
        assert_eq!(
            (cron.namespace.as_str(), cron.replicas, cron.job_ttl),
            ("default", 2, Some(None))
        );
        assert_eq!(m.skipped.len(), 1);
        assert_eq!(m.skipped[0].kind, "Service");
        assert_eq!(m.skipped[0].source, "t.yaml:18");
    }

    #[test]
    fn typed_errors_name_line_and_field() {
        let err = parse("kind: Service\nmetadata: {name: a}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: two\n  selector: {}\n  template: {}\n")
            .err()
            .unwrap();
        assert!(err.starts_with("t.yaml:4: Deployment web: spec.replicas: invalid type: string \"two\", expected i32"), "{err}");
        let err = parse("- 1\n- 2\n").err().unwrap();
        assert_eq!(
            err,
            "t.yaml:1: expected a Kubernetes object (a mapping with kind)"
        );
        let err = parse("metadata: {name: x}\n").err().unwrap();
        assert_eq!(err, "t.yaml:1: object has no kind");
    }

    #[test]
    fn claims_from_the_inputs() {
        let m = parse("kind: PersistentVolumeClaim\nmetadata: {name: efs, namespace: a}\nspec: {volumeName: pv-efs}\n---\nkind: PersistentVolume\nmetadata: {name: pv-efs}\nspec: {csi: {driver: efs.csi.aws.com, volumeHandle: fs-1}}\n---\nkind: PersistentVolumeClaim\nmetadata: {name: dyn}\nspec: {storageClassName: gp2, resources: {requests: {storage: 5Gi}}}\n").unwrap();
        let claims = m.claims();
        assert_eq!(
            claims[&("a".to_string(), "efs".to_string())],
            ClaimState::Bound {
                volume: "pv-efs".into(),
                csi_driver: Some("efs.csi.aws.com".into())
            }
        );
        assert_eq!(
            claims[&("default".to_string(), "dyn".to_string())],
            ClaimState::Unknown,
            "no volume or StorageClass in the inputs says how it binds"
        );
    }
}
