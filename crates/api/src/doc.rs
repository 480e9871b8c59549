//! What every operation of the OpenAPI document may answer besides its own
//! responses: the problem documents the layers and extractors produce
//! (malformed or oversized bodies, bad parameters, missing tokens, rate
//! limits, an unavailable database), so clients and fuzzers can rely on the
//! document for every status the server sends.

use utoipa::openapi::path::Operation;
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};

use crate::error::PROBLEM_JSON;

/// Adds the shared problem responses to every operation and gives each
/// error response its real content type, `application/problem+json`.
pub fn document_problems(openapi: &mut OpenApi) {
    for (path, item) in openapi.paths.paths.iter_mut() {
        let has_path_parameters = path.contains('{');
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            document_operation(operation, has_path_parameters);
        }
    }
}

fn document_operation(operation: &mut Operation, has_path_parameters: bool) {
    let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
    let mut shared = vec![
        (
            "422",
            "Invalid input (query, path or body): `validation_failed`, each field named",
        ),
        ("429", "Rate limited: `rate_limited`, see `Retry-After`"),
        (
            "503",
            "Busy, or the database is unreachable: retry after `Retry-After`",
        ),
    ];
    if operation.request_body.is_some() {
        shared.extend([
            ("400", "Malformed body"),
            ("413", "Body over the size limit"),
            ("415", "Unsupported `Content-Type`"),
        ]);
    }
    if secured {
        shared.extend([
            ("401", "Missing, invalid, expired or revoked token"),
            ("403", "The caller's role or account does not allow this"),
        ]);
    }
    if has_path_parameters {
        shared.push(("404", "No such resource (or not the caller's)"));
    }
    for (status, response) in operation.responses.responses.iter_mut() {
        let is_error = status.starts_with('4') || status.starts_with('5');
        if let (true, RefOr::T(response)) = (is_error, response)
            && let Some(content) = response.content.shift_remove("application/json")
        {
            response.content.insert(PROBLEM_JSON.to_owned(), content);
        }
    }
    for (status, description) in shared {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::T(problem_response(description)));
    }
}

fn problem_response(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
}
