//! The WebSocket side of the protocol: frames in ([`decode`], [`messages`], [`fast`]) and
//! commands out ([`commands`]).

pub mod channels;
pub mod commands;
pub mod decode;
pub mod fast;
pub mod messages;
pub mod sides;
