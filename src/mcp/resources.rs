//! MCP resources: each journey of the key's workspace is a resource (its map, as Markdown), and
//! each item is readable through a resource template. `resources/list` pages through the
//! journeys as `list_journeys` does; archived journeys are not listed (they are still read by
//! URI, flagged).
//!
//! One more resource is the journey map's MCP App view ([`app::URI`], see `app.rs`), read by URI
//! only: hosts find it through `get_journey`'s `_meta.ui`, so `resources/list` keeps paging
//! journeys (the extension lets a server leave UI-only resources out of the list).

use std::sync::LazyLock;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::app;
use super::confine;
use super::protocol::{ErrorCode, RpcError, to_raw};
use super::render::{self, journey_uri};
use crate::store::access::KeyIdentity;
use crate::store::{Store, StoreError};

/// Every resource is Markdown.
const MIME_TYPE: &str = "text/markdown";
const JOURNEY_PREFIX: &str = "custory://journeys/";
const ITEM_PREFIX: &str = "custory://items/";
/// The templates, as `resources/templates/list` names them and `completion/complete` refers
/// to them.
pub const JOURNEY_TEMPLATE: &str = "custory://journeys/{journey}";
pub const ITEM_TEMPLATE: &str = "custory://items/{item_id}";

/// `resources/read` parameters.
#[derive(Debug, Deserialize)]
pub struct ReadParams {
    pub uri: String,
}

/// One page of journeys as resources.
pub fn list(
    store: &Store,
    key: &KeyIdentity,
    cursor: Option<&Value>,
) -> Result<Box<RawValue>, RpcError> {
    let cursor = match cursor {
        None | Some(Value::Null) => None,
        Some(Value::String(cursor)) => Some(cursor.as_str()),
        Some(_) => return Err(RpcError::invalid_params("\"cursor\" must be a string")),
    };
    let (mut journeys, next) =
        store.content().list_journeys(key.workspace_id, cursor, false).map_err(store_error)?;
    journeys.retain(|journey| key.scopes.allows_journey(&journey.id));
    let resources: Vec<Value> = journeys
        .iter()
        .map(|journey| {
            let size = format!(
                "{} stages, {} steps, {} items",
                journey.stages, journey.steps, journey.items
            );
            let description = match journey.description.trim() {
                "" => format!("The journey map: {size}."),
                text => format!("{text} ({size})"),
            };
            json!({
                "uri": journey_uri(&journey.slug),
                "name": journey.slug,
                "title": journey.name,
                "description": description,
                "mimeType": MIME_TYPE,
            })
        })
        .collect();
    let mut result = json!({"resources": resources});
    if let Some(next) = next {
        result["nextCursor"] = Value::String(next);
    }
    Ok(to_raw(&result))
}

/// `resources/templates/list`: one journey by slug, one item by id. Fixed, serialized once.
pub fn templates_result() -> &'static RawValue {
    static TEMPLATES: LazyLock<Box<RawValue>> = LazyLock::new(|| {
        to_raw(&json!({"resourceTemplates": [
            {
                "uriTemplate": JOURNEY_TEMPLATE,
                "name": "journey",
                "title": "Journey map",
                "description": "A journey's map by slug or id: stages, steps, the first items \
                                of each step and their links.",
                "mimeType": MIME_TYPE,
            },
            {
                "uriTemplate": ITEM_TEMPLATE,
                "name": "item",
                "title": "Item",
                "description": "One item by id (itm_…): where it sits, its fields, links and \
                                comments.",
                "mimeType": MIME_TYPE,
            },
        ]}))
    });
    &TEMPLATES
}

/// `resources/read` of a journey or an item URI, or of the journey map's view.
pub fn read(store: &Store, key: &KeyIdentity, uri: &str) -> Result<Box<RawValue>, RpcError> {
    if uri == app::URI {
        return Ok(app::read_result().to_owned());
    }
    let ws = key.workspace_id;
    let text = if let Some(journey) = uri.strip_prefix(JOURNEY_PREFIX).filter(|s| is_id(s)) {
        confine::check(store, key, journey).map_err(|e| not_found(uri, e))?;
        let map = store.content().journey_map(ws, journey).map_err(|e| not_found(uri, e))?;
        render::journey(&map)
    } else if let Some(item) = uri.strip_prefix(ITEM_PREFIX).filter(|s| is_id(s)) {
        confine::check(store, key, item).map_err(|e| not_found(uri, e))?;
        let mut detail = store.content().get_item(ws, item, None).map_err(|e| not_found(uri, e))?;
        confine::item_links(store, key, &mut detail).map_err(store_error)?;
        render::item(&detail)
    } else {
        return Err(RpcError::new(
            ErrorCode::ResourceNotFound,
            format!(
                "Resource not found: {uri:?} is not a resource of this server; it serves \
                 {JOURNEY_TEMPLATE}, {ITEM_TEMPLATE} and {} (resources/list lists the \
                 journeys)",
                app::URI
            ),
        ));
    };
    Ok(to_raw(&json!({"contents": [{"uri": uri, "mimeType": MIME_TYPE, "text": text}]})))
}

/// A slug or id: one path segment, nothing that needs decoding.
fn is_id(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 200
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

/// What a store error means for a read by URI: not found stays "not found" (-32002, which
/// the modern era turns into -32602), anything else is the server's.
fn not_found(uri: &str, error: StoreError) -> RpcError {
    match error {
        StoreError::NotFound(message) => RpcError::new(
            ErrorCode::ResourceNotFound,
            format!("Resource not found: {uri}: {message}"),
        ),
        other => store_error(other),
    }
}

/// A store error as a JSON-RPC error: the caller's mistakes are -32602 with the store's
/// sentence; database trouble is logged and answered without its details.
pub fn store_error(error: StoreError) -> RpcError {
    match error {
        StoreError::Db(error) => {
            tracing::error!(%error, "a resource or prompt read failed");
            RpcError::new(ErrorCode::InternalError, "Internal error: the read failed; try again")
        }
        StoreError::TimedOut(message) => RpcError::new(ErrorCode::InternalError, message),
        other => RpcError::invalid_params(other),
    }
}
