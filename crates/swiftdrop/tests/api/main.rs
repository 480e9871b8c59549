//! End-to-end tests of the HTTP API: the real server, a real database,
//! real HTTP.

mod admin;
mod auctions;
mod auth;
mod catalog;
mod cli;
mod crash;
mod events;
mod faults;
mod harness;
mod http;
mod process;
mod properties;
mod proxy;
mod realtime;
mod sales;
mod secrets_in_logs;
mod security;
mod security_headers;
mod slow_clients;
mod tls;
mod web;
