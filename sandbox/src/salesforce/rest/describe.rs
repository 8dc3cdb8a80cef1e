//! Metadata resources: `GET /services/data/` (versions), the version root, `/limits`,
//! `/sobjects` (describeGlobal), `/sobjects/{Obj}` and `/sobjects/{Obj}/describe`, all built
//! from the catalog so they agree with validation and Change Data Capture.
//! https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_sobject_describe.htm

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::super::meta::{FieldMeta, FieldType, ObjectMeta};
use super::super::server::SfState;
use super::super::store::Org;
use super::{CallCtx, Reply};

/// Release names by API version (reference §4).
fn release(v: u32) -> String {
    // v55 is Summer '22; then Winter, Spring, Summer, with Winter named after the next year.
    let k = v as i32 - 55;
    let season = ["Summer", "Winter", "Spring"][k.rem_euclid(3) as usize];
    let year = 22 + (k + 2).div_euclid(3);
    format!("{season} '{year}")
}

/// `GET /services/data/`: the versions this org serves (no session needed).
pub async fn versions(State(state): State<SfState>) -> Response {
    let lo = state.config.min_api_version as u32;
    let hi = state.config.max_api_version as u32;
    let list: Vec<Value> = (lo..=hi)
        .map(|v| {
            json!({"label": release(v), "url": format!("/services/data/v{v}.0"), "version": format!("{v}.0")})
        })
        .collect();
    let mut r = axum::Json(Value::Array(list)).into_response();
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    r
}

/// `GET /services/data/vNN.0/`: the resources of a version.
pub fn resources(call: &CallCtx) -> Reply {
    let base = format!("/services/data/v{}", call.version);
    let mut m = serde_json::Map::new();
    for r in ["composite", "limits", "query", "queryAll", "sobjects"] {
        m.insert(r.into(), json!(format!("{base}/{r}")));
    }
    Reply::json(200, Value::Object(m))
}

/// `GET /limits`: the daily API allocation as the org counts it.
pub fn limits(org: &Org) -> Reply {
    let (used, max) = org.api_usage();
    Reply::json(
        200,
        json!({
            "DailyApiRequests": {"Max": max, "Remaining": max.saturating_sub(used)},
            "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000},
            "DataStorageMB": {"Max": 1024, "Remaining": 1024},
        }),
    )
}

fn urls(call: &CallCtx, o: &ObjectMeta) -> Value {
    let base = format!("/services/data/v{}/sobjects/{}", call.version, o.name);
    json!({
        "sobject": base,
        "describe": format!("{base}/describe"),
        "rowTemplate": format!("{base}/{{ID}}"),
    })
}

fn object_summary(o: &ObjectMeta) -> serde_json::Map<String, Value> {
    let plural = if o.name == "Opportunity" {
        "Opportunities".to_string()
    } else if o.label.ends_with('s') {
        format!("{}es", o.label)
    } else {
        format!("{}s", o.label)
    };
    let mut m = serde_json::Map::new();
    for (k, v) in [
        ("name", json!(o.name)),
        ("label", json!(o.label)),
        ("labelPlural", json!(plural)),
        ("keyPrefix", json!(o.key_prefix)),
        ("custom", json!(o.custom)),
        ("createable", json!(true)),
        ("updateable", json!(true)),
        ("deletable", json!(true)),
        ("queryable", json!(true)),
    ] {
        m.insert(k.into(), v);
    }
    m
}

/// `GET /sobjects`.
pub fn global(org: &Org) -> Reply {
    let objects: Vec<Value> = org
        .catalog
        .iter()
        .map(|o| Value::Object(object_summary(o)))
        .collect();
    Reply::json(
        200,
        json!({"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": objects}),
    )
}

/// `GET /sobjects/{Obj}`: basic information.
pub fn basic(call: &CallCtx, o: &ObjectMeta) -> Reply {
    let mut summary = object_summary(o);
    summary.insert("urls".into(), urls(call, o));
    Reply::json(200, json!({"objectDescribe": summary, "recentItems": []}))
}

fn field_json(f: &FieldMeta) -> Value {
    let picklist: Vec<Value> = f
        .picklist_values
        .iter()
        .map(|v| json!({"active": true, "defaultValue": false, "label": v, "validFor": null, "value": v}))
        .collect();
    let reference_to: Vec<String> = match &f.ty {
        FieldType::Reference { to } => to.clone(),
        _ => Vec::new(),
    };
    let length = match f.ty {
        FieldType::Id => 18,
        FieldType::Reference { .. } => 18,
        _ => f.length.unwrap_or(0),
    };
    let nillable = !f.required && f.ty != FieldType::Boolean && f.ty != FieldType::Id;
    json!({
        "name": f.name,
        "label": f.label,
        "type": f.ty.describe_name(),
        "length": length,
        "custom": f.name.ends_with("__c"),
        "nillable": nillable,
        "createable": f.createable,
        "updateable": f.updateable,
        "externalId": f.external_id,
        "unique": f.unique,
        "idLookup": f.name == "Id" || f.external_id,
        "restrictedPicklist": f.restricted_picklist,
        "picklistValues": picklist,
        "referenceTo": reference_to,
        "compoundFieldName": f.compound_parent,
        "defaultedOnCreate": matches!(f.name.as_str(), "OwnerId" | "CreatedDate" | "CreatedById" | "LastModifiedDate" | "LastModifiedById" | "SystemModstamp" | "IsDeleted"),
    })
}

/// `GET /sobjects/{Obj}/describe`.
pub fn describe(call: &CallCtx, o: &ObjectMeta) -> Reply {
    let mut m = object_summary(o);
    m.insert(
        "fields".into(),
        Value::Array(o.fields.iter().map(field_json).collect()),
    );
    m.insert("urls".into(), urls(call, o));
    Reply::json(200, Value::Object(m))
}

#[cfg(test)]
mod tests {
    use super::release;

    #[test]
    fn release_names_match_the_reference() {
        assert_eq!(release(55), "Summer '22");
        assert_eq!(release(63), "Spring '25");
        assert_eq!(release(64), "Summer '25");
        assert_eq!(release(65), "Winter '26");
        assert_eq!(release(66), "Spring '26");
    }
}
