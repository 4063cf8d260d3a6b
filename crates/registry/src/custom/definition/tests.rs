use localfargate_core::validation::{FieldError, invalid_message};
use serde_json::{Value, json};

use super::{
    default_crd, is_established, prepare_crd_for_create, prepare_crd_for_update, validate_crd,
    validate_crd_status_update, validate_crd_update,
};

fn messages(errors: &[FieldError]) -> Vec<String> {
    errors.iter().map(FieldError::message).collect()
}

fn cron_tab_schema() -> Value {
    json!({
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {
            "cronSpec": {"type": "string"},
            "image": {"type": "string"},
            "replicas": {"type": "integer"}
        }}}
    })
}

/// The CronTab CustomResourceDefinition of the Kubernetes documentation.
fn cron_tab() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "crontabs.stable.example.com"},
        "spec": {
            "group": "stable.example.com",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": cron_tab_schema()}
            }],
            "scope": "Namespaced",
            "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab", "shortNames": ["ct"]}
        }
    })
}

fn defaulted(mut crd: Value) -> Value {
    default_crd(&mut crd);
    crd
}

fn errors_of(crd: Value) -> Vec<String> {
    messages(&validate_crd(&defaulted(crd)))
}

#[test]
fn defaults_fill_singular_list_kind_conversion_and_webhook_port() {
    let mut crd = cron_tab();
    crd["spec"]["names"] = json!({"plural": "crontabs", "kind": "CronTab"});
    default_crd(&mut crd);
    assert_eq!(crd["spec"]["names"]["singular"], "crontab");
    assert_eq!(crd["spec"]["names"]["listKind"], "CronTabList");
    assert_eq!(crd["spec"]["conversion"], json!({"strategy": "None"}));

    let mut webhook = cron_tab();
    webhook["spec"]["conversion"] = json!({"strategy": "Webhook", "webhook": {
        "clientConfig": {"service": {"name": "conv", "namespace": "default"}},
        "conversionReviewVersions": ["v1"]
    }});
    default_crd(&mut webhook);
    assert_eq!(
        webhook["spec"]["conversion"]["webhook"]["clientConfig"]["service"]["port"],
        443
    );
    assert!(
        validate_crd(&webhook).is_empty(),
        "{:?}",
        messages(&validate_crd(&webhook))
    );
}

#[test]
fn the_documentations_cron_tab_is_valid() {
    assert_eq!(errors_of(cron_tab()), Vec::<String>::new());
}

#[test]
fn the_name_must_be_plural_dot_group() {
    let mut crd = cron_tab();
    crd["metadata"]["name"] = json!("foos.stable.example.com");
    let errors = validate_crd(&defaulted(crd));
    assert_eq!(
        invalid_message(
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            "foos.stable.example.com",
            &errors
        ),
        r#"CustomResourceDefinition.apiextensions.k8s.io "foos.stable.example.com" is invalid: metadata.name: Invalid value: "foos.stable.example.com": must be spec.names.plural+"."+spec.group"#
    );
}

#[test]
fn group_scope_and_names_follow_upstreams_rules() {
    let mut crd = cron_tab();
    crd["metadata"]["name"] = json!("CronTabs.example");
    crd["spec"]["group"] = json!("example");
    crd["spec"]["scope"] = json!("Global");
    crd["spec"]["names"] = json!({"plural": "CronTabs", "kind": "Cron_Tab", "listKind": "Cron_Tab", "shortNames": ["c t"]});
    assert_eq!(
        errors_of(crd),
        [
            r#"metadata.name: Invalid value: "CronTabs.example": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"#,
            r#"spec.group: Invalid value: "example": should be a domain with at least one dot"#,
            r#"spec.scope: Unsupported value: "Global": supported values: "Cluster", "Namespaced""#,
            r#"spec.names.plural: Invalid value: "CronTabs": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"#,
            r#"spec.names.singular: Invalid value: "cron_tab": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"#,
            r#"spec.names.kind: Invalid value: "Cron_Tab": may have mixed case, but should otherwise match: a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"#,
            r#"spec.names.listKind: Invalid value: "Cron_Tab": may have mixed case, but should otherwise match: a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"#,
            r#"spec.names.shortNames[0]: Invalid value: "c t": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"#,
            r#"spec.names.listKind: Invalid value: "Cron_Tab": kind and listKind may not be the same"#,
        ]
    );
    let mut missing = cron_tab();
    missing["spec"]["group"] = json!("");
    missing["spec"]["scope"] = json!("");
    missing["metadata"]["name"] = json!("crontabs.");
    assert_eq!(
        errors_of(missing)[1..],
        ["spec.group: Required value", "spec.scope: Required value"]
    );
}

