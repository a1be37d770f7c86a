//! The one integration test binary. Every module drives the real server over real HTTP.

mod admin_api;
mod cli;
mod common;
mod config;
mod conformance;
mod hardening;
mod help;
mod layout;
mod leaks;
mod limits;
mod mcp_contract;
mod mcp_http;
mod mcp_modern;
mod oauth;
mod oauth_clients;
mod paging;
mod pg;
mod proxies;
mod reliability;
mod replicas;
mod search;
mod security;
mod serve;
mod templates;
mod test_command;
mod transfer;
