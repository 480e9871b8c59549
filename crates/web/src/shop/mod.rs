//! The shop: drops, events, orders, auctions, and signing in.

pub mod account;
pub mod auctions;
pub mod auth;
pub mod catalog;
pub mod community;
pub mod events;
pub mod home;
pub mod orders;
