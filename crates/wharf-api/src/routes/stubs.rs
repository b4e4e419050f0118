//! Endpoints for subsystems Wharf does not run: swarm (503 with Docker's message, so the CLI
//! prints it) and plugins (an empty list, 404 for a named plugin).

use axum::Json;
use axum::extract::Path;
use wharf_types::{EngineError, ErrorKind};

use crate::error::ApiError;

/// Docker's message for every swarm endpoint on a node that is not a manager.
pub const SWARM_INACTIVE: &str = "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.";

pub async fn swarm_inactive() -> ApiError {
    ApiError(EngineError::new(ErrorKind::Unavailable, SWARM_INACTIVE))
}

pub async fn plugins_list() -> Json<Vec<serde_json::Value>> {
    Json(Vec::new())
}

pub async fn plugin_inspect(Path(name): Path<String>) -> ApiError {
    ApiError::not_found(format!("plugin \"{name}\" not found"))
}

/// `/plugins/{name}/{action}`: no plugin exists, so every named one is not found.
pub async fn plugin_named(Path((name, _action)): Path<(String, String)>) -> ApiError {
    ApiError::not_found(format!("plugin \"{name}\" not found"))
}

pub async fn plugin_other() -> ApiError {
    ApiError::new(ErrorKind::NotImplemented, "plugins are not supported by wharf")
}
