//! The one integration test binary. Every module drives the real server over real HTTP.

mod admin_api;
mod common;
mod conformance;
mod config;
mod mcp_http;
mod serve;
mod test_command;