#[test]
fn exactly_one_storage_version_printed_as_go_prints_the_versions() {
    let mut crd = cron_tab();
    crd["spec"]["versions"] = json!([
        {"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": cron_tab_schema()}},
        {"name": "v2", "served": true, "storage": true, "schema": {"openAPIV3Schema": cron_tab_schema()}}
    ]);
    assert_eq!(
        errors_of(crd),
        [concat!(
            "spec.versions: Invalid value: []apiextensions.CustomResourceDefinitionVersion{",
            r#"apiextensions.CustomResourceDefinitionVersion{Name:"v1", Served:true, Storage:true, Deprecated:false, DeprecationWarning:(*string)(nil), Schema:(*apiextensions.CustomResourceValidation)(nil), Subresources:(*apiextensions.CustomResourceSubresources)(nil), AdditionalPrinterColumns:[]apiextensions.CustomResourceColumnDefinition(nil), SelectableFields:[]apiextensions.SelectableField(nil)}, "#,
            r#"apiextensions.CustomResourceDefinitionVersion{Name:"v2", Served:true, Storage:true, Deprecated:false, DeprecationWarning:(*string)(nil), Schema:(*apiextensions.CustomResourceValidation)(nil), Subresources:(*apiextensions.CustomResourceSubresources)(nil), AdditionalPrinterColumns:[]apiextensions.CustomResourceColumnDefinition(nil), SelectableFields:[]apiextensions.SelectableField(nil)}}"#,
            ": must have exactly one version marked as storage version"
        )]
    );
    let mut duplicate = cron_tab();
    duplicate["spec"]["versions"] = json!([
        {"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": cron_tab_schema()}},
        {"name": "v1", "served": true, "storage": false, "schema": {"openAPIV3Schema": cron_tab_schema()}}
    ]);
    let errors = errors_of(duplicate);
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].ends_with(": must contain unique version names"),
        "{errors:?}"
    );
}

