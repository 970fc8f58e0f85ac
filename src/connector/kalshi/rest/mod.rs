//! The REST side of the protocol: requests, their order bodies and HTTP heads ([`request`],
//! [`encode`], [`order_wire`], [`head`]), replies and bootstrap models ([`replies`],
//! [`reply_fields`], [`models`]), and the two clients that carry them ([`pool`] on the io
//! thread, [`blocking`] for bootstrap and resync) with their shared [`response`] parser.

pub mod blocking;
pub mod encode;
pub mod head;
pub mod models;
pub mod order_wire;
pub mod pool;
pub mod replies;
pub mod reply_fields;
pub mod request;
pub mod response;
