//! Path templates of `google.api.http` rules, and matching request paths against them.
//!
//! The grammar (from `google/api/http.proto`):
//!
//! ```text
//! Template = "/" Segments [ Verb ] ;
//! Segments = Segment { "/" Segment } ;
//! Segment  = "*" | "**" | LITERAL | Variable ;
//! Variable = "{" FieldPath [ "=" Segments ] "}" ;
//! FieldPath = IDENT { "." IDENT } ;
//! Verb     = ":" LITERAL ;
//! ```
//!
//! `*` matches one segment, `**` zero or more (it must come last); `{field}` is
//! `{field=*}`. A variable's value is the text of the segments it covers, joined by `/`:
//! percent-decoded in full for a one-segment variable, and with `%2F` kept encoded for a
//! multi-segment one (so the segments it was made of stay visible).

use std::fmt;

/// One segment of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `*`
    Any,
    /// `**`
    Rest,
}

/// A variable: the field it binds and the segments it covers (`start..end`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Variable {
    /// The dotted field path, such as `tenant.name`.
    pub(crate) field_path: Vec<String>,
    start: usize,
    end: usize,
}

/// A parsed path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    source: String,
    segments: Vec<Segment>,
    variables: Vec<Variable>,
    verb: Option<String>,
}

/// Why a template does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("path template {template:?}: {reason}")]
pub(crate) struct TemplateError {
    template: String,
    reason: String,
}

/// A template matched against a path: each variable's field path and value.
pub(crate) type Bindings = Vec<(Vec<String>, String)>;

impl Template {
    pub(crate) fn parse(source: &str) -> Result<Self, TemplateError> {
        let fail = |reason: &str| TemplateError {
            template: source.to_owned(),
            reason: reason.to_owned(),
        };
        let Some(rest) = source.strip_prefix('/') else {
            return Err(fail("must start with `/`"));
        };
        // The verb is a `:` after the last `/` that is not inside a variable.
        let (body, verb) = split_verb(rest);
        if verb.is_some_and(|v| v.is_empty() || !v.chars().all(is_literal_char)) {
            return Err(fail("the verb after `:` must be a non-empty literal"));
        }

        let mut segments = Vec::new();
        let mut variables: Vec<Variable> = Vec::new();
        let mut chars = body;
        loop {
            if let Some(inner) = chars.strip_prefix('{') {
                let Some(close) = inner.find('}') else {
                    return Err(fail("a `{` has no matching `}`"));
                };
                let (field, pattern) = match inner[..close].split_once('=') {
                    Some((field, pattern)) => (field, pattern),
                    None => (&inner[..close], "*"),
                };
                let field_path: Vec<String> = field.split('.').map(str::to_owned).collect();
                if field_path
                    .iter()
                    .any(|ident| ident.is_empty() || !ident.chars().all(is_ident_char))
                {
                    return Err(fail("a variable must name a field, such as `{name}`"));
                }
                if variables.iter().any(|v| v.field_path == field_path) {
                    return Err(fail("the same field is bound twice"));
                }
                let start = segments.len();
                for part in pattern.split('/') {
                    if part.contains(['{', '}']) {
                        return Err(fail("variables cannot be nested"));
                    }
                    segments.push(segment(part).ok_or_else(|| fail("empty or invalid segment"))?);
                }
                variables.push(Variable {
                    field_path,
                    start,
                    end: segments.len(),
                });
                chars = &inner[close + 1..];
            } else {
                let end = chars.find('/').unwrap_or(chars.len());
                let part = &chars[..end];
                if part.contains(['{', '}']) {
                    return Err(fail("a variable must be a whole segment"));
                }
                segments.push(segment(part).ok_or_else(|| fail("empty or invalid segment"))?);
                chars = &chars[end..];
            }
            match chars.strip_prefix('/') {
                Some(next) => chars = next,
                None if chars.is_empty() => break,
                None => return Err(fail("a variable must be a whole segment")),
            }
        }
        if let Some(at) = segments.iter().position(|s| *s == Segment::Rest)
            && at + 1 != segments.len()
        {
            return Err(fail("`**` must be the last segment"));
        }
        Ok(Self {
            source: source.to_owned(),
            segments,
            variables,
            verb: verb.map(str::to_owned),
        })
    }

    /// The template as written.
    pub(crate) fn as_str(&self) -> &str {
        &self.source
    }