#[test]
fn schemas_are_required_and_must_be_structural() {
    let mut crd = cron_tab();
    crd["spec"]["versions"][0]
        .as_object_mut()
        .unwrap()
        .remove("schema");
    assert_eq!(
        errors_of(crd),
        ["spec.versions[0].schema.openAPIV3Schema: Required value: schemas are required"]
    );
    // One version (or all alike): reported where the internal form holds it, spec.validation.
    let mut untyped = cron_tab();
    untyped["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        .as_object_mut()
        .unwrap()
        .remove("type");
    assert_eq!(
        errors_of(untyped),
        [
            "spec.validation.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields"
        ]
    );
    // Versions that differ are reported each at its own path.
    let mut two = cron_tab();
    two["spec"]["versions"] = json!([
        {"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": cron_tab_schema()}},
        {"name": "v2", "served": true, "storage": false, "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {}}}}}
    ]);
    assert_eq!(
        errors_of(two),
        [
            "spec.versions[1].schema.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields"
        ]
    );
}

#[test]
fn subresources_printer_columns_and_status_root_rules() {
    let mut crd = cron_tab();
    crd["spec"]["versions"][0]["subresources"] = json!({
        "status": {},
        "scale": {"specReplicasPath": ".status.replicas", "statusReplicasPath": "status.replicas", "labelSelectorPath": ".metadata.labels"}
    });
    crd["spec"]["versions"][0]["additionalPrinterColumns"] = json!([
        {"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"},
        {"name": "Age", "type": "time", "format": "duration"},
        {"type": "integer", "jsonPath": "spec.replicas"}
    ]);
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["minProperties"] = json!(1);
    assert_eq!(
        errors_of(crd),
        [
            r#"spec.validation.openAPIV3Schema: Invalid value: apiextensions.JSONSchemaProps{…}: only [Description Type Format Title Maximum ExclusiveMaximum Minimum ExclusiveMinimum MaxLength MinLength Pattern MaxItems MinItems UniqueItems MultipleOf Required Items Properties ExternalDocs Example XPreserveUnknownFields XValidations] fields are allowed at the root of the schema if the status subresource is enabled"#,
            r#"spec.subresources.scale.specReplicasPath: Invalid value: ".status.replicas": should be a json path under .spec"#,
            r#"spec.subresources.scale.statusReplicasPath: Invalid value: "status.replicas": must be a simple json path starting with ."#,
            r#"spec.subresources.scale.labelSelectorPath: Invalid value: ".metadata.labels": should be a json path under either .spec or .status"#,
            r#"spec.additionalPrinterColumns[1].type: Invalid value: "time": must be one of boolean,date,integer,number,string"#,
            r#"spec.additionalPrinterColumns[1].format: Invalid value: "duration": must be one of byte,date,date-time,double,float,int32,int64,password"#,
            "spec.additionalPrinterColumns[1].JSONPath: Required value",
            "spec.additionalPrinterColumns[2].name: Required value",
            r#"spec.additionalPrinterColumns[2].JSONPath: Invalid value: "spec.replicas": must be a simple json path starting with ."#,
        ]
    );
    let mut scale = cron_tab();
    scale["spec"]["versions"][0]["subresources"] = json!({"scale": {}});
    assert_eq!(
        errors_of(scale),
        [
            "spec.subresources.scale.specReplicasPath: Required value",
            "spec.subresources.scale.statusReplicasPath: Required value",
        ]
    );
}

#[test]
fn conversion_webhooks_need_a_client_config_and_review_versions() {
    let mut crd = cron_tab();
    crd["spec"]["conversion"] = json!({"strategy": "Webhook"});
    assert_eq!(
        errors_of(crd),
        [
            "spec.conversion.webhookClientConfig: Required value: required when strategy is set to Webhook",
            "spec.conversion.conversionReviewVersions: Required value",
        ]
    );
    let mut url = cron_tab();
    url["spec"]["conversion"] = json!({"strategy": "Webhook", "webhook": {
        "clientConfig": {"url": "http://conv.example.com/convert?x=1"},
        "conversionReviewVersions": ["v2"]
    }});
    assert_eq!(
        errors_of(url),
        [
            r#"spec.conversion.webhookClientConfig.url: Invalid value: "http": 'https' is the only allowed URL scheme; desired format: https://host[/path]"#,
            r#"spec.conversion.webhookClientConfig.url: Invalid value: "x=1": query parameters are not permitted in the URL"#,
            r#"spec.conversion.conversionReviewVersions: Invalid value: []string{"v2"}: must include at least one of v1, v1beta1"#,
        ]
    );
    let mut none = cron_tab();
    none["spec"]["conversion"] =
        json!({"strategy": "Magic", "webhook": {"conversionReviewVersions": ["v1"]}});
    assert_eq!(
        errors_of(none),
        [
            r#"spec.conversion.strategy: Unsupported value: "Magic": supported values: "None", "Webhook""#,
            "spec.conversion.conversionReviewVersions: Forbidden: should not be set when strategy is not set to Webhook",
        ]
    );
}

#[test]
fn protected_groups_need_api_approval_and_preserve_unknown_fields_stays_off() {
    let mut crd = cron_tab();
    crd["metadata"]["name"] = json!("crontabs.example.k8s.io");
    crd["spec"]["group"] = json!("example.k8s.io");
    crd["spec"]["preserveUnknownFields"] = json!(true);
    assert_eq!(
        errors_of(crd.clone()),
        [
            r#"metadata.annotations[api-approved.kubernetes.io]: Required value: protected groups must have approval annotation "api-approved.kubernetes.io", see https://github.com/kubernetes/enhancements/pull/1111"#,
            "spec.preserveUnknownFields: Invalid value: true: cannot set to true, set x-kubernetes-preserve-unknown-fields to true in spec.versions[*].schema instead",
        ]
    );
    crd["spec"]["preserveUnknownFields"] = json!(false);
    crd["metadata"]["annotations"] = json!({"api-approved.kubernetes.io": "https://github.com/kubernetes/kubernetes/pull/78458"});
    assert_eq!(errors_of(crd.clone()), Vec::<String>::new());
    crd["metadata"]["annotations"] = json!({"api-approved.kubernetes.io": "maybe"});
    assert_eq!(
        errors_of(crd),
        [
            r#"metadata.annotations[api-approved.kubernetes.io]: Invalid value: "maybe": protected groups must have approval annotation "api-approved.kubernetes.io" with either a URL or a reason starting with "unapproved", see https://github.com/kubernetes/enhancements/pull/1111"#
        ]
    );
}

#[test]
fn updates_keep_group_and_plural_and_once_established_scope_and_kind() {
    let mut old = defaulted(cron_tab());
    old["metadata"]["uid"] = json!("u1");
    let mut new = old.clone();
    new["spec"]["scope"] = json!("Cluster");
    new["spec"]["names"]["kind"] = json!("Tab");
    new["spec"]["names"]["listKind"] = json!("TabList");
    assert_eq!(
        messages(&validate_crd_update(&old, &new)),
        Vec::<String>::new()
    );

    old["status"] = json!({"conditions": [{"type": "Established", "status": "True"}], "storedVersions": ["v1"]});
    assert!(is_established(&old));
    new["status"] = old["status"].clone();
    new["spec"]["group"] = json!("other.example.com");
    assert_eq!(
        messages(&validate_crd_update(&old, &new)),
        [
            r#"spec.scope: Invalid value: "Cluster": field is immutable"#,
            r#"spec.names.kind: Invalid value: "Tab": field is immutable"#,
            r#"spec.group: Invalid value: "other.example.com": field is immutable"#,
        ]
    );

    // A stored version must stay in spec.versions.
    let mut renamed = old.clone();
    renamed["spec"]["versions"][0]["name"] = json!("v2");
    assert_eq!(
        messages(&validate_crd_update(&old, &renamed)),
        [
            r#"status.storedVersions: Invalid value: []string{"v1"}: must have the storage version v2"#,
            r#"status.storedVersions[0]: Invalid value: "v1": missing from spec.versions; v1 was previously a storage version, and must remain in spec.versions until a storage migration ensures no data remains persisted in v1 and removes v1 from status.storedVersions"#,
        ]
    );
}

#[test]
fn prepare_records_the_storage_version_and_keeps_the_stored_status() {
    let mut crd = cron_tab();
    crd["status"] = json!({"conditions": [{"type": "Established", "status": "True"}]});
    prepare_crd_for_create(&mut crd);
    assert_eq!(crd["status"], json!({"storedVersions": ["v1"]}));

    let mut old = crd.clone();
    old["status"]["conditions"] = json!([{"type": "Established", "status": "True"}]);
    let mut new = crd.clone();
    new["spec"]["versions"] = json!([
        {"name": "v1", "served": true, "storage": false, "schema": {"openAPIV3Schema": cron_tab_schema()}},
        {"name": "v2", "served": true, "storage": true, "schema": {"openAPIV3Schema": cron_tab_schema()}}
    ]);
    new["status"] = json!({"storedVersions": []});
    prepare_crd_for_update(&old, &mut new);
    assert_eq!(new["status"]["storedVersions"], json!(["v1", "v2"]));
    assert_eq!(new["status"]["conditions"], old["status"]["conditions"]);
    assert_eq!(
        messages(&validate_crd_update(&old, &defaulted(new))),
        Vec::<String>::new()
    );
}

#[test]
fn status_updates_check_accepted_names_only() {
    let old = defaulted(cron_tab());
    let mut new = old.clone();
    new["spec"]["group"] = json!("ignored on status writes");
    new["status"] = json!({"acceptedNames": {"plural": "Crontabs", "kind": "CronTab"}});
    assert_eq!(
        messages(&validate_crd_status_update(&old, &new)),
        [
            r#"status.acceptedNames.plural: Invalid value: "Crontabs": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"#
        ]
    );
}

#[test]
fn cel_rules_are_checked_for_shape_only() {
    let mut crd = cron_tab();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"] = json!([
        {"rule": "self.replicas <= 10", "message": "at most ten"},
        {"rule": " "},
        {"rule": "self.a == 1", "reason": "FieldValueGone", "fieldPath": " "}
    ]);
    assert_eq!(
        errors_of(crd),
        [
            "spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[1].rule: Required value: rule is not specified",
            r#"spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[2].reason: Unsupported value: "FieldValueGone": supported values: "FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired""#,
            r#"spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[2].fieldPath: Invalid value: " ": fieldPath must be non-empty if specified"#,
        ]
    );
}

