//! One router module per domain; each exposes `routes()` for the API
//! router and documents its handlers for OpenAPI.

pub mod admin;
pub mod auctions;
pub mod auth;
pub mod catalog;
pub mod events;
pub mod notifications;
pub mod profile;
pub mod sales;
pub mod service;
pub mod socket;
pub mod uploads;