    /// The fields bound by the path.
    pub(crate) fn variables(&self) -> &[Variable] {
        &self.variables
    }

    /// How specific the template is, for choosing between two that match one path: a
    /// verb first, then more literal segments, then fewer wildcards.
    pub(crate) fn specificity(&self) -> (bool, usize, usize) {
        let literals = self
            .segments
            .iter()
            .filter(|s| matches!(s, Segment::Literal(_)))
            .count();
        let rest = self
            .segments
            .iter()
            .filter(|s| **s == Segment::Rest)
            .count();
        (self.verb.is_some(), literals, usize::MAX - rest)
    }

    /// Matches `path` (the raw, still percent-encoded path of a request, without query).
    pub(crate) fn matches(&self, path: &str) -> Option<Bindings> {
        let rest = path.strip_prefix('/')?;
        let rest = match &self.verb {
            Some(verb) => {
                let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
                let (head, last) = rest.split_at(last_slash);
                let (name, found) = last.rsplit_once(':')?;
                if found != verb {
                    return None;
                }
                &rest[..head.len() + name.len()]
            }
            None => rest,
        };
        let parts: Vec<&str> = rest.split('/').collect();

        // Where each template segment's match starts, in `parts`.
        let mut starts = Vec::with_capacity(self.segments.len() + 1);
        let mut at = 0;
        for segment in &self.segments {
            starts.push(at);
            match segment {
                Segment::Literal(literal) => {
                    if parts.get(at).copied() != Some(literal.as_str()) {
                        return None;
                    }
                    at += 1;
                }
                Segment::Any => {
                    if parts.get(at).is_none_or(|p| p.is_empty()) {
                        return None;
                    }
                    at += 1;
                }
                Segment::Rest => {
                    // The last segment: it takes whatever is left (nothing counts too),
                    // but never an empty segment.
                    if parts[at..].iter().any(|p| p.is_empty()) {
                        return None;
                    }
                    at = parts.len();
                }
            }
        }
        starts.push(at);
        if at != parts.len() {
            // `/v1/x` does not match `/v1/x/` nor `/v1/x/y`.
            return None;
        }

        let mut bindings = Vec::with_capacity(self.variables.len());
        for variable in &self.variables {
            let covered = &parts[starts[variable.start]..starts[variable.end]];
            let multi = variable.end - variable.start > 1
                || self.segments[variable.start..variable.end].contains(&Segment::Rest);
            let mut value = String::new();
            for (i, part) in covered.iter().enumerate() {
                if i > 0 {
                    value.push('/');
                }
                value.push_str(&percent_decode(part, multi)?);
            }
            bindings.push((variable.field_path.clone(), value));
        }
        Some(bindings)
    }

    /// The template in OpenAPI's form: literal segments (also those inside variables) as
    /// they are, and each wildcard as a parameter, so that filling the parameters gives a
    /// path that matches. Returns the path and, per parameter, its name and the variable's
    /// field path: `/v1/{name=verifications/*}:cancel` is `/v1/verifications/{name}:cancel`,
    /// `{name=services/*/prices/*}` is `services/{name_1}/prices/{name_2}`.
    pub(crate) fn openapi_path(&self) -> (String, Vec<(String, String)>) {
        let mut out = String::new();
        let mut parameters = Vec::new();
        for (i, segment) in self.segments.iter().enumerate() {
            out.push('/');
            let variable = self.variables.iter().find(|v| v.start <= i && i < v.end);
            match (segment, variable) {
                (Segment::Literal(literal), _) => out.push_str(literal),
                (_, Some(variable)) => {
                    let field = variable.field_path.join(".");
                    let wildcards = self.segments[variable.start..variable.end]
                        .iter()
                        .filter(|s| !matches!(s, Segment::Literal(_)))
                        .count();
                    let name = if wildcards == 1 {
                        field.clone()
                    } else {
                        let index = self.segments[variable.start..i]
                            .iter()
                            .filter(|s| !matches!(s, Segment::Literal(_)))
                            .count()
                            + 1;
                        format!("{field}_{index}")
                    };
                    out.push('{');
                    out.push_str(&name);
                    out.push('}');
                    parameters.push((name, field));
                }
                (Segment::Any | Segment::Rest, None) => {
                    let name = format!("segment_{}", parameters.len() + 1);
                    out.push('{');
                    out.push_str(&name);
                    out.push('}');
                    parameters.push((name.clone(), String::new()));
                }
            }
        }
        if let Some(verb) = &self.verb {
            out.push(':');
            out.push_str(verb);
        }
        (out, parameters)
    }

