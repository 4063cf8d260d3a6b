//! What EKS checks of the roles it is given, with `up --iam strict`: the role must exist in this
//! account's IAM and its trust policy must let the EKS service principal assume it. Without the
//! flag any well-formed role ARN is accepted, as before (nothing is looked up).

use localfargate_core::iam_policy::{self, Kind};

use crate::AppState;
use crate::error::ApiError;
use crate::iam;

/// The service principal a cluster's role must trust.
pub const CLUSTER_SERVICE: &str = "eks.amazonaws.com";
/// The service principal a Fargate profile's pod execution role must trust.
pub const FARGATE_SERVICE: &str = "eks-fargate-pods.amazonaws.com";

/// Whether `role_arn` names an existing role of this account trusting `service`.
fn trusted(state: &AppState, role_arn: &str, service: &str) -> Result<Option<bool>, ApiError> {
    let parts: Vec<&str> = role_arn.splitn(6, ':').collect();
    let ["arn", _, "iam", "", account, resource] = parts[..] else {
        return Ok(None);
    };
    let Some(path_name) = resource.strip_prefix("role/") else {
        return Ok(None);
    };
    if account != state.config.account_id {
        return Ok(None);
    }
    let name = path_name.rsplit('/').next().unwrap_or(path_name);
    let role = localfargate_store::transaction(state.store.as_ref(), |tx| {
        iam::load_role(tx, name).map_err(|e| ApiError::server(e.message))
    })?;
    let Some((role, _)) = role.filter(|(r, _)| r.arn == role_arn) else {
        return Ok(None);
    };
    Ok(Some(
        iam_policy::parse(&role.assume_role_policy, Kind::Trust)
            .is_ok_and(|doc| doc.trusts_service(service)),
    ))
}

/// CreateCluster's `roleArn`, under `--iam strict`.
pub fn cluster_role(state: &AppState, role_arn: &str) -> Result<(), ApiError> {
    if !state.config.iam_strict {
        return Ok(());
    }
    match trusted(state, role_arn, CLUSTER_SERVICE)? {
        Some(true) => Ok(()),
        _ => Err(ApiError::invalid_parameter(format!(
            "Role with arn: {role_arn}, could not be assumed because it does not exist or the trusted entity is not correct"
        ))),
    }
}

/// CreateFargateProfile's `podExecutionRoleArn`, under `--iam strict`.
pub fn pod_execution_role(state: &AppState, role_arn: &str) -> Result<(), ApiError> {
    if !state.config.iam_strict {
        return Ok(());
    }
    match trusted(state, role_arn, FARGATE_SERVICE)? {
        Some(true) => Ok(()),
        Some(false) => Err(ApiError::invalid_parameter(
            "Misconfigured PodExecutionRole Trust Policy; Please add the eks-fargate-pods.amazonaws.com Service Principal",
        )),
        None => Err(ApiError::invalid_parameter(format!(
            "Role with arn: {role_arn}, could not be assumed because it does not exist or the trusted entity is not correct"
        ))),
    }
}
