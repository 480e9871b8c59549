//! Community events: create (`/events/new`), edit (`/events/{id}/edit`),
//! attend, subscribe, threaded comments and the attachment upload.

use api::AppState;
use askama::Template;
use axum::extract::{Multipart, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use domain::events::{EventInput, EventPatch, GeoPoint};
use domain::user::Role;
use serde::Deserialize;
use services::events::EventEdit;
use uuid::Uuid;

use crate::admin::events::parse_time;
use crate::extract::PagePath;
use crate::forms::FieldErrors;
use crate::render::{self, Layout, html};
use crate::session::{CSRF_FIELD, Session};

#[derive(Clone, Default, Deserialize)]
#[serde(default)]
pub struct EventFields {
    pub title: String,
    pub description: String,
    pub location: String,
    pub start_time: String,
    pub end_time: String,
    pub tags: String,
    pub max_attendees: String,
    pub latitude: String,
    pub longitude: String,
}

impl EventFields {
    fn blank() -> EventFields {
        let start = chrono::Utc::now() + chrono::Duration::days(1);
        EventFields {
            start_time: start.format("%Y-%m-%dT%H:%M").to_string(),
            end_time: (start + chrono::Duration::hours(2))
                .format("%Y-%m-%dT%H:%M")
                .to_string(),
            ..EventFields::default()
        }
    }

    fn of(event: &domain::events::Event) -> EventFields {
        EventFields {
            title: event.title.clone(),
            description: event.description.clone(),
            location: event.location.clone(),
            start_time: event.start_time.format("%Y-%m-%dT%H:%M").to_string(),
            end_time: event.end_time.format("%Y-%m-%dT%H:%M").to_string(),
            tags: event.tags.join(", "),
            max_attendees: event.max_attendees.map(|m| m.to_string()).unwrap_or_default(),
            latitude: event.latitude.map(|v| v.to_string()).unwrap_or_default(),
            longitude: event.longitude.map(|v| v.to_string()).unwrap_or_default(),
        }
    }

    fn input(&self, attachment_url: Option<String>) -> Result<EventInput, FieldErrors> {
        let mut errors = FieldErrors::default();
        let start = parse_time(&self.start_time)
            .map_err(|m| errors.add("start_time", &m))
            .ok();
        let end = parse_time(&self.end_time)
            .map_err(|m| errors.add("end_time", &m))
            .ok();
        let max_attendees = match self.max_attendees.trim() {
            "" => None,
            text => text
                .parse::<i64>()
                .map_err(|_| errors.add("max_attendees", "enter a whole number or leave empty"))
                .ok(),
        };
        let number = |text: &str| text.trim().parse::<f64>().ok();
        let coordinates = match (self.latitude.trim(), self.longitude.trim()) {
            ("", "") => None,
            (lat, lng) => match (number(lat), number(lng)) {
                (Some(latitude), Some(longitude)) => Some(GeoPoint { longitude, latitude }),
                _ => {
                    errors.add(
                        "coordinates",
                        "enter both latitude and longitude as decimal degrees",
                    );
                    None
                }
            },
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(EventInput {
            title: self.title.clone(),
            description: self.description.clone(),
            location: self.location.clone(),
            start_time: start,
            end_time: end,
            tags: self
                .tags
                .split(',')
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .collect(),
            max_attendees,
            coordinates,
            attachment_url,
        })
    }
}

#[derive(Template)]
#[template(path = "shop/event_form.html")]
struct EventFormPage {
    layout: Layout,
    action: String,
    heading: String,
    form: EventFields,
    errors: FieldErrors,
}

fn form_page(
    session: &Session,
    status: StatusCode,
    action: String,
    form: EventFields,
    errors: FieldErrors,
) -> Response {
    let heading = if action == "/events/new" {
        "New event"
    } else {
        "Edit event"
    };
    html(
        status,
        &EventFormPage {
            layout: Layout::new(session, heading),
            action,
            heading: heading.to_owned(),
            form,
            errors,
        },
    )
}

pub async fn new_page(Extension(session): Extension<Session>, uri: Uri) -> Response {
    if session.principal.is_none() {
        return render::to_login(&uri);
    }
    let action = "/events/new".to_owned();
    form_page(
        &session,
        StatusCode::OK,
        action,
        EventFields::blank(),
        FieldErrors::default(),
    )
}

pub async fn create(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    uri: Uri,
    Form(form): Form<EventFields>,
) -> Response {
    let Some(principal) = session.principal else {
        return render::to_login(&uri);
    };
    let action = "/events/new".to_owned();
    let input = match form.input(None) {
        Ok(input) => input,
        Err(errors) => return form_page(&session, StatusCode::UNPROCESSABLE_ENTITY, action, form, errors),
    };
    match state.events.create(&principal, input, None).await {
        Ok(details) => Redirect::to(&format!("/events/{}", details.event.id)).into_response(),
        Err(services::Error::Validation(invalid)) => form_page(
            &session,
            StatusCode::UNPROCESSABLE_ENTITY,
            action,
            form,
            invalid.into(),
        ),
        Err(err) => render::service_error(&session, &uri, err),
    }
}

pub async fn edit_page(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    uri: Uri,
    PagePath(id): PagePath<Uuid>,
) -> Response {
    let Some(principal) = session.principal else {
        return render::to_login(&uri);
    };
    match state.events.get(id).await {
        Ok(details) if details.event.is_owned_by(principal.user_id) || principal.role == Role::Admin => {
            let form = EventFields::of(&details.event);
            form_page(
                &session,
                StatusCode::OK,
                format!("/events/{id}/edit"),
                form,
                FieldErrors::default(),
            )
        }
        Ok(_) => render::forbidden(&session, "Only the event's creator or an admin may edit it."),
        Err(err) => render::service_error(&session, &uri, err),
    }
}

pub async fn update(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    uri: Uri,
    PagePath(id): PagePath<Uuid>,
    Form(form): Form<EventFields>,
) -> Response {
    let Some(principal) = session.principal else {
        return render::to_login(&uri);
    };
    let action = format!("/events/{id}/edit");
    let attachment = match state.events.get(id).await {
        Ok(details) => details.event.attachment_url.clone(),
        Err(err) => return render::service_error(&session, &uri, err),
    };
    let input = match form.input(attachment) {
        Ok(input) => input,
        Err(errors) => return form_page(&session, StatusCode::UNPROCESSABLE_ENTITY, action, form, errors),
    };
    let edit = EventEdit::Replace { input, drop: None };
    match state.events.update(&principal, id, edit).await {
        Ok(_) => Redirect::to(&format!("/events/{id}")).into_response(),
        Err(services::Error::Validation(invalid)) => form_page(
            &session,
            StatusCode::UNPROCESSABLE_ENTITY,
            action,
            form,
            invalid.into(),
        ),
        Err(err) => render::service_error(&session, &uri, err),
    }
}

/// `POST /events/{id}/{attend|leave|subscribe|unsubscribe}`.
pub async fn act(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    uri: Uri,
    PagePath((id, action)): PagePath<(Uuid, String)>,
) -> Response {
    let Some(principal) = session.principal else {
        return render::to_login_at(&format!("/events/{id}"));
    };
    let events = &state.events;
    let outcome = match action.as_str() {
        "attend" => events.attend(&principal, id).await.map(|_| ()),
        "leave" => events.leave(&principal, id).await,
        "subscribe" => events.subscribe(&principal, id).await,
        "unsubscribe" => events.unsubscribe(&principal, id).await,
        _ => return render::not_found(&session),
    };
    match outcome {
        Ok(()) => Redirect::to(&format!("/events/{id}")).into_response(),
        Err(err) => render::service_error(&session, &uri, err),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct CommentForm {
    body: String,
    parent_id: String,
}

/// `POST /events/{id}/comments`: a comment, or a reply when `parent_id`
/// names one.
pub async fn comment(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    uri: Uri,
    PagePath(id): PagePath<Uuid>,
    Form(form): Form<CommentForm>,
) -> Response {
    let Some(principal) = session.principal else {
        return render::to_login_at(&format!("/events/{id}"));
    };
    let posted = match form.parent_id.trim() {
        "" => state.events.comment(&principal, id, &form.body).await,
        parent => match parent.parse::<Uuid>() {
            Ok(parent) => state.events.reply(&principal, parent, &form.body).await,
            Err(_) => return render::not_found(&session),
        },
    };
    match posted {
        Ok(_) => Redirect::to(&format!("/events/{id}#comments")).into_response(),
        Err(err) => render::service_error(&session, &uri, err),
    }
}

/// `POST /events/{id}/attachment` (multipart: `csrf_token`, `file`).
pub async fn attachment(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    uri: Uri,
    PagePath(id): PagePath<Uuid>,
    mut multipart: Multipart,
) -> Response {
    let Some(principal) = session.principal else {
        return render::to_login_at(&format!("/events/{id}"));
    };
    let mut csrf_ok = false;
    let mut file = None;
    while let Ok(Some(field)) = multipart.next_field().await {
        let name = field.name().unwrap_or_default().to_owned();
        let Ok(bytes) = field.bytes().await else {
            return render::message(
                &session,
                StatusCode::PAYLOAD_TOO_LARGE,
                "Upload failed",
                "The file could not be read; files up to 10 MiB are accepted.",
            );
        };
        if name == CSRF_FIELD {
            csrf_ok = std::str::from_utf8(&bytes).is_ok_and(|t| session.check_csrf(t));
        } else if name == "file" {
            file = Some(bytes);
        }
    }
    if !csrf_ok {
        return render::forbidden(&session, "This form expired or did not come from this site.");
    }
    let Some(bytes) = file.filter(|b| !b.is_empty()) else {
        return render::message(
            &session,
            StatusCode::UNPROCESSABLE_ENTITY,
            "No file",
            "Choose a file to upload.",
        );
    };
    let uploaded = match state.uploads.upload(principal.user_id, bytes).await {
        Ok(uploaded) => uploaded,
        Err(err) => return render::service_error(&session, &uri, err),
    };
    let patch = EventPatch {
        attachment_url: Some(uploaded.url),
        ..EventPatch::default()
    };
    match state.events.update(&principal, id, EventEdit::Patch(patch)).await {
        Ok(_) => Redirect::to(&format!("/events/{id}")).into_response(),
        Err(err) => render::service_error(&session, &uri, err),
    }
}