    /// The pattern a variable's value must have, such as `verifications/*`.
    pub(crate) fn variable_pattern(&self, variable: &Variable) -> String {
        self.segments[variable.start..variable.end]
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("/")
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Segment::Literal(literal) => f.write_str(literal),
            Segment::Any => f.write_str("*"),
            Segment::Rest => f.write_str("**"),
        }
    }
}

/// Splits `a/b/{x=c/*}:verb` into the segments and the verb.
fn split_verb(rest: &str) -> (&str, Option<&str>) {
    let mut depth = 0usize;
    let mut last_slash = 0;
    for (i, c) in rest.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            '/' if depth == 0 => last_slash = i,
            _ => {}
        }
    }
    let mut depth = 0usize;
    for (i, c) in rest[last_slash..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ':' if depth == 0 => {
                let at = last_slash + i;
                return (&rest[..at], Some(&rest[at + 1..]));
            }
            _ => {}
        }
    }
    (rest, None)
}

fn segment(part: &str) -> Option<Segment> {
    match part {
        "*" => Some(Segment::Any),
        "**" => Some(Segment::Rest),
        literal if !literal.is_empty() && literal.chars().all(is_literal_char) => {
            Some(Segment::Literal(literal.to_owned()))
        }
        _ => None,
    }
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn is_literal_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~')
}

