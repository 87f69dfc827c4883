//! `GET /openapi.json`: an OpenAPI 3.0 document of the JSON routes, generated from the
//! same descriptor set (and the same routes) the edge serves.

use std::collections::{BTreeMap, BTreeSet};

use prost_reflect::{
    Cardinality, FieldDescriptor, FileDescriptor, Kind, MessageDescriptor, MethodDescriptor,
};
use serde_json::{Map, Value, json};

use super::JsonApi;
use super::routes::{BodyMapping, Route};

/// How deep query parameters reach into nested messages (`a.b.c`).
const QUERY_DEPTH: usize = 3;

/// The OpenAPI document of `api`.
pub(crate) fn document(api: &JsonApi) -> Value {
    let mut schemas = BTreeMap::new();
    let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let mut operation_ids = BTreeSet::new();
    for route in api.routes() {
        let method = route.method.as_str().to_ascii_lowercase();
        if !matches!(
            method.as_str(),
            "get" | "put" | "post" | "delete" | "patch" | "head" | "options" | "trace"
        ) {
            continue; // OpenAPI has no custom methods.
        }
        let base = format!("{}_{}", route.rpc.parent_service().name(), route.rpc.name());
        let mut id = base.clone();
        let mut n = 2;
        while !operation_ids.insert(id.clone()) {
            id = format!("{base}{n}");
            n += 1;
        }
        let operation = operation(route, id, &mut schemas);
        paths
            .entry(route.template.openapi_path().0)
            .or_default()
            .insert(method, operation);
    }
    schemas.insert(
        "Status".to_owned(),
        json!({
            "type": "object",
            "description": "An error: the google.rpc.Code, a message, and details (google.rpc.ErrorInfo, BadRequest, RetryInfo, …) each with its @type.",
            "properties": {
                "code": {"type": "integer", "format": "int32"},
                "message": {"type": "string"},
                "details": {"type": "array", "items": {"type": "object", "properties": {"@type": {"type": "string"}}, "additionalProperties": true}},
            },
        }),
    );
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Namaskah JSON API",
            "version": "v1",
            "description": "Proto3 JSON over HTTP, transcoded to the namaskah.v1 gRPC services by their google.api.http annotations. 64-bit integers are strings; enums are names (numbers are accepted). Server streams answer newline-delimited JSON ({\"result\": …} per message, a last {\"error\": …} on failure), or server-sent events with Accept: text/event-stream.",
        },
        "security": [{"bearer": []}, {"apiKey": []}, {}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "The access token that Login returns."},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key", "description": "An API key (nsk_…) from CreateApiKey."},
            },
            "schemas": schemas,
        },
    })
}

fn operation(route: &Route, id: String, schemas: &mut BTreeMap<String, Value>) -> Value {
    let input = route.rpc.input();
    let mut parameters = Vec::new();
    let mut bound: Vec<Vec<String>> = Vec::new();
    let (_, path_parameters) = route.template.openapi_path();
    for (name, field) in path_parameters {
        let description = route
            .template
            .variables()
            .iter()
            .find(|v| v.field_path.join(".") == field)
            .map(|v| {
                format!(
                    "Part of `{field}`, which is `{}`",
                    route.template.variable_pattern(v)
                )
            })
            .unwrap_or_else(|| "A path segment".to_owned());
        parameters.push(json!({
            "name": name,
            "in": "path",
            "required": true,
            "description": description,
            "schema": {"type": "string"},
        }));
    }
    for variable in route.template.variables() {
        bound.push(variable.field_path.clone());
    }
    let mut operation = Map::new();
    operation.insert("operationId".into(), id.into());
    operation.insert("tags".into(), json!([route.rpc.parent_service().name()]));
    if let Some(text) = method_comments(&route.rpc) {
        let summary = text
            .split("\n\n")
            .next()
            .unwrap_or_default()
            .replace('\n', " ");
        operation.insert("summary".into(), summary.into());
        operation.insert("description".into(), text.into());
    }
    match &route.body {
        BodyMapping::Whole => {
            operation.insert(
                "requestBody".into(),
                json!({"required": false, "content": {"application/json": {"schema": reference(&input, schemas)}}}),
            );
        }
        BodyMapping::Field(field) => {
            operation.insert(
                "requestBody".into(),
                json!({"required": false, "content": {"application/json": {"schema": field_schema(field, schemas)}}}),
            );
            bound.push(vec![field.name().to_owned()]);
            query_parameters(&input, &mut Vec::new(), &bound, &mut parameters);
        }
        BodyMapping::None => query_parameters(&input, &mut Vec::new(), &bound, &mut parameters),
    }
    operation.insert("parameters".into(), parameters.into());
    let output = match &route.response_body {
        Some(field) => field_schema(field, schemas),
        None => reference(&route.rpc.output(), schemas),
    };
    let content = if route.rpc.is_server_streaming() {
        json!({
            "application/x-ndjson": {"schema": {"type": "object", "properties": {"result": output, "error": {"$ref": "#/components/schemas/Status"}}}},
            "text/event-stream": {"schema": {"type": "string"}},
        })
    } else {
        json!({"application/json": {"schema": output}})
    };
    operation.insert(
        "responses".into(),
        json!({
            "200": {"description": "OK", "content": content},
            "default": {"description": "An error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Status"}}}},
        }),
    );
    Value::Object(operation)
}

