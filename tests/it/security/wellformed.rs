//! What every answer of the MCP endpoint must look like, whatever was sent: a clean status,
//! JSON with the right content type when there is a body, JSON-RPC objects in it with
//! client-error codes only, and tool results that are either a sentence or structured content.

use serde_json::{Value, json};

use crate::common::Reply;

/// JSON-RPC error codes a well-formed answer may carry (-32603, internal error, is not one).
const CLIENT_ERROR_CODES: [i64; 4] = [-32700, -32600, -32601, -32602];
/// HTTP statuses a well-formed answer to an authenticated POST may have.
const CLEAN_STATUSES: [u16; 6] = [200, 202, 400, 406, 413, 415];

/// Checks one JSON-RPC response object: `jsonrpc: "2.0"`, an id, and exactly one of a result
/// or an error with a client-error code and a message.
fn check_reply(reply: &Value) -> Result<(), String> {
    let Value::Object(reply) = reply else { return Err(format!("not an object: {reply}")) };
    if reply.get("jsonrpc") != Some(&json!("2.0")) {
        return Err(format!("jsonrpc is not \"2.0\": {reply:?}"));
    }
    match reply.get("id") {
        Some(Value::Null | Value::String(_) | Value::Number(_)) => {}
        other => return Err(format!("bad or missing id {other:?}")),
    }
    match (reply.get("result"), reply.get("error")) {
        (Some(_), None) => Ok(()),
        (None, Some(error)) => {
            let code = error["code"].as_i64().ok_or_else(|| format!("no error code: {error}"))?;
            if !CLIENT_ERROR_CODES.contains(&code) {
                return Err(format!("error code {code} (never -32603 or other): {error}"));
            }
            if error["message"].as_str().is_none_or(str::is_empty) {
                return Err(format!("error without a message: {error}"));
            }
            Ok(())
        }
        _ => Err(format!("not exactly one of result and error: {reply:?}")),
    }
}

/// Whether `message` is a request that must get its own answer with its own id.
fn is_proper_request(message: &Value) -> bool {
    message["jsonrpc"] == "2.0"
        && matches!(message.get("id"), Some(Value::String(_) | Value::Number(_)))
        && message["method"].is_string()
}

/// The shape every answer with a body must have, whatever its status: `application/json`,
/// and a JSON-RPC object (or, for a batch, a non-empty array of them).
pub fn check_body(answer: &Reply) -> Result<Value, String> {
    let content_type = answer.header("content-type");
    if content_type != Some("application/json") {
        return Err(format!("content-type {content_type:?} on status {}", answer.status));
    }
    let body: Value = serde_json::from_slice(&answer.body)
        .map_err(|e| format!("the body is not JSON ({e}): {}", answer.text()))?;
    match &body {
        Value::Array(replies) => {
            if answer.status != 200 || replies.is_empty() {
                return Err(format!("a batch answer with status {}: {body}", answer.status));
            }
            replies.iter().try_for_each(check_reply)?;
        }
        reply => check_reply(reply)?,
    }
    Ok(body)
}

/// Whether a reply's id is the request's. Integers and strings must match exactly; a
/// fractional or huge number may come back a few ULPs off (serde_json parses floats without
/// `float_roundtrip`: see `number_ids_are_echoed_exactly`).
fn same_id(sent: Option<&Value>, got: Option<&Value>) -> bool {
    match (sent, got) {
        (Some(Value::Number(a)), Some(Value::Number(b))) if a.is_f64() || b.is_f64() => {
            let (a, b) = (a.as_f64().unwrap_or(f64::NAN), b.as_f64().unwrap_or(f64::NAN));
            a == b || ((a - b) / a).abs() < 1e-14
        }
        (sent, got) => sent == got,
    }
}

/// The transport rules every answer must follow, whatever was sent: a clean status, JSON with
/// the right content type when there is a body, and JSON-RPC objects in it.
pub fn check_answer(
    answer: &Reply,
    sent: Option<&Value>,
    version: Option<&str>,
) -> Result<(), String> {
    if !CLEAN_STATUSES.contains(&answer.status) {
        return Err(format!("status {}: {}", answer.status, answer.text()));
    }
    if answer.status == 202 {
        return if answer.body.is_empty() {
            Ok(())
        } else {
            Err(format!("202 with a body: {}", answer.text()))
        };
    }
    let body = check_body(answer)?;
    let Some(sent) = sent.filter(|_| answer.status != 413) else { return Ok(()) };
    if sent.is_object()
        && is_proper_request(sent)
        && (answer.status != 200 || !same_id(sent.get("id"), body.get("id")))
    {
        return Err(format!("a proper request got {}: {body}", answer.status));
    }
    if let Value::Array(batch) = sent {
        if version.is_some_and(|v| v != "2025-03-26") && answer.status != 400 {
            return Err(format!("a batch under {version:?} got {}", answer.status));
        }
        // Every proper request of a batch gets its own reply.
        let replies = body.as_array().map(Vec::as_slice).unwrap_or_default();
        for request in batch.iter().filter(|m| is_proper_request(m)) {
            if answer.status == 200
                && !replies.iter().any(|r| same_id(request.get("id"), r.get("id")))
            {
                return Err(format!("no reply to {request} in {body}"));
            }
        }
    }
    Ok(())
}

/// What a `tools/call` result must look like: an error with a sentence, or structured content
/// that the text content repeats. Whether it is an error.
pub fn check_tool_result(result: &Value) -> Result<bool, String> {
    let text = result["content"][0]["text"]
        .as_str()
        .filter(|_| result["content"][0]["type"] == "text")
        .ok_or_else(|| format!("no text content: {result}"))?;
    match result["isError"].as_bool() {
        Some(true) => {
            if text.trim().is_empty() || result.get("structuredContent").is_some() {
                return Err(format!("an error result without a sentence: {result}"));
            }
            if text.to_ascii_lowercase().contains("internal error") {
                return Err(format!("an internal error (the tool's -32603): {result}"));
            }
            Ok(true)
        }
        Some(false) => {
            let structured = result
                .get("structuredContent")
                .filter(|s| s.is_object())
                .ok_or_else(|| format!("a success without structuredContent: {result}"))?;
            let repeated: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
            if &repeated != structured {
                return Err(format!("text content differs from structuredContent: {result}"));
            }
            Ok(false)
        }
        None => Err(format!("isError is not a boolean: {result}")),
    }
}

/// A tool call through `key` whose result must be well formed (an error result or not).
pub async fn checked_call(key: &crate::common::Key, tool: &str, args: Value) -> Value {
    let reply = key.post(&crate::common::tool_call(1, tool, args.clone())).send().await;
    assert_eq!(reply.status, 200, "{tool} {args}: {}", reply.text());
    let body = reply.json();
    assert!(body["result"].is_object(), "{tool} {args}: {body}");
    check_tool_result(&body["result"]).unwrap_or_else(|e| panic!("{tool} {args}: {e}"));
    body["result"].clone()
}
