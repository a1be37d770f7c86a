//! JSON Schemas for the tools, generated from their argument and result types, in the shape
//! MCP clients take: one inline object schema, no `$ref`, no meta-schema.

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

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
    split_type_unions(&mut schema);
    portable_integers(&mut schema);
    drop_defaults(&mut schema);
    if let Value::Object(root) = &mut schema {
        // OpenAI's strict mode and some clients want `required` on every object, even empty.
        root.entry("required").or_insert_with(|| json!([]));
    }
    schema
}

/// The range of each integer `format` schemars writes for a Rust integer type.
const INTEGER_FORMATS: [(&str, i64, i64); 6] = [
    ("uint8", 0, u8::MAX as i64),
    ("uint16", 0, u16::MAX as i64),
    ("uint32", 0, u32::MAX as i64),
    ("int8", i8::MIN as i64, i8::MAX as i64),
    ("int16", i16::MIN as i64, i16::MAX as i64),
    ("int32", i32::MIN as i64, i32::MAX as i64),
];

/// Replaces every integer `format` schemars writes for a Rust type (`uint32`, …) by the
/// `minimum`/`maximum` it stands for, keeping a bound the schema already has when it is
/// narrower. Those formats are no JSON Schema format: Gemini's schema subset and OpenAI's
/// strict mode do not know them, and Anthropic's strict transform drops them.
fn portable_integers(schema: &mut Value) {
    let Value::Object(object) = schema else { return };
    for child in subschemas_mut(object) {
        portable_integers(child);
    }
    let format = object.get("format").and_then(Value::as_str).unwrap_or_default();
    let Some(&(_, low, high)) = INTEGER_FORMATS.iter().find(|(f, _, _)| *f == format) else {
        // A 64-bit or unknown format only loses the keyword (its bounds are no tighter).
        if ["uint64", "int64", "uint", "int", "uint128", "int128"].contains(&format) {
            object.remove("format");
        }
        return;
    };
    object.remove("format");
    let tighter =
        |key: &str, bound: i64, keep_larger: bool| match object.get(key).and_then(Value::as_i64) {
            Some(have) if (have > bound) == keep_larger => have,
            _ => bound,
        };
    let (minimum, maximum) = (tighter("minimum", low, true), tighter("maximum", high, false));
    object.insert("minimum".into(), minimum.into());
    object.insert("maximum".into(), maximum.into());
}

/// Removes every `default` from `schema`: OpenAI's strict mode refuses the keyword (a
/// `default: []` that schemars writes for `#[serde(default)]`), and what an argument left
/// out means is said in its description.
fn drop_defaults(schema: &mut Value) {
    let Value::Object(object) = schema else { return };
    object.remove("default");
    for child in subschemas_mut(object) {
        drop_defaults(child);
    }
}

/// The schema of a tool's result, as it serializes: an `Option` is a required, nullable
/// property, exactly what the handler emits, spelled `anyOf: [{…}, {"type": "null"}]` rather
/// than with a `type` array (see [`split_type_unions`]). Nested descriptions and formats are
/// left out: the agent reads the data itself, and `tools/list` (sent to every session, paid
/// for in the agent's context) stays about a third smaller.
pub fn output_schema<R: JsonSchema>() -> Value {
    let mut schema = schema_for::<R>(SchemaSettings::draft2020_12().for_serialize());
    split_type_unions(&mut schema);
    strip_nested_annotations(&mut schema);
    schema
}

/// Keywords that describe a schema without constraining its instances: they stay on the
/// schema when its `type` array is split into branches.
const ANNOTATIONS: [&str; 9] = [
    "title",
    "description",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "$comment",
    "$id",
];

/// Keywords that constrain a `null` instance too (the others apply to one type only).
const APPLICATORS: [&str; 9] =
    ["allOf", "anyOf", "oneOf", "not", "if", "then", "else", "$ref", "$dynamicRef"];

