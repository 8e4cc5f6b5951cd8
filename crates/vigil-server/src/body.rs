//! Request bodies: JSON read with a size limit into structs that deny unknown fields;
//! every failure is a plain 400 (or 413), never the parser's message.

use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

/// A JSON body of type `T`.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::TooLarge
            } else {
                ApiError::BadRequest
            }
        })?;
        // An object, nothing else: serde would also read a struct from an array of
        // its fields in order, which no client of this API means.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::BadRequest);
        }
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|_| ApiError::BadRequest)
    }
}

/// A raw body within the route's limit; a body too large is a 413 and any other failure
/// to read it a 400, in the API's error form.
#[derive(Debug)]
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Bytes::from_request(req, state)
            .await
            .map(RawBody)
            .map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::TooLarge
                } else {
                    ApiError::BadRequest
                }
            })
    }
}

/// Checks a text field: 1 to `max` characters, no control characters (PostgreSQL's
/// text refuses NUL; the others have no place in a name). Anything else is stored and
/// returned as given.
pub fn text(s: &str, max: usize) -> Result<(), ApiError> {
    checked(!s.is_empty(), s, max, char::is_control)
}

/// Checks a text of lines (a note, a query): not blank, at most `max` characters, no
/// control characters but line breaks and tabs.
pub fn lines(s: &str, max: usize) -> Result<(), ApiError> {
    checked(!s.trim().is_empty(), s, max, |ch| {
        ch.is_control() && ch != '\n' && ch != '\t'
    })
}

/// `s` when `present`, at most `max` characters and none `bad`.
fn checked(present: bool, s: &str, max: usize, bad: impl Fn(char) -> bool) -> Result<(), ApiError> {
    if !present || s.chars().count() > max || s.chars().any(bad) {
        return Err(ApiError::BadRequest);
    }
    Ok(())
}

/// A path id: a positive integer, or not found.
pub fn id(s: &str) -> Result<i64, ApiError> {
    match s.parse::<i64>() {
        Ok(n) if n > 0 && !s.starts_with('+') => Ok(n),
        _ => Err(ApiError::NotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_refuses_controls_and_lengths() {
        assert!(text("x'; DROP TABLE users; --", 64).is_ok());
        assert!(text("", 64).is_err());
        assert!(text("a\0b", 64).is_err());
        assert!(text("a\nb", 64).is_err());
        assert!(text(&"é".repeat(64), 64).is_ok());
        assert!(text(&"é".repeat(65), 64).is_err());
    }

    #[test]
    fn lines_allow_breaks_and_tabs_but_no_other_control() {
        assert!(lines("a\n\tb", 64).is_ok());
        assert!(lines("  \n ", 64).is_err());
        assert!(lines("a\0b", 64).is_err());
        assert!(lines("a\rb", 64).is_err());
        assert!(lines(&"x".repeat(65), 64).is_err());
    }

    #[test]
    fn ids_are_positive_integers() {
        assert_eq!(id("12").ok(), Some(12));
        for bad in [
            "0",
            "-1",
            "+1",
            "1e3",
            "",
            "1 OR 1=1",
            "99999999999999999999",
        ] {
            assert!(id(bad).is_err(), "{bad}");
        }
    }
}
