//! `/admin/products`: create, edit, soft delete, image upload.

use api::AppState;
use askama::Template;
use axum::Form;
use axum::extract::{Multipart, Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use domain::catalog::{Product, ProductInput};
use serde::Deserialize;
use services::catalog::BrowseRequest;
use uuid::Uuid;

use crate::extract::{Admin, PagePath};
use crate::forms::FieldErrors;
use crate::render::{self, Layout, html, money, parse_price};
use crate::session::{CSRF_FIELD, Session};

#[derive(Clone, Default, Deserialize)]
#[serde(default)]
pub struct ProductFields {
    pub name: String,
    pub description: String,
    pub category: String,
    pub tags: String,
    pub price: String,
    pub currency: String,
    pub image_url: String,
}

impl ProductFields {
    fn of(product: &Product) -> ProductFields {
        let cents = product.price_cents;
        ProductFields {
            name: product.name.clone(),
            description: product.description.clone(),
            category: product.category.clone(),
            tags: product.tags.join(", "),
            price: format!("{}.{:02}", cents / 100, cents % 100),
            currency: product.currency.clone(),
            image_url: product.image_url.clone().unwrap_or_default(),
        }
    }

    fn input(&self) -> Result<ProductInput, FieldErrors> {
        let price_cents = parse_price(&self.price).map_err(|m| {
            let mut errors = FieldErrors::default();
            errors.add("price", &m);
            errors
        })?;
        Ok(ProductInput {
            name: self.name.clone(),
            description: self.description.clone(),
            category: self.category.clone(),
            tags: self
                .tags
                .split(',')
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .collect(),
            price_cents,
            currency: if self.currency.trim().is_empty() {
                "EUR".to_owned()
            } else {
                self.currency.trim().to_owned()
            },
            image_url: Some(self.image_url.trim().to_owned()).filter(|u| !u.is_empty()),
        })
    }
}

fn shown(errors: domain::ValidationErrors) -> FieldErrors {
    let mut out = FieldErrors::default();
    for f in errors.fields() {
        out.add(&f.field.replace("price_cents", "price"), &f.message);
    }
    out
}

pub struct ProductRow {
    pub id: String,
    pub name: String,
    pub category: String,
    pub price: String,
}

#[derive(Template)]
#[template(path = "admin/products.html")]
struct ProductsPage {
    layout: Layout,
    products: Vec<ProductRow>,
    next_link: Option<String>,
    search: String,
    form: ProductFields,
    errors: FieldErrors,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ListQuery {
    search: String,
    cursor: String,
}

async fn products_page(
    state: &AppState,
    session: &Session,
    uri: &Uri,
    query: ListQuery,
    status: StatusCode,
    form: ProductFields,
    errors: FieldErrors,
) -> Response {
    let request = BrowseRequest {
        search: Some(query.search.trim().to_owned()).filter(|s| !s.is_empty()),
        cursor: Some(query.cursor.clone()).filter(|c| !c.is_empty()),
        limit: Some(50),
        ..BrowseRequest::default()
    };
    let page = match state.catalog.browse(request).await {
        Ok(page) => page,
        Err(err) => return render::service_error(session, uri, err),
    };
    let next_link = page.next_cursor.map(|cursor| {
        let mut params = form_urlencoded::Serializer::new(String::new());
        params.append_pair("search", &query.search);
        params.append_pair("cursor", &cursor);
        format!("/admin/products?{}", params.finish())
    });
    html(
        status,
        &ProductsPage {
            layout: Layout::with_bell(session, state, "Admin: products").await,
            products: page
                .data
                .iter()
                .map(|p| ProductRow {
                    id: p.id.to_string(),
                    name: p.name.clone(),
                    category: p.category.clone(),
                    price: money(p.price_cents, &p.currency),
                })
                .collect(),
            next_link,
            search: query.search,
            form,
            errors,
        },
    )
}

pub async fn list(
    State(state): State<AppState>,
    Admin { session, .. }: Admin,
    uri: Uri,
    Query(query): Query<ListQuery>,
) -> Response {
    let form = ProductFields {
        currency: "EUR".to_owned(),
        ..ProductFields::default()
    };
    products_page(
        &state,
        &session,
        &uri,
        query,
        StatusCode::OK,
        form,
        FieldErrors::default(),
    )
    .await
}

pub async fn create(
    State(state): State<AppState>,
    Admin { session, .. }: Admin,
    uri: Uri,
    Form(form): Form<ProductFields>,
) -> Response {
    let again = async |errors: FieldErrors| {
        products_page(
            &state,
            &session,
            &uri,
            ListQuery::default(),
            StatusCode::UNPROCESSABLE_ENTITY,
            form.clone(),
            errors,
        )
        .await
    };
    let input = match form.input() {
        Ok(input) => input,
        Err(errors) => return again(errors).await,
    };
    match state.catalog.create_product(input).await {
        Ok(product) => Redirect::to(&format!("/admin/products/{}", product.id)).into_response(),
        Err(services::Error::Validation(invalid)) => again(shown(invalid)).await,
        Err(err) => render::service_error(&session, &uri, err),
    }
}

#[derive(Template)]
#[template(path = "admin/product.html")]
struct ProductPage {
    layout: Layout,
    id: String,
    form: ProductFields,
    errors: FieldErrors,
}

pub async fn show(
    State(state): State<AppState>,
    Admin { session, .. }: Admin,
    uri: Uri,
    PagePath(id): PagePath<Uuid>,
) -> Response {
    match state.catalog.product(id).await {
        Ok(product) => html(
            StatusCode::OK,
            &ProductPage {
                layout: Layout::with_bell(&session, &state, format!("Admin: {}", product.name)).await,
                id: id.to_string(),
                form: ProductFields::of(&product),
                errors: FieldErrors::default(),
            },
        ),
        Err(err) => render::service_error(&session, &uri, err),
    }
}

/// `POST /admin/products/{id}`: the edit.
pub async fn update(
    State(state): State<AppState>,
    Admin { session, .. }: Admin,
    uri: Uri,
    PagePath(id): PagePath<Uuid>,
    Form(form): Form<ProductFields>,
) -> Response {
    let again = |errors: FieldErrors| {
        html(
            StatusCode::UNPROCESSABLE_ENTITY,
            &ProductPage {
                layout: Layout::new(&session, "Admin: product"),
                id: id.to_string(),
                form: form.clone(),
                errors,
            },
        )
    };
    let input = match form.input() {
        Ok(input) => input,
        Err(errors) => return again(errors),
    };
    match state.catalog.update_product(id, input).await {
        Ok(_) => Redirect::to(&format!("/admin/products/{id}")).into_response(),
        Err(services::Error::Validation(invalid)) => again(shown(invalid)),
        Err(err) => render::service_error(&session, &uri, err),
    }
}

/// `POST /admin/products/{id}/delete`: the soft delete.
pub async fn delete(
    State(state): State<AppState>,
    Admin { session, .. }: Admin,
    uri: Uri,
    PagePath(id): PagePath<Uuid>,
) -> Response {
    match state.catalog.delete_product(id).await {
        Ok(()) => Redirect::to("/admin/products").into_response(),
        Err(err) => render::service_error(&session, &uri, err),
    }
}

/// `POST /admin/products/{id}/image` (multipart: `csrf_token`, `file`):
/// uploads the image and sets it on the product.
pub async fn image(
    State(state): State<AppState>,
    Admin { session, principal }: Admin,
    uri: Uri,
    PagePath(id): PagePath<Uuid>,
    mut multipart: Multipart,
) -> Response {
    let mut csrf_ok = false;
    let mut file = None;
    loop {
        match multipart.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or_default().to_owned();
                match field.bytes().await {
                    Ok(bytes) if name == CSRF_FIELD => {
                        csrf_ok = std::str::from_utf8(&bytes).is_ok_and(|t| session.check_csrf(t));
                    }
                    Ok(bytes) if name == "file" => file = Some(bytes),
                    Ok(_) => {}
                    Err(_) => {
                        return render::message(
                            &session,
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "Upload failed",
                            "The file could not be read; images up to 10 MiB are accepted.",
                        );
                    }
                }
            }
            Ok(None) => break,
            Err(_) => {
                return render::message(
                    &session,
                    StatusCode::BAD_REQUEST,
                    "Upload failed",
                    "The upload was not a valid form.",
                );
            }
        }
    }
    // The token is checked before anything is stored.
    if !csrf_ok {
        return render::forbidden(&session, "This form expired or did not come from this site.");
    }
    let Some(bytes) = file.filter(|b| !b.is_empty()) else {
        return render::message(
            &session,
            StatusCode::UNPROCESSABLE_ENTITY,
            "No file",
            "Choose an image to upload.",
        );
    };
    let product = match state.catalog.product(id).await {
        Ok(product) => product,
        Err(err) => return render::service_error(&session, &uri, err),
    };
    let uploaded = match state.uploads.upload(principal.user_id, bytes).await {
        Ok(uploaded) => uploaded,
        Err(err) => return render::service_error(&session, &uri, err),
    };
    let mut fields = ProductFields::of(&product);
    fields.image_url = uploaded.url;
    let input = match fields.input() {
        Ok(input) => input,
        Err(_) => return render::service_error(&session, &uri, services::Error::internal("product fields")),
    };
    match state.catalog.update_product(id, input).await {
        Ok(_) => Redirect::to(&format!("/admin/products/{id}")).into_response(),
        Err(err) => render::service_error(&session, &uri, err),
    }
}
