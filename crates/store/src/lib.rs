//! Persistence for SwiftDrop on SQLite or PostgreSQL, behind the [`Store`]
//! trait the services use.
//!
//! Queries are written once, in the `$1` dialect both databases accept, and
//! dispatched over the two sqlx pools by [`on_pool!`]: each arm is
//! monomorphic code, so the same text runs with each driver's native types
//! (no `Any` driver). SQL is overridden per backend only where it really
//! differs.

#[macro_use]
mod db;
pub mod accounts;
pub mod auctions;
pub mod catalog;
mod error;
pub mod events;
pub mod notifications;
pub mod sales;
mod tx;

pub use accounts::AccountStore;
pub use auctions::AuctionStore;
pub use catalog::CatalogStore;
pub use db::{Backend, ConnectOptions, Leadership, SqlStore};
pub use error::StoreError;
pub use events::EventStore;
pub use notifications::NotificationStore;
pub use sales::SalesStore;
pub use tx::NewRefreshToken;

/// Everything the services need from storage. One object implements every
/// domain's repository trait; services hold it as `Arc<dyn Store>`.
#[async_trait::async_trait]
pub trait Store:
    AccountStore
    + AuctionStore
    + CatalogStore
    + EventStore
    + SalesStore
    + NotificationStore
    + Send
    + Sync
    + 'static
{
    fn backend(&self) -> Backend;
    /// Answers when the database does: used by `/ready`.
    async fn ping(&self) -> Result<()>;
    /// Closes the pool, waiting for connections in use to be returned.
    async fn close(&self);
    /// Takes the worker lock `key` if no other process holds it.
    async fn try_lead(&self, key: i32) -> Result<Option<Leadership>>;
    /// Calls `wake` whenever any process commits outbox messages, for as
    /// long as the future runs (PostgreSQL `LISTEN`). On SQLite, one
    /// process's file, it returns at once: its writers wake the relay
    /// themselves.
    async fn follow_outbox(&self, wake: &(dyn Fn() + Send + Sync));
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
