//! The REST side of the protocol: requests and their order bodies.

pub mod encode;
pub mod models;
pub mod order_wire;
pub mod replies;
pub mod reply_fields;
pub mod request;