/// The fields a query string may set: every scalar not bound by the path or the body,
/// and the scalars of nested messages as `a.b`.
fn query_parameters(
    message: &MessageDescriptor,
    prefix: &mut Vec<String>,
    bound: &[Vec<String>],
    out: &mut Vec<Value>,
) {
    for field in message.fields() {
        prefix.push(field.name().to_owned());
        let taken = bound
            .iter()
            .any(|b| b.starts_with(prefix) || prefix.starts_with(b));
        if !taken && !field.is_map() {
            match field.kind() {
                Kind::Message(inner) if !is_scalar_message(&inner) => {
                    if field.cardinality() != Cardinality::Repeated && prefix.len() < QUERY_DEPTH {
                        query_parameters(&inner, prefix, bound, out);
                    }
                }
                _ => {
                    let mut scalars = BTreeMap::new();
                    let schema = field_schema(&field, &mut scalars);
                    let mut parameter = json!({
                        "name": prefix.join("."),
                        "in": "query",
                        "required": false,
                        "schema": schema,
                    });
                    if field.cardinality() == Cardinality::Repeated {
                        parameter["explode"] = true.into();
                    }
                    out.push(parameter);
                }
            }
        }
        prefix.pop();
    }
}

fn reference(message: &MessageDescriptor, schemas: &mut BTreeMap<String, Value>) -> Value {
    if let Some(schema) = well_known(message) {
        return schema;
    }
    let name = message.full_name().to_owned();
    if !schemas.contains_key(&name) {
        // Placeholder first: recursive messages refer to themselves.
        schemas.insert(name.clone(), Value::Null);
        let mut properties = Map::new();
        for field in message.fields() {
            properties.insert(field.json_name().to_owned(), field_schema(&field, schemas));
        }
        let mut schema = json!({"type": "object", "properties": properties});
        if let Some(text) = message_comments(message) {
            schema["description"] = text.into();
        }
        schemas.insert(name.clone(), schema);
    }
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn field_schema(field: &FieldDescriptor, schemas: &mut BTreeMap<String, Value>) -> Value {
    if field.is_map() {
        let value = match field.kind() {
            Kind::Message(entry) => entry.map_entry_value_field().kind().clone(),
            other => other,
        };
        return json!({"type": "object", "additionalProperties": kind_schema(&value, schemas)});
    }
    let single = kind_schema(&field.kind(), schemas);
    if field.cardinality() == Cardinality::Repeated {
        json!({"type": "array", "items": single})
    } else {
        single
    }
}

fn kind_schema(kind: &Kind, schemas: &mut BTreeMap<String, Value>) -> Value {
    match kind {
        Kind::Double | Kind::Float => json!({"type": "number"}),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            json!({"type": "integer", "format": "int32"})
        }
        Kind::Uint32 | Kind::Fixed32 => json!({"type": "integer", "format": "int64", "minimum": 0}),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => json!({"type": "string", "format": "int64"}),
        Kind::Uint64 | Kind::Fixed64 => json!({"type": "string", "format": "uint64"}),
        Kind::Bool => json!({"type": "boolean"}),
        Kind::String => json!({"type": "string"}),
        Kind::Bytes => json!({"type": "string", "format": "byte"}),
        Kind::Enum(e) => json!({
            "type": "string",
            "enum": e.values().map(|v| v.name().to_owned()).collect::<Vec<_>>(),
        }),
        Kind::Message(m) => reference(m, schemas),
    }
}

