//! The JSON routes: every `google.api.http` binding of the contract, read from the
//! descriptor set at start-up.

use http::Method;
use http::uri::PathAndQuery;
use prost_reflect::{
    Cardinality, DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor,
    MethodDescriptor,
};

use super::template::Template;

/// The name of the method option that carries the HTTP rule.
const HTTP_OPTION: &str = "google.api.http";

/// Where a binding reads the request body from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BodyMapping {
    /// No body: everything not in the path comes from the query string.
    None,
    /// `body: "*"`: every field not bound by the path; the query string is not read.
    Whole,
    /// `body: "field"`: that top-level field; the query string fills the others.
    Field(FieldDescriptor),
}

/// One HTTP binding of one RPC.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    pub(crate) method: Method,
    pub(crate) template: Template,
    pub(crate) body: BodyMapping,
    /// `response_body`: the response field sent as the body instead of the whole message.
    pub(crate) response_body: Option<FieldDescriptor>,
    pub(crate) rpc: MethodDescriptor,
    /// `/package.Service/Method`.
    pub(crate) grpc_path: PathAndQuery,
}

/// A JSON route as the outside sees it (for tests and documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonRoute {
    /// The RPC's full name, such as `namaskah.v1.AuthService.GetMe`.
    pub rpc: String,
    /// The HTTP method, such as `GET`.
    pub method: String,
    /// The path template as annotated, such as `/v1/{name=verifications/*}:cancel`.
    pub template: String,
    /// `*`, a field name, or empty for no body.
    pub body: String,
    /// Whether the RPC streams its answer (NDJSON or server-sent events).
    pub server_streaming: bool,
}

impl Route {
    pub(crate) fn describe(&self) -> JsonRoute {
        JsonRoute {
            rpc: self.rpc.full_name().to_owned(),
            method: self.method.to_string(),
            template: self.template.as_str().to_owned(),
            body: match &self.body {
                BodyMapping::None => String::new(),
                BodyMapping::Whole => "*".to_owned(),
                BodyMapping::Field(field) => field.name().to_owned(),
            },
            server_streaming: self.rpc.is_server_streaming(),
        }
    }
}

/// Reads every binding in `pool`. Bindings that cannot be served (a template that does not
/// parse, a field that does not exist, a client-streaming RPC) are left out, each with a
/// message in the second list: the contract's own test asserts that list is empty.
pub(crate) fn load(pool: &DescriptorPool) -> (Vec<Route>, Vec<String>) {
    let mut routes = Vec::new();
    let mut problems = Vec::new();
    let Some(extension) = pool.get_extension_by_name(HTTP_OPTION) else {
        problems.push(format!(
            "the descriptor set has no `{HTTP_OPTION}` extension"
        ));
        return (routes, problems);
    };
    for service in pool.services() {
        for rpc in service.methods() {
            let options = rpc.options();
            if !options.has_extension(&extension) {
                continue;
            }
            let rule = options.get_extension(&extension);
            let Some(rule) = rule.as_message() else {
                continue;
            };
            if rpc.is_client_streaming() {
                problems.push(format!(
                    "{}: client-streaming RPCs have no JSON mapping",
                    rpc.full_name()
                ));
                continue;
            }
            let mut bindings = vec![rule.clone()];
            if let Some(more) = rule
                .get_field_by_name("additional_bindings")
                .and_then(|v| v.as_list().map(<[_]>::to_vec))
            {
                bindings.extend(more.iter().filter_map(|v| v.as_message().cloned()));
            }
            for binding in &bindings {
                match route(&rpc, binding) {
                    Ok(route) => routes.push(route),
                    Err(problem) => problems.push(format!("{}: {problem}", rpc.full_name())),
                }
            }
        }
    }
    (routes, problems)
}

fn string_field(message: &DynamicMessage, name: &str) -> String {
    message
        .get_field_by_name(name)
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn route(rpc: &MethodDescriptor, rule: &DynamicMessage) -> Result<Route, String> {
    let mut pattern = None;
    for (name, method) in [
        ("get", Method::GET),
        ("put", Method::PUT),
        ("post", Method::POST),
        ("delete", Method::DELETE),
        ("patch", Method::PATCH),
    ] {
        if rule.has_field_by_name(name) {
            pattern = Some((method, string_field(rule, name)));
        }
    }
    if rule.has_field_by_name("custom")
        && let Some(custom) = rule.get_field_by_name("custom")
        && let Some(custom) = custom.as_message()
    {
        let kind = string_field(custom, "kind");
        let method = Method::from_bytes(kind.as_bytes())
            .map_err(|_| format!("custom method {kind:?} is not an HTTP method"))?;
        pattern = Some((method, string_field(custom, "path")));
    }
    let Some((method, path)) = pattern else {
        return Err("the rule has no HTTP method and path".to_owned());
    };
    let template = Template::parse(&path).map_err(|e| e.to_string())?;
    let input = rpc.input();
    for variable in template.variables() {
        let field = resolve(&input, &variable.field_path)?;
        if field.cardinality() == Cardinality::Repeated || matches!(field.kind(), Kind::Message(_))
        {
            return Err(format!(
                "path variable {} must be a singular scalar field",
                variable.field_path.join(".")
            ));
        }
    }
    let body = match string_field(rule, "body").as_str() {
        "" => BodyMapping::None,
        "*" => BodyMapping::Whole,
        name => BodyMapping::Field(
            input
                .get_field_by_name(name)
                .ok_or_else(|| format!("body field {name:?} is not in {}", input.full_name()))?,
        ),
    };
    let response_body = match string_field(rule, "response_body").as_str() {
        "" => None,
        name => Some(rpc.output().get_field_by_name(name).ok_or_else(|| {
            format!(
                "response_body {name:?} is not in {}",
                rpc.output().full_name()
            )
        })?),
    };
    let grpc_path = format!("/{}/{}", rpc.parent_service().full_name(), rpc.name())
        .parse::<PathAndQuery>()
        .map_err(|e| format!("gRPC path: {e}"))?;
    Ok(Route {
        method,
        template,
        body,
        response_body,
        rpc: rpc.clone(),
        grpc_path,
    })
}

/// The field a dotted path names, through singular message fields.
pub(crate) fn resolve(
    message: &MessageDescriptor,
    path: &[String],
) -> Result<FieldDescriptor, String> {
    let mut current = message.clone();
    let mut found = None;
    for (i, name) in path.iter().enumerate() {
        let field = current
            .get_field_by_name(name)
            .or_else(|| current.get_field_by_json_name(name))
            .ok_or_else(|| format!("{} has no field {name:?}", current.full_name()))?;
        if i + 1 < path.len() {
            match field.kind() {
                Kind::Message(inner) if field.cardinality() != Cardinality::Repeated => {
                    current = inner;
                }
                _ => {
                    return Err(format!(
                        "{} is not a message field, so {} cannot be reached",
                        field.full_name(),
                        path.join(".")
                    ));
                }
            }
        }
        found = Some(field);
    }
    found.ok_or_else(|| "an empty field path".to_owned())
}
