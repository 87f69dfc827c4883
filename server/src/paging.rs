//! AIP-158 page tokens and AIP-122 resource names.
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

use crate::error::ApiError;

/// Page size when the request leaves `page_size` at 0.
pub const DEFAULT_PAGE_SIZE: u64 = 50;
/// Larger requests are served this many items (AIP-158: capped, not refused).
pub const MAX_PAGE_SIZE: u64 = 100;

/// The number of items to return for a request's `page_size`.
pub fn page_size(requested: i32) -> Result<u64, ApiError> {
    match requested {
        0 => Ok(DEFAULT_PAGE_SIZE),
        n if n < 0 => Err(ApiError::invalid("page_size", "must not be negative")),
        n => Ok((n as u64).min(MAX_PAGE_SIZE)),
    }
}

/// An opaque page token: the last id of the page, tagged with the collection it belongs to
/// (a token from one list is refused by another).
pub fn encode(last_id: Uuid, collection: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{collection}:{last_id}"))
}

/// Reads a page token; empty means the first page.
pub fn decode(token: &str, collection: &str) -> Result<Option<Uuid>, ApiError> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid = || ApiError::invalid("page_token", "is not a page token of this list");
    if token.len() > 128 {
        return Err(invalid());
    }
    let text = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let text = String::from_utf8(text).map_err(|_| invalid())?;
    let (tag, id) = text.split_once(':').ok_or_else(invalid)?;
    if tag != collection {
        return Err(invalid());
    }
    id.parse().map(Some).map_err(|_| invalid())
}

/// Parses `{collection}/{uuid}` from the request field `field`.
pub fn parse_name(name: &str, field: &str, collection: &str) -> Result<Uuid, ApiError> {
    if name.is_empty() {
        return Err(ApiError::invalid(field, "is required"));
    }
    name.strip_prefix(collection)
        .and_then(|rest| rest.strip_prefix('/'))
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| {
            ApiError::invalid(
                field,
                format!("must be a resource name like {collection}/{{id}}"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_are_scoped() {
        let id = Uuid::now_v7();
        let token = encode(id, "apikeys");
        assert_eq!(decode(&token, "apikeys").unwrap(), Some(id));
        assert!(decode(&token, "verifications").is_err());
        assert!(decode("garbage!", "apikeys").is_err());
        assert_eq!(decode("", "apikeys").unwrap(), None);
    }

    #[test]
    fn page_sizes() {
        assert_eq!(page_size(0).unwrap(), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(7).unwrap(), 7);
        assert_eq!(page_size(10_000).unwrap(), MAX_PAGE_SIZE);
        assert!(page_size(-1).is_err());
    }

    #[test]
    fn names() {
        let id = Uuid::now_v7();
        assert_eq!(
            parse_name(&format!("apiKeys/{id}"), "name", "apiKeys").unwrap(),
            id
        );
        for bad in [
            "",
            "apiKeys/",
            "apiKeys/xyz",
            &format!("users/{id}"),
            &id.to_string(),
        ] {
            assert!(parse_name(bad, "name", "apiKeys").is_err(), "{bad}");
        }
    }
}