/// Rewrites every `"type": [a, b, …]` in `schema` as `"anyOf": [{"type": a, …}, {"type": b,
/// …}]`, one single-typed branch per type, accepting exactly the same instances. schemars
/// writes an `Option` of a scalar as `"type": ["string", "null"]`; a client that maps tool
/// schemas onto a one-`type` dialect (Gemini's OpenAPI subset, for one) rejects that or drops
/// the constraint, and MCP Inspector's `--strict` lint flags it (`type-union`). The assertions
/// (`format`, `enum`, `minimum`, …) go into each non-null branch, with `null` taken out of an
/// `enum`; the `null` branch is plain `{"type": "null"}`, kept only if `enum`/`const` allow a
/// null; annotations stay on the outer schema.
fn split_type_unions(schema: &mut Value) {
    let Value::Object(object) = schema else { return };
    for child in subschemas_mut(object) {
        split_type_unions(child);
    }
    let Some(Value::Array(types)) = object.get("type") else { return };
    let mut types: Vec<String> = match types.iter().map(|t| t.as_str().map(str::to_owned)).collect()
    {
        Some(types) => types,
        None => return, // not valid JSON Schema: left as it is
    };
    types.dedup();
    object.remove("type");
    let (annotations, assertions): (Map<String, Value>, Map<String, Value>) =
        std::mem::take(object).into_iter().partition(|(k, _)| ANNOTATIONS.contains(&k.as_str()));
    let null_allowed = assertions
        .get("enum")
        .is_none_or(|e| e.as_array().is_some_and(|options| options.contains(&Value::Null)))
        && assertions.get("const").is_none_or(Value::is_null);
    let mut branches: Vec<Map<String, Value>> = Vec::new();
    for t in types {
        let mut branch = Map::new();
        if t == "null" {
            if !null_allowed {
                continue;
            }
            branch.insert("type".into(), t.into());
            for (k, v) in &assertions {
                if APPLICATORS.contains(&k.as_str()) {
                    branch.insert(k.clone(), v.clone());
                }
            }
        } else {
            branch.insert("type".into(), t.into());
            for (k, v) in &assertions {
                let mut v = v.clone();
                if let ("enum", Value::Array(options)) = (k.as_str(), &mut v) {
                    options.retain(|o| !o.is_null());
                }
                branch.insert(k.clone(), v);
            }
        }
        branches.push(branch);
    }
    *object = annotations;
    match branches.len() {
        // The `type` array was empty, or only `null` that `enum` or `const` forbids.
        0 => {
            object.insert("not".into(), json!({}));
        }
        1 => object.extend(branches.swap_remove(0)),
        _ => {
            object.insert("anyOf".into(), branches.into_iter().map(Value::Object).collect());
        }
    }
}

/// The subschemas directly under `object`, through every keyword that holds them, so a
/// property that happens to be named like a keyword is never mistaken for one.
fn subschemas_mut(object: &mut Map<String, Value>) -> Vec<&mut Value> {
    let mut children: Vec<&mut Value> = Vec::new();
    for (keyword, value) in object.iter_mut() {
        match (keyword.as_str(), value) {
            (
                "properties" | "patternProperties" | "$defs" | "definitions" | "dependentSchemas",
                Value::Object(map),
            ) => children.extend(map.values_mut()),
            (
                "items"
                | "additionalProperties"
                | "unevaluatedProperties"
                | "unevaluatedItems"
                | "contains"
                | "propertyNames"
                | "not"
                | "if"
                | "then"
                | "else",
                sub @ Value::Object(_),
            ) => children.push(sub),
            ("anyOf" | "oneOf" | "allOf" | "prefixItems", Value::Array(subs)) => {
                children.extend(subs.iter_mut());
            }
            _ => {}
        }
    }
    children
}

/// Removes `description` and `format` from every schema nested in `schema` (not from `schema`
/// itself).
fn strip_nested_annotations(schema: &mut Value) {
    let Value::Object(object) = schema else { return };
    for child in subschemas_mut(object) {
        if let Value::Object(child) = &mut *child {
            child.remove("description");
            child.remove("format");
        }
        strip_nested_annotations(child);
    }
}

#[cfg(test)]
mod tests {
    use schemars::JsonSchema;
    use serde::Serialize;
    use serde_json::{Value, json};

