//! Fargate Spot is an ECS capacity provider: EKS does not support it (its Fargate page says
//! so). Configurations that ask for it — `capacityType: FARGATE_SPOT` on an eksctl Fargate
//! profile, or the `eks.amazonaws.com/fargate-capacity-type` pod annotation — get a warning
//! naming the field instead of being ignored silently; the pods run on on-demand Fargate.

use std::collections::BTreeMap;

/// The pod annotation some guides suggest for Fargate Spot; EKS ignores it.
pub const CAPACITY_TYPE_ANNOTATION: &str = "eks.amazonaws.com/fargate-capacity-type";

const NOT_SUPPORTED: &str =
    "EKS does not support Fargate Spot; pods on Fargate run on on-demand capacity";

/// The warning for a pod (or pod template) carrying the annotation, if it does.
pub fn annotation_warning(annotations: &BTreeMap<String, String>) -> Option<String> {
    annotations.get(CAPACITY_TYPE_ANNOTATION).map(|v| {
        format!(
            "metadata.annotations[{CAPACITY_TYPE_ANNOTATION}]: {v:?} is ignored: {NOT_SUPPORTED}"
        )
    })
}

/// The warning for an eksctl Fargate profile with a `capacityType`.
pub fn profile_warning(index: usize, profile: &str, capacity_type: &str) -> String {
    format!(
        "fargateProfiles[{index}].capacityType: {capacity_type:?} (profile {profile}) is ignored: {NOT_SUPPORTED}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_name_the_field() {
        let mut a = BTreeMap::new();
        assert_eq!(annotation_warning(&a), None);
        a.insert(CAPACITY_TYPE_ANNOTATION.to_string(), "SPOT".to_string());
        let w = annotation_warning(&a).unwrap();
        assert!(w.starts_with(
            "metadata.annotations[eks.amazonaws.com/fargate-capacity-type]: \"SPOT\""
        ));
        assert!(w.contains("EKS does not support Fargate Spot"));
        let w = profile_warning(1, "fp-spot", "FARGATE_SPOT");
        assert!(
            w.starts_with("fargateProfiles[1].capacityType: \"FARGATE_SPOT\" (profile fp-spot)")
        );
    }
}
