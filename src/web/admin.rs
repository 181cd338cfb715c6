//! The admins' views: the last serverctrl apply and what `hhlctl plan` prints now,
//! both read through `ops::remote_apply` (the plan runs as root in hhl-plan.service).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::session::Admin;
use super::{error, Shared};
use crate::ops::remote_apply;

/// `GET /api/admin/apply`: the last serverctrl apply (hhl-apply.service).
pub(super) async fn last_apply(State(app): State<Shared>, _: Admin) -> Response {
    let a = app.clone();
    let read = tokio::task::spawn_blocking(move || remote_apply::last(&a.model)).await;
    match read {
        Ok(a) => Json(a).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `GET /api/admin/plan`: what `hhlctl plan` prints now (read-only), run as root by
/// hhl-plan.service (the entry account may not read every file plan compares).
pub(super) async fn plan(_: Admin) -> Response {
    let ran = tokio::task::spawn_blocking(|| remote_apply::plan(&crate::host::systemd::Systemd::connect()?)).await;
    match ran {
        Ok(Ok(r)) => {
            let output = match r.timed_out {
                Some(t) => format!("{}{t}\n", r.output),
                None => r.output,
            };
            Json(serde_json::json!({ "ok": r.ok, "output": output })).into_response()
        }
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
