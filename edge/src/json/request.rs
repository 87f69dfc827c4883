//! Building the request message of a JSON call: path variables first, then the body, then
//! the query string, as `google/api/http.proto` orders them.
//!
//! - A path variable always wins: a body or query value for the same field is ignored.
//! - `body: "*"` carries every other field; the query string is then not read.
//! - `body: "field"` carries that field; query parameters fill the rest.
//! - Without a body every field not in the path may come from the query string:
//!   `?page_size=10&statuses=ACTIVE&statuses=PENDING&start_date.year=2026`, with the proto
//!   name or the JSON name of each field.
//!
//! Values are read as proto3 JSON reads them (enum names or numbers, 64-bit integers as
//! strings, `Timestamp` and `Duration` in their string forms); unknown fields are refused.

use prost_reflect::{
    Cardinality, DeserializeOptions, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor,
    ReflectMessage as _, Value,
};

use super::routes::{BodyMapping, Route, resolve};
use super::template::Bindings;

/// A client mistake in the request, with the field it concerns (for `BadRequest`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadInput {
    pub(crate) field: String,
    pub(crate) description: String,
}

impl BadInput {
    fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

fn options() -> DeserializeOptions {
    DeserializeOptions::new().deny_unknown_fields(true)
}

/// The request message for `route` from the matched path, the body and the query.
pub(crate) fn build(
    route: &Route,
    bindings: &Bindings,
    body: &[u8],
    query: Option<&str>,
) -> Result<DynamicMessage, BadInput> {
    let input = route.rpc.input();
    let body_is_empty = body.iter().all(u8::is_ascii_whitespace);
    let mut message = match &route.body {
        BodyMapping::None => {
            if !body_is_empty {
                return Err(BadInput::new(
                    "",
                    format!(
                        "{} {} takes no request body; send its fields in the query string",
                        route.method,
                        route.template.as_str()
                    ),
                ));
            }
            DynamicMessage::new(input.clone())
        }
        BodyMapping::Whole if body_is_empty => DynamicMessage::new(input.clone()),
        BodyMapping::Whole => {
            let mut json = serde_json::Deserializer::from_slice(body);
            let mut track = serde_path_to_error::Track::new();
            let message = DynamicMessage::deserialize_with_options(
                input.clone(),
                serde_path_to_error::Deserializer::new(&mut json, &mut track),
                &options(),
            )
            .map_err(|e| body_error(&track.path(), &e))?;
            json.end()
                .map_err(|e| BadInput::new("", format!("invalid JSON body: {e}")))?;
            message
        }
        BodyMapping::Field(_) if body_is_empty => DynamicMessage::new(input.clone()),
        BodyMapping::Field(field) => {
            let value: serde_json::Value = serde_json::from_slice(body)
                .map_err(|e| BadInput::new(field.name(), format!("invalid JSON body: {e}")))?;
            let mut message = DynamicMessage::new(input.clone());
            let parsed = field_value(field, value).map_err(|e| {
                BadInput::new(
                    field.name(),
                    format!("invalid JSON body for `{}`: {e}", field.name()),
                )
            })?;
            message.set_field(field, parsed);
            message
        }
    };

    for (path, raw) in bindings {
        set_path(&mut message, path, raw)?;
    }

    if route.body != BodyMapping::Whole
        && let Some(query) = query
    {
        apply_query(route, &mut message, bindings, query)?;
    }
    Ok(message)
}

/// A body that does not read as the message, with the field where it went wrong.
fn body_error(path: &serde_path_to_error::Path, error: &serde_json::Error) -> BadInput {
    let field = path.to_string();
    if field.is_empty() || field == "." {
        BadInput::new("", format!("invalid JSON body: {error}"))
    } else {
        BadInput::new(&field, format!("invalid JSON body at `{field}`: {error}"))
    }
}

/// Reads `value` (JSON) as the value of `field`, exactly as proto3 JSON would read
/// `{"field": value}` in the field's message.
fn field_value(field: &FieldDescriptor, value: serde_json::Value) -> Result<Value, String> {
    let mut object = serde_json::Map::new();
    object.insert(field.name().to_owned(), value);
    let holder = DynamicMessage::deserialize_with_options(
        field.parent_message().clone(),
        serde_json::Value::Object(object),
        &options(),
    )
    .map_err(|e| e.to_string())?;
    Ok(holder.get_field(field).into_owned())
}

/// The JSON a text value (from a path or query string) stands for, by the field's type:
/// text stays text for strings, bytes and messages (`Timestamp`, `Duration`, wrappers);
/// numbers and booleans become JSON numbers and booleans when they look like them.
fn text_as_json(field: &FieldDescriptor, text: &str) -> serde_json::Value {
    match field.kind() {
        Kind::String | Kind::Bytes | Kind::Message(_) => serde_json::Value::String(text.into()),
        Kind::Bool => match text {
            "true" => serde_json::Value::Bool(true),
            "false" => serde_json::Value::Bool(false),
            other => serde_json::Value::String(other.into()),
        },
        _ => match serde_json::from_str::<serde_json::Number>(text) {
            Ok(number) => serde_json::Value::Number(number),
            Err(_) => serde_json::Value::String(text.into()),
        },
    }
}

/// The message that holds the last of `fields`, creating the messages on the way; `None`
/// if a field on the way is not a singular message (paths are resolved before, so never).
fn holder_of<'m>(
    message: &'m mut DynamicMessage,
    fields: &[FieldDescriptor],
) -> Option<&'m mut DynamicMessage> {
    let mut current = message;
    for field in &fields[..fields.len().saturating_sub(1)] {
        let Kind::Message(inner) = field.kind() else {
            return None;
        };
        let value = current.get_field_mut(field);
        if value.as_message().is_none() {
            *value = Value::Message(DynamicMessage::new(inner));
        }
        current = value.as_message_mut()?;
    }
    Some(current)
}