/// Percent-decodes one path segment; `None` when the escapes or the UTF-8 are broken.
/// With `keep_slash`, `%2F` stays encoded (multi-segment variables).
fn percent_decode(segment: &str, keep_slash: bool) -> Option<String> {
    if !segment.contains('%') {
        return Some(segment.to_owned());
    }
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            let byte = u8::from_str_radix(hex, 16).ok()?;
            if keep_slash && byte == b'/' {
                out.extend_from_slice(&bytes[i..i + 3]);
            } else {
                out.push(byte);
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(source: &str) -> Template {
        Template::parse(source).unwrap()
    }

    fn bound(template: &str, path: &str) -> Option<Vec<(String, String)>> {
        t(template).matches(path).map(|bindings| {
            bindings
                .into_iter()
                .map(|(field, value)| (field.join("."), value))
                .collect()
        })
    }

    fn pairs(list: &[(&str, &str)]) -> Option<Vec<(String, String)>> {
        Some(
            list.iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn literal_paths() {
        assert_eq!(bound("/v1/users/me", "/v1/users/me"), pairs(&[]));
        assert_eq!(bound("/v1/users/me", "/v1/users/me/"), None);
        assert_eq!(bound("/v1/users/me", "/v1/users"), None);
        assert_eq!(bound("/v1/users/me", "/v1/users/me/x"), None);
        assert_eq!(bound("/v1/users/me", "/v1/users/you"), None);
        assert_eq!(bound("/v1/users/me", "v1/users/me"), None);
    }

    #[test]
    fn simple_variables() {
        assert_eq!(
            bound("/v1/topUps/{reference}:verify", "/v1/topUps/nms-1:verify"),
            pairs(&[("reference", "nms-1")])
        );
        assert_eq!(
            bound("/v1/topUps/{reference}:verify", "/v1/topUps/:verify"),
            None
        );
        assert_eq!(
            bound("/v1/things/{id}", "/v1/things/a%20b%2Fc"),
            pairs(&[("id", "a b/c")]),
            "a one-segment variable is fully decoded"
        );
        assert_eq!(bound("/v1/things/{id}", "/v1/things/a/b"), None);
    }

    #[test]
    fn variables_with_segments() {
        assert_eq!(
            bound("/v1/{name=verifications/*}", "/v1/verifications/abc"),
            pairs(&[("name", "verifications/abc")])
        );
        assert_eq!(
            bound("/v1/{name=verifications/*}", "/v1/verifications"),
            None
        );
        assert_eq!(
            bound("/v1/{name=verifications/*}", "/v1/services/abc"),
            None
        );
        assert_eq!(
            bound(
                "/v1/{name=tenants/*/services/*/prices/*}:set",
                "/v1/tenants/t1/services/whatsapp/prices/GB:set"
            ),
            pairs(&[("name", "tenants/t1/services/whatsapp/prices/GB")])
        );
        assert_eq!(
            bound("/v1/{tenant.name=tenants/*}", "/v1/tenants/t%2F1"),
            pairs(&[("tenant.name", "tenants/t%2F1")]),
            "a multi-segment variable keeps %2F"
        );
        assert_eq!(
            bound("/v1/{parent=tenants/*}/prices", "/v1/tenants/t1/prices"),
            pairs(&[("parent", "tenants/t1")])
        );
    }

    #[test]
    fn verbs() {
        let cancel = "/v1/{name=verifications/*}:cancel";
        assert_eq!(
            bound(cancel, "/v1/verifications/v1:cancel"),
            pairs(&[("name", "verifications/v1")])
        );
        assert_eq!(bound(cancel, "/v1/verifications/v1:refund"), None);
        assert_eq!(bound(cancel, "/v1/verifications/v1"), None);
        assert_eq!(bound("/v1/auth:login", "/v1/auth:login"), pairs(&[]));
        assert_eq!(bound("/v1/auth:login", "/v1/auth"), None);
        assert_eq!(bound("/v1/auth:login", "/v1/auth:login:login"), None);
        assert_eq!(
            bound("/v1/verifications:watch", "/v1/verifications:watch"),
            pairs(&[])
        );
        // Without a verb in the template, a `:` is part of the segment.
        assert_eq!(bound("/v1/verifications", "/v1/verifications:watch"), None);
    }

    #[test]
    fn wildcards() {
        assert_eq!(bound("/v1/*/x", "/v1/a/x"), pairs(&[]));
        assert_eq!(bound("/v1/*/x", "/v1//x"), None);
        assert_eq!(
            bound("/v1/{path=files/**}", "/v1/files/a/b/c"),
            pairs(&[("path", "files/a/b/c")])
        );
        assert_eq!(
            bound("/v1/{path=files/**}", "/v1/files"),
            pairs(&[("path", "files")])
        );
        assert_eq!(bound("/v1/**", "/v1/a/b"), pairs(&[]));
        assert_eq!(bound("/v1/**:get", "/v1/a/b:get"), pairs(&[]));
        assert_eq!(bound("/v1/**", "/v2/a"), None);
    }

    #[test]
    fn broken_escapes_do_not_match() {
        assert_eq!(bound("/v1/things/{id}", "/v1/things/%zz"), None);
        assert_eq!(bound("/v1/things/{id}", "/v1/things/%"), None);
        assert_eq!(bound("/v1/things/{id}", "/v1/things/%ff"), None);
    }

    #[test]
    fn bad_templates_are_refused() {
        for bad in [
            "v1/x",
            "/v1/{name",
            "/v1/{}",
            "/v1/{a..b}",
            "/v1/x{name}",
            "/v1/{a={b}}",
            "/v1/**/x",
            "/v1//x",
            "/v1/x:",
            "/v1/{a}/{a}",
        ] {
            assert!(Template::parse(bad).is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn specificity_prefers_verbs_and_literals() {
        assert!(t("/v1/verifications:watch").specificity() > t("/v1/{name=*}").specificity());
        assert!(t("/v1/a/b").specificity() > t("/v1/a/*").specificity());
        assert!(t("/v1/a/*").specificity() > t("/v1/a/**").specificity());
    }

    #[test]
    fn openapi_paths() {
        let names = |list: Vec<(String, String)>| -> Vec<String> {
            list.into_iter()
                .map(|(name, field)| format!("{name}={field}"))
                .collect()
        };
        let (path, params) = t("/v1/{name=verifications/*}:cancel").openapi_path();
        assert_eq!(path, "/v1/verifications/{name}:cancel");
        assert_eq!(names(params), ["name=name"]);
        assert_eq!(t("/v1/users/me").openapi_path().0, "/v1/users/me");
        let (path, params) = t("/v1/{name=services/*/prices/*}:set").openapi_path();
        assert_eq!(path, "/v1/services/{name_1}/prices/{name_2}:set");
        assert_eq!(names(params), ["name_1=name", "name_2=name"]);
        let (path, params) = t("/v1/topUps/{reference}:verify").openapi_path();
        assert_eq!(path, "/v1/topUps/{reference}:verify");
        assert_eq!(names(params), ["reference=reference"]);
        let template = t("/v1/{parent=tenants/*}/prices");
        assert_eq!(template.openapi_path().0, "/v1/tenants/{parent}/prices");
        assert_eq!(
            template.variable_pattern(&template.variables()[0]),
            "tenants/*"
        );
    }
}
