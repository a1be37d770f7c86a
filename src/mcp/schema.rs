//! JSON Schemas for the tools, generated from their argument and result types, in the shape
//! MCP clients take: one inline object schema, no `$ref`, no meta-schema.

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::{Value, json};

/// The JSON Schema of `T` as MCP wants it: an object schema with every subschema inlined (no
/// `$ref`/`$defs`), no `$schema` and no Rust type name as title.
fn schema_for<T: JsonSchema>(settings: SchemaSettings) -> Value {
    let settings = settings.with(|s| {
        s.meta_schema = None;
        s.inline_subschemas = true;
    });
    let mut schema = settings.into_generator().into_root_schema_for::<T>().to_value();
    if let Value::Object(root) = &mut schema {
        root.remove("$schema");
        root.remove("title");
        // Some clients require `properties` on every object schema, even an empty one.
        root.entry("properties").or_insert_with(|| json!({}));
    }
    schema
}

/// The schema of a tool's arguments. An optional argument is one that may be left out, so it
/// is not advertised as nullable too (serde still accepts an explicit `null`).
pub fn input_schema<A: JsonSchema>() -> Value {
    let mut schema = schema_for::<A>(SchemaSettings::draft2020_12().for_deserialize());
    let properties = schema.get_mut("properties").and_then(Value::as_object_mut);
    for property in properties.into_iter().flat_map(|p| p.values_mut()) {
        if let Some(Value::Array(types)) = property.get_mut("type") {
            types.retain(|t| t != "null");
            if let [single] = types.as_slice() {
                let single = single.clone();
                property["type"] = single;
            }
        }
        if let Some(Value::Array(options)) = property.get_mut("enum") {
            options.retain(|o| !o.is_null());
        }
    }
    schema
}

/// The schema of a tool's result, as it serializes: an `Option` is a required, nullable
/// property, exactly what the handler emits. Nested descriptions and formats are left out:
/// the agent reads the data itself, and `tools/list` (sent to every session, paid for in the
/// agent's context) stays about a third smaller.
pub fn output_schema<R: JsonSchema>() -> Value {
    let mut schema = schema_for::<R>(SchemaSettings::draft2020_12().for_serialize());
    strip_nested_annotations(&mut schema);
    schema
}

/// Removes `description` and `format` from every schema nested in `schema` (not from `schema`
/// itself), following the keywords that hold subschemas, so a property that happens to be
/// named `description` is never mistaken for the keyword.
fn strip_nested_annotations(schema: &mut Value) {
    let Value::Object(object) = schema else { return };
    let mut children: Vec<&mut Value> = Vec::new();
    for (keyword, value) in object.iter_mut() {
        match (keyword.as_str(), value) {
            ("properties", Value::Object(properties)) => children.extend(properties.values_mut()),
            ("items" | "additionalProperties", sub @ Value::Object(_)) => children.push(sub),
            ("anyOf" | "oneOf" | "allOf", Value::Array(subs)) => children.extend(subs.iter_mut()),
            _ => {}
        }
    }
    for child in children {
        if let Value::Object(child) = &mut *child {
            child.remove("description");
            child.remove("format");
        }
        strip_nested_annotations(child);
    }
}
