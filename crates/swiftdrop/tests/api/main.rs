//! End-to-end tests of the HTTP API: the real server, a real database,
//! real HTTP.

mod admin;
mod auctions;
mod auth;
mod catalog;
mod cli;
mod events;
mod harness;
mod http;
mod properties;
mod proxy;
mod realtime;
mod sales;
mod secrets_in_logs;
mod security_headers;
mod signup_rush;
mod slow_clients;
mod web;