    use super::{input_schema, output_schema, split_type_unions};

    #[derive(Serialize, JsonSchema)]
    #[serde(rename_all = "lowercase")]
    #[allow(dead_code)]
    enum Level {
        Low,
        High,
    }

    #[derive(Serialize, JsonSchema)]
    #[allow(dead_code)]
    struct Inner {
        name: String,
    }

    /// A result with every kind of `Option` the tools return.
    #[derive(Serialize, JsonSchema)]
    #[allow(dead_code)]
    struct Shape {
        /// A cursor.
        next_cursor: Option<String>,
        count: Option<u32>,
        level: Option<Level>,
        inner: Option<Inner>,
        owners: Vec<Option<String>>,
    }

    /// Every schema in `schema`, depth first.
    fn all_schemas(schema: &Value, out: &mut Vec<Value>) {
        out.push(schema.clone());
        match schema {
            Value::Object(o) => o.values().for_each(|v| all_schemas(v, out)),
            Value::Array(a) => a.iter().for_each(|v| all_schemas(v, out)),
            _ => {}
        }
    }

    #[test]
    fn output_options_are_anyof_a_typed_branch_and_null_never_a_type_array() {
        let schema = output_schema::<Shape>();
        let mut all = Vec::new();
        all_schemas(&schema, &mut all);
        assert!(
            all.iter().all(|s| !s.get("type").is_some_and(Value::is_array)),
            "a type array is left: {schema}"
        );
        let p = &schema["properties"];
        assert_eq!(p["next_cursor"], json!({"anyOf": [{"type": "string"}, {"type": "null"}]}));
        assert_eq!(
            p["count"],
            json!({"anyOf": [{"type": "integer", "minimum": 0}, {"type": "null"}]})
        );
        assert_eq!(
            p["level"],
            json!({"anyOf": [{"type": "string", "enum": ["low", "high"]}, {"type": "null"}]})
        );
        assert_eq!(p["inner"]["anyOf"][1], json!({"type": "null"}));
        assert_eq!(p["inner"]["anyOf"][0]["properties"]["name"], json!({"type": "string"}));
        assert_eq!(p["owners"]["items"], p["next_cursor"]);
        // What serde emits: every field present, `None` as `null`.
        let mut required: Vec<&str> = schema["required"]
            .as_array()
            .expect("required")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        required.sort_unstable();
        assert_eq!(required, ["count", "inner", "level", "next_cursor", "owners"]);
    }

    #[test]
    fn a_split_accepts_the_same_instances_and_keeps_annotations_outside() {
        let mut schema = json!({"description": "d", "type": ["string", "null"],
            "format": "date-time", "enum": ["a", null]});
        split_type_unions(&mut schema);
        assert_eq!(
            schema,
            json!({"description": "d", "anyOf": [
                {"type": "string", "format": "date-time", "enum": ["a"]}, {"type": "null"}]})
        );
        // A null the enum does not allow gets no branch; a single type is no union.
        let mut schema = json!({"type": ["string", "null"], "enum": ["a"]});
        split_type_unions(&mut schema);
        assert_eq!(schema, json!({"type": "string", "enum": ["a"]}));
        let mut schema = json!({"type": ["integer", "string"], "minimum": 1});
        split_type_unions(&mut schema);
        assert_eq!(
            schema,
            json!({"anyOf": [{"type": "integer", "minimum": 1}, {"type": "string", "minimum": 1}]})
        );
    }

    #[test]
    fn input_options_are_plain_optional_properties() {
        let schema = input_schema::<Shape>();
        let p = &schema["properties"];
        assert_eq!(p["next_cursor"], json!({"description": "A cursor.", "type": "string"}));
        assert_eq!(p["level"], json!({"type": "string", "enum": ["low", "high"]}));
        assert_eq!(schema["required"], json!(["owners"]));
        // Deeper down a null is a value, not a left-out argument: kept, but portably spelled.
        assert_eq!(p["owners"]["items"], json!({"anyOf": [{"type": "string"}, {"type": "null"}]}));
    }
}
