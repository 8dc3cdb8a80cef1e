//! The admin API under `/__admin/salesforce/` (JSON, no auth): what tests and the demo use to
//! play a human in the org (so `commitUser` and `changeOrigin` differ from the connector's),
//! look at the org, reset it, and inject faults. Not part of the real API; documented in
//! `sandbox/README.md`.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::errors::{SfError, error_array};
use super::faults::FaultSettings;
use super::server::SfState;
use super::write::{Txn, WriteCtx};

pub fn router() -> Router<SfState> {
    Router::new()
        .route("/state", get(state))
        .route("/users", get(users))
        .route("/records/{object}", get(records))
        .route("/reset", post(reset))
        .route("/as/{user}/sobjects/{object}", post(act_create))
        .route(
            "/as/{user}/sobjects/{object}/{id}",
            axum::routing::patch(act_update).delete(act_delete),
        )
        .route("/faults", get(get_faults).put(put_faults))
        .route("/faults/expire-tokens", post(expire_tokens))
        .route("/faults/lock-rows", post(lock_rows))
        .route("/limits", put(put_limits))
}

fn reply(status: u16, body: Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(body)).into_response()
}

async fn users(State(s): State<SfState>) -> Response {
    reply(200, json!(s.org.users))
}

async fn state(State(s): State<SfState>) -> Response {
    let (used, max) = s.org.api_usage();
    let records = s.org.read(|d| {
        d.tables
            .iter()
            .map(|(name, t)| {
                let rows: Vec<Value> = t
                    .values()
                    .map(|r| json!({"deleted": r.deleted, "values": r.values}))
                    .collect();
                (name.clone(), Value::Array(rows))
            })
            .collect::<serde_json::Map<_, _>>()
    });
    reply(
        200,
        json!({
            "orgId": s.org.org_id,
            "instanceUrl": s.instance_url,
            "users": s.org.users,
            "apiUsage": {"used": used, "max": max},
            "faults": s.faults.snapshot(),
            "records": records,
        }),
    )
}

async fn records(State(s): State<SfState>, Path(object): Path<String>) -> Response {
    let Some(meta) = s.org.object(&object) else {
        return reply(404, error_array(&[SfError::not_found()]));
    };
    let rows = s.org.read(|d| {
        d.tables[&meta.name]
            .values()
            .map(|r| json!({"deleted": r.deleted, "values": r.values}))
            .collect::<Vec<_>>()
    });
    reply(200, Value::Array(rows))
}

async fn reset(State(s): State<SfState>) -> Response {
    s.org.reset();
    s.tokens.clear();
    s.faults.replace(FaultSettings::default());
    reply(200, json!({"reset": true}))
}

/// Runs `f` as `user` in one committed transaction. `?changeOrigin=` sets the origin (default
/// empty, as for a change made in the UI).
fn act(
    s: &SfState,
    user: &str,
    params: &HashMap<String, String>,
    f: impl FnOnce(&mut Txn) -> Result<Value, SfError>,
) -> Response {
    let Some(user) = s.org.user(user) else {
        return reply(
            404,
            json!({"error": format!("no user {user:?} in the org (see GET /__admin/salesforce/users)")}),
        );
    };
    let ctx = WriteCtx {
        user_id: user.id.clone(),
        change_origin: params.get("changeOrigin").cloned().unwrap_or_default(),
        now: s.org.clock.now(),
    };
    let org = s.org.clone();
    let result = org.transact(|data| {
        let mut txn = Txn::new(&org, data, &ctx);
        let out = f(&mut txn);
        let commit = out.is_ok();
        (out, txn.finish(commit))
    });
    match result {
        Ok(body) => reply(200, body),
        Err(e) => reply(e.status, error_array(&[e])),
    }
}

async fn act_create(
    State(s): State<SfState>,
    Path((user, object)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
    Json(fields): Json<serde_json::Map<String, Value>>,
) -> Response {
    act(&s, &user, &params, |txn| {
        let id = txn.create(&object, &fields)?;
        Ok(json!({"id": id, "success": true, "errors": []}))
    })
}

async fn act_update(
    State(s): State<SfState>,
    Path((user, object, id)): Path<(String, String, String)>,
    Query(params): Query<HashMap<String, String>>,
    Json(fields): Json<serde_json::Map<String, Value>>,
) -> Response {
    act(&s, &user, &params, |txn| {
        txn.update(&object, &id, &fields)?;
        Ok(json!({"id": id, "success": true, "errors": []}))
    })
}

async fn act_delete(
    State(s): State<SfState>,
    Path((user, object, id)): Path<(String, String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    act(&s, &user, &params, |txn| {
        txn.delete(&object, &id)?;
        Ok(json!({"id": id, "success": true, "errors": []}))
    })
}

async fn get_faults(State(s): State<SfState>) -> Response {
    reply(200, json!(s.faults.snapshot()))
}

async fn put_faults(State(s): State<SfState>, Json(settings): Json<FaultSettings>) -> Response {
    s.faults.replace(settings);
    reply(200, json!(s.faults.snapshot()))
}

async fn expire_tokens(State(s): State<SfState>) -> Response {
    s.tokens.expire_all();
    reply(200, json!({"expired": true}))
}

#[derive(Deserialize)]
struct Count {
    count: u32,
}

async fn lock_rows(State(s): State<SfState>, Json(c): Json<Count>) -> Response {
    s.faults.update(|f| f.lock_next_writes = c.count);
    reply(200, json!(s.faults.snapshot()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Limits {
    max: u64,
    used: Option<u64>,
}

async fn put_limits(State(s): State<SfState>, Json(l): Json<Limits>) -> Response {
    s.org.set_api_limit(l.max, l.used);
    let (used, max) = s.org.api_usage();
    reply(200, json!({"used": used, "max": max}))
}
