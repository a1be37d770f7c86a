//! The journey map as an MCP App: the `io.modelcontextprotocol/ui` extension (specification
//! 2026-01-26). The server declares the extension under `capabilities.extensions`,
//! `get_journey`'s definition names [`URI`] in `_meta.ui.resourceUri`, and `resources/read` of
//! that URI answers with the view: one self-contained HTML document
//! (`templates/mcp-app/journey-map.html`, its script and styles inline) that draws the tool's
//! result in the host's frame and asks for more through the host as `tools/call`, under the
//! key's own access, limits and audit. docs/MCP_APP.md describes it.

use std::sync::LazyLock;

use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::protocol::to_raw;
use crate::store::content::model::ItemKind;

/// The extension's identifier, the key of its entry in `capabilities.extensions`.
pub const EXTENSION: &str = "io.modelcontextprotocol/ui";
/// The journey map's view: what `get_journey`'s `_meta.ui.resourceUri` names.
pub const URI: &str = "ui://custory/journey-map.html";
/// The MIME type the extension gives an MCP App's HTML.
const MIME_TYPE: &str = "text/html;profile=mcp-app";
/// The view, one document: nothing in it is fetched from anywhere.
const HTML: &str = include_str!("../../templates/mcp-app/journey-map.html");

/// The `_meta` of a tool whose results the view draws.
pub fn tool_meta() -> Value {
    json!({"ui": {"resourceUri": URI}})
}

/// `resources/read` of [`URI`]: the view, with its `_meta.ui` saying it needs no network, no
/// other origin and no browser permission (every CSP list empty, no permission asked for), and
/// would like the host's border. Fixed, serialized once.
pub fn read_result() -> &'static RawValue {
    static READ: LazyLock<Box<RawValue>> = LazyLock::new(|| {
        // The statuses each kind may take, from the list the store checks against.
        let statuses: Map<String, Value> = ItemKind::ALL
            .iter()
            .map(|kind| (kind.as_str().to_owned(), json!(kind.statuses())))
            .collect();
        let html = HTML.replace("/*STATUSES*/{}", &Value::Object(statuses).to_string());
        to_raw(&json!({"contents": [{
            "uri": URI,
            "mimeType": MIME_TYPE,
            "text": html,
            "_meta": {"ui": {
                "csp": {
                    "connectDomains": [],
                    "resourceDomains": [],
                    "frameDomains": [],
                    "baseUriDomains": [],
                },
                "permissions": {},
                "prefersBorder": true,
            }},
        }]}))
    });
    &READ
}
