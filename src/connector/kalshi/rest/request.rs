//! A REST request as the encoders fill it: method, full path (what is signed) and JSON body.
//!
//! The buffers are reserved once and reused; HTTP framing and signature headers are added by
//! the REST client.

use crate::connector::kalshi::rest::encode::CreateTemplate;

pub const API_PREFIX: &[u8] = b"/trade-api/v2";
pub const ORDERS_PATH: &[u8] = b"/trade-api/v2/portfolio/events/orders";
pub const BATCH_PATH: &[u8] = b"/trade-api/v2/portfolio/events/orders/batched";
/// Kalshi's batch limit.
pub const MAX_BATCH: usize = 20;
/// Room for the largest body kmm writes (a full batch create) without growing.
pub const BODY_CAPACITY: usize = 8192;
pub const PATH_CAPACITY: usize = 128;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Delete,
}

impl Method {
    pub fn as_bytes(self) -> &'static [u8] {
        match self {
            Method::Get => b"GET",
            Method::Post => b"POST",
            Method::Delete => b"DELETE",
        }
    }
}

/// A REST request's method, full path (what is signed) and JSON body, in buffers reserved
/// once. HTTP framing and the signature headers are added by the REST client.
#[derive(Clone, Debug)]
pub struct RestRequest {
    pub method: Method,
    pub path: Vec<u8>,
    /// Empty for requests without a body.
    pub body: Vec<u8>,
    pub(crate) create: CreateTemplate,
}

impl Default for RestRequest {
    fn default() -> Self {
        Self::new()
    }
}

impl RestRequest {
    pub fn new() -> RestRequest {
        RestRequest {
            method: Method::Get,
            path: Vec::with_capacity(PATH_CAPACITY),
            body: Vec::with_capacity(BODY_CAPACITY),
            create: CreateTemplate::new(),
        }
    }

    pub(crate) fn start(&mut self, method: Method, path: &[u8]) {
        self.method = method;
        self.path.clear();
        self.path.extend_from_slice(path);
        self.body.clear();
    }
}