#[test]
fn a_status_subresource_limits_the_root_schema() {
    let mut crd = cron_tab();
    crd["spec"]["versions"][0]["subresources"] = json!({"status": {}});
    // Allowed at the root: description, properties, required, preserve-unknown-fields.
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["description"] = json!("CronTab");
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["required"] = json!([]);
    assert_eq!(errors_of(crd.clone()), Vec::<String>::new());
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["type"] = json!("array");
    assert_eq!(
        errors_of(crd)[0],
        r#"spec.validation.openAPIV3Schema.type: Invalid value: "array": only "object" is allowed as the type at the root of the schema if the status subresource is enabled"#
    );
}

#[test]
fn odd_names_and_missing_fields_are_errors_not_panics() {
    let mut crd = cron_tab();
    crd["metadata"] = json!({"generateName": "é-"});
    crd["spec"]["versions"] = json!([{"name": "v1", "storage": true, "schema": "not an object"}]);
    crd["spec"]["names"] = json!(null);
    let errors = errors_of(crd);
    assert!(
        errors.contains(&"spec.names.plural: Required value".to_string()),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("metadata.generateName: Invalid value: \"é-\"")),
        "{errors:?}"
    );
    assert_eq!(
        errors_of(json!({})),
        [
            "metadata.name: Required value: name or generateName is required",
            "spec.group: Required value",
            "spec.scope: Required value",
            "spec.versions: Invalid value: []apiextensions.CustomResourceDefinitionVersion(nil): must have exactly one version marked as storage version",
            "spec.names.plural: Required value",
            "spec.names.singular: Required value",
            "spec.names.kind: Required value",
            "spec.names.listKind: Required value",
        ]
    );
}