fn set_leaf(
    message: &mut DynamicMessage,
    fields: &[FieldDescriptor],
    leaf: &FieldDescriptor,
    value: Value,
    name: &str,
) -> Result<(), BadInput> {
    let holder = holder_of(message, fields)
        .ok_or_else(|| BadInput::new(name, format!("`{name}` cannot be reached")))?;
    holder.set_field(leaf, value);
    Ok(())
}

/// Every field along a dotted path.
fn fields_along(
    input: &MessageDescriptor,
    path: &[String],
) -> Result<Vec<FieldDescriptor>, String> {
    let mut fields = Vec::with_capacity(path.len());
    for i in 0..path.len() {
        fields.push(resolve(input, &path[..=i])?);
    }
    Ok(fields)
}

fn set_path(message: &mut DynamicMessage, path: &[String], raw: &str) -> Result<(), BadInput> {
    let name = path.join(".");
    let fields = fields_along(&message.descriptor(), path).map_err(|e| BadInput::new(&name, e))?;
    let Some(leaf) = fields.last().cloned() else {
        return Err(BadInput::new(name, "an empty field path"));
    };
    let value = field_value(&leaf, text_as_json(&leaf, raw)).map_err(|e| {
        BadInput::new(
            &name,
            format!("invalid value in the path for `{name}`: {e}"),
        )
    })?;
    set_leaf(message, &fields, &leaf, value, &name)
}

/// Splits a query string into decoded `(name, value)` pairs (`+` is a space).
pub(crate) fn query_pairs(query: &str) -> Result<Vec<(String, String)>, BadInput> {
    let mut pairs = Vec::new();
    for part in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = part.split_once('=').unwrap_or((part, ""));
        let decode = |s: &str| {
            form_decode(s).ok_or_else(|| {
                BadInput::new(
                    "",
                    format!("the query string has a broken escape or invalid UTF-8 in {part:?}"),
                )
            })
        };
        pairs.push((decode(name)?, decode(value)?));
    }
    Ok(pairs)
}

fn form_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn apply_query(
    route: &Route,
    message: &mut DynamicMessage,
    bindings: &Bindings,
    query: &str,
) -> Result<(), BadInput> {
    let input = route.rpc.input();
    // Values by field, in order of appearance (repeated fields take them all).
    let mut assigned: Vec<(Vec<FieldDescriptor>, String, Vec<String>)> = Vec::new();
    for (name, value) in query_pairs(query)? {
        let path: Vec<String> = name.split('.').map(str::to_owned).collect();
        let fields = fields_along(&input, &path)
            .map_err(|e| BadInput::new(&name, format!("unknown query parameter `{name}`: {e}")))?;
        let numbers: Vec<u32> = fields.iter().map(FieldDescriptor::number).collect();
        // Lower precedence than the path and the body: a field they carry is theirs.
        let in_path = bindings.iter().any(|(bound, _)| {
            let bound = fields_along(&input, bound)
                .map(|f| f.iter().map(FieldDescriptor::number).collect::<Vec<_>>())
                .unwrap_or_default();
            bound.starts_with(&numbers) || numbers.starts_with(&bound)
        });
        let in_body =
            matches!(&route.body, BodyMapping::Field(f) if numbers.first() == Some(&f.number()));
        if in_path || in_body {
            continue;
        }
        let Some(leaf) = fields.last() else { continue };
        if leaf.is_map() || (matches!(leaf.kind(), Kind::Message(_)) && !is_text_message(leaf)) {
            return Err(BadInput::new(
                &name,
                format!(
                    "`{name}` is a message or map field and cannot be set from the query string; set its fields (`{name}.…`) instead"
                ),
            ));
        }
        match assigned.iter_mut().find(|(f, _, _)| {
            f.iter()
                .map(FieldDescriptor::number)
                .eq(numbers.iter().copied())
        }) {
            Some((_, _, values)) if leaf.cardinality() == Cardinality::Repeated => {
                values.push(value);
            }
            Some(_) => {
                return Err(BadInput::new(
                    &name,
                    format!("query parameter `{name}` is given more than once"),
                ));
            }
            None => assigned.push((fields, name, vec![value])),
        }
    }
    for (fields, name, values) in assigned {
        let Some(leaf) = fields.last().cloned() else {
            continue;
        };
        let json = if leaf.cardinality() == Cardinality::Repeated {
            serde_json::Value::Array(values.iter().map(|v| text_as_json(&leaf, v)).collect())
        } else {
            text_as_json(&leaf, values.first().map_or("", String::as_str))
        };
        let value = field_value(&leaf, json).map_err(|e| {
            BadInput::new(
                &name,
                format!("invalid value for query parameter `{name}`: {e}"),
            )
        })?;
        set_leaf(message, &fields, &leaf, value, &name)?;
    }
    Ok(())
}

/// Messages whose proto3 JSON form is a string or a number, so a query value can set them.
fn is_text_message(field: &FieldDescriptor) -> bool {
    match field.kind() {
        Kind::Message(message) => matches!(
            message.full_name(),
            "google.protobuf.Timestamp"
                | "google.protobuf.Duration"
                | "google.protobuf.FieldMask"
                | "google.protobuf.StringValue"
                | "google.protobuf.BytesValue"
                | "google.protobuf.BoolValue"
                | "google.protobuf.Int32Value"
                | "google.protobuf.Int64Value"
                | "google.protobuf.UInt32Value"
                | "google.protobuf.UInt64Value"
                | "google.protobuf.FloatValue"
                | "google.protobuf.DoubleValue"
        ),
        _ => false,
    }
}