fn is_scalar_message(message: &MessageDescriptor) -> bool {
    well_known(message).is_some_and(|s| s.get("type").is_some_and(|t| t != "object"))
}

fn well_known(message: &MessageDescriptor) -> Option<Value> {
    Some(match message.full_name() {
        "google.protobuf.Timestamp" => json!({"type": "string", "format": "date-time"}),
        "google.protobuf.Duration" => json!({"type": "string", "example": "1.5s"}),
        "google.protobuf.FieldMask" => {
            json!({"type": "string", "example": "displayName,branding.logoUri"})
        }
        "google.protobuf.Struct" => json!({"type": "object", "additionalProperties": true}),
        "google.protobuf.Value" => json!({}),
        "google.protobuf.ListValue" => json!({"type": "array", "items": {}}),
        "google.protobuf.Empty" => json!({"type": "object"}),
        "google.protobuf.Any" => {
            json!({"type": "object", "properties": {"@type": {"type": "string"}}, "additionalProperties": true})
        }
        "google.protobuf.StringValue" | "google.protobuf.BytesValue" => {
            json!({"type": "string", "nullable": true})
        }
        "google.protobuf.BoolValue" => json!({"type": "boolean", "nullable": true}),
        "google.protobuf.Int32Value" | "google.protobuf.UInt32Value" => {
            json!({"type": "integer", "nullable": true})
        }
        "google.protobuf.Int64Value" | "google.protobuf.UInt64Value" => {
            json!({"type": "string", "format": "int64", "nullable": true})
        }
        "google.protobuf.FloatValue" | "google.protobuf.DoubleValue" => {
            json!({"type": "number", "nullable": true})
        }
        _ => return None,
    })
}

fn method_comments(method: &MethodDescriptor) -> Option<String> {
    comments(&method.parent_file(), method.path())
}

fn message_comments(message: &MessageDescriptor) -> Option<String> {
    comments(&message.parent_file(), message.path())
}

/// The leading comments of the element at `path` in `file` (if the descriptor set kept
/// its source info).
fn comments(file: &FileDescriptor, path: &[i32]) -> Option<String> {
    let info = file.file_descriptor_proto().source_code_info.as_ref()?;
    let location = info.location.iter().find(|l| l.path == path)?;
    let text = location.leading_comments.as_deref()?.trim();
    if text.is_empty() {
        return None;
    }
    Some(text.lines().map(str::trim).collect::<Vec<_>>().join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented_with_its_parameters() {
        let (api, _) = JsonApi::from_descriptor_set(namaskah_proto::FILE_DESCRIPTOR_SET);
        let doc = document(&api);
        assert_eq!(doc["openapi"], "3.0.3");
        let operations: usize = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|p| p.as_object().unwrap().len())
            .sum();
        assert_eq!(operations, api.routes().len());

        let cancel = &doc["paths"]["/v1/verifications/{name}:cancel"]["post"];
        assert_eq!(
            cancel["operationId"],
            "VerificationService_CancelVerification"
        );
        assert_eq!(cancel["parameters"][0]["in"], "path");
        assert_eq!(
            cancel["parameters"][0]["description"],
            "Part of `name`, which is `verifications/*`"
        );
        assert!(cancel["requestBody"].is_object());

        let list = &doc["paths"]["/v1/verifications"]["get"];
        let names: Vec<&str> = list["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&"page_size") && names.contains(&"statuses"),
            "{names:?}"
        );

        let revenue = &doc["paths"]["/v1/analytics/revenue"]["get"];
        let names: Vec<&str> = revenue["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"start_date.year"), "{names:?}");

        let money = &doc["components"]["schemas"]["namaskah.v1.Money"];
        assert_eq!(money["properties"]["minorUnits"]["type"], "string");
        assert!(
            doc["components"]["schemas"]
                .as_object()
                .unwrap()
                .values()
                .all(|s| !s.is_null()),
            "every referenced schema is filled in"
        );
        let watch =
            &doc["paths"]["/v1/verifications/{name}:watch"]["get"]["responses"]["200"]["content"];
        assert!(watch["application/x-ndjson"].is_object());
        assert!(watch["text/event-stream"].is_object());
    }
}
