//! Moving messages between parts of SwiftDrop: the bus (in-process now, a
//! broker when scaled out) and, as the real-time layer lands, the outbox
//! relay and the WebSocket hub.

pub mod amqp;
pub mod bus;
pub mod hub;
pub mod outlet;

pub use amqp::AmqpBus;
pub use bus::{Bus, BusError, LocalBus, Message};
pub use hub::{Hub, Subscription, VISITOR};
pub use outlet::{Outlet, SocketIo, Stop};
