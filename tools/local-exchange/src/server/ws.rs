use super::Shared;
use axum::Router;
use std::sync::Arc;

pub fn router() -> Router<Arc<Shared>> {
    Router::new()
}
