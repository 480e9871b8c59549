//! Application services: each takes a request that the api layer has parsed,
//! applies the rules of `domain`, and drives the store, gates and bus.

pub mod accounts;
pub mod admin;
pub mod auctions;
mod batch;
pub mod catalog;
mod error;
pub mod events;
pub mod health;
pub mod notifications;
pub mod sales;
pub mod scheduler;
pub mod uploads;

pub use error::{Error, error_chain};

pub type Result<T, E = Error> = std::result::Result<T, E>;
