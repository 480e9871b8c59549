//! Pure business rules of SwiftDrop: no I/O, no HTTP, no SQL.
//!
//! Everything here is deterministic and unit-tested; the layers above
//! (store, services, api) call into it and never re-implement a rule.

pub mod auctions;
pub mod catalog;
pub mod clock;
pub mod cursor;
pub mod events;
pub mod notify;
pub mod page;
pub mod refusal;
pub mod sales;
pub mod user;
pub mod validation;

pub use refusal::{Refusal, Rejection};
pub use validation::{FieldError, ValidationErrors};
