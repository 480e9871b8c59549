//! One router module per domain; each exposes `routes()` for the API
//! router and documents its handlers for OpenAPI.

pub mod admin;
pub mod auth;
pub mod catalog;
pub mod profile;
pub mod service;
pub mod uploads;
