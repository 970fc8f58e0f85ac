//! The REST side of the protocol: requests and their order bodies.

pub mod encode;
pub mod order_wire;
pub mod request;
