//! `/products` (search, filters, sorts, cursor paging), `/products/{id}`
//! with its reviews, and `/wishlist`.

use api::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use domain::catalog::Product;
use serde::Deserialize;
use services::catalog::BrowseRequest;
use uuid::Uuid;

use crate::extract::PagePath;
use crate::forms::FieldErrors;
use crate::render::{self, Layout, When, html, money, parse_price};
use crate::session::Session;

pub struct ProductCard {
    pub id: String,
    pub name: String,
    pub category: String,
    pub price: String,
    pub image_url: Option<String>,
    pub stars: String,
    pub rating: String,
    pub reviews: i64,
}

/// Five stars, filled to the rounded rating: `★★★☆☆`.
pub fn stars(rating: f64) -> String {
    let full = rating.round().clamp(0.0, 5.0) as usize;
    "★".repeat(full) + &"☆".repeat(5 - full)
}

impl ProductCard {
    pub fn new(p: &Product) -> ProductCard {
        ProductCard {
            id: p.id.to_string(),
            name: p.name.clone(),
            category: p.category.clone(),
            price: money(p.price_cents, &p.currency),
            image_url: p.image_url.clone(),
            stars: stars(p.average_rating),
            rating: format!("{:.1}", p.average_rating),
            reviews: p.review_count,
        }
    }
}

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub struct CatalogQuery {
    search: String,
    category: String,
    tag: String,
    min_price: String,
    max_price: String,
    sort_by: String,
    sort_order: String,
    cursor: String,
}

#[derive(Template)]
#[template(path = "shop/products.html")]
struct ProductsPage {
    layout: Layout,
    query: CatalogQuery,
    products: Vec<ProductCard>,
    next_link: Option<String>,
    errors: FieldErrors,
}

impl ProductsPage {
    fn sorts(&self) -> Vec<(&'static str, &'static str, bool)> {
        [
            ("created_at", "Newest"),
            ("price", "Price"),
            ("rating", "Rating"),
            ("name", "Name"),
        ]
        .into_iter()
        .map(|(value, label)| (value, label, self.query.sort_by == value))
        .collect()
    }

    fn orders(&self) -> Vec<(&'static str, &'static str, bool)> {
        [("desc", "Descending"), ("asc", "Ascending")]
            .into_iter()
            .map(|(value, label)| (value, label, self.query.sort_order == value))
            .collect()
    }
}

pub async fn list(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    uri: Uri,
    Query(query): Query<CatalogQuery>,
) -> Response {
    let some = |v: &str| Some(v.trim().to_owned()).filter(|v| !v.is_empty());
    let mut errors = FieldErrors::default();
    let mut price = |field: &str, text: &str| match some(text) {
        None => None,
        Some(text) => parse_price(&text).map_err(|m| errors.add(field, &m)).ok(),
    };
    let min_price = price("min_price", &query.min_price);
    let max_price = price("max_price", &query.max_price);
    let request = BrowseRequest {
        search: some(&query.search),
        category: some(&query.category),
        tag: some(&query.tag),
        min_price,
        max_price,
        sort_by: some(&query.sort_by),
        sort_order: some(&query.sort_order),
        limit: Some(24),
        cursor: some(&query.cursor),
    };
    let (products, next_link, status) = if errors.is_empty() {
        match state.catalog.browse(request).await {
            Ok(page) => {
                let next = page.next_cursor.map(|cursor| {
                    let mut params = form_urlencoded::Serializer::new(String::new());
                    for (k, v) in [
                        ("search", &query.search),
                        ("category", &query.category),
                        ("tag", &query.tag),
                        ("min_price", &query.min_price),
                        ("max_price", &query.max_price),
                        ("sort_by", &query.sort_by),
                        ("sort_order", &query.sort_order),
                    ] {
                        if !v.is_empty() {
                            params.append_pair(k, v);
                        }
                    }
                    params.append_pair("cursor", &cursor);
                    format!("/products?{}", params.finish())
                });
                (
                    page.data.iter().map(ProductCard::new).collect(),
                    next,
                    StatusCode::OK,
                )
            }
            Err(services::Error::Validation(invalid)) => {
                errors = invalid.into();
                (Vec::new(), None, StatusCode::UNPROCESSABLE_ENTITY)
            }
            Err(err) => return render::service_error(&session, &uri, err),
        }
    } else {
        (Vec::new(), None, StatusCode::UNPROCESSABLE_ENTITY)
    };
    html(
        status,
        &ProductsPage {
            layout: Layout::with_bell(&session, &state, "Catalog").await,
            query,
            products,
            next_link,
            errors,
        },
    )
}

pub struct ReviewRow {
    pub username: String,
    pub stars: String,
    pub rating: i64,
    pub comment: String,
    pub when: When,
}

pub struct HistogramRow {
    pub stars: usize,
    pub count: i64,
    pub percent: i64,
}

#[derive(Template)]
#[template(path = "shop/product.html")]
struct ProductPage {
    layout: Layout,
    product: ProductCard,
    description: String,
    tags: Vec<String>,
    average: String,
    count: i64,
    histogram: Vec<HistogramRow>,
    reviews: Vec<ReviewRow>,
    rating: String,
    comment: String,
    errors: FieldErrors,
    notice: Option<String>,
}

#[allow(clippy::too_many_arguments)]
async fn product_page(
    state: &AppState,
    session: &Session,
    uri: &Uri,
    id: Uuid,
    status: StatusCode,
    typed: (String, String),
    errors: FieldErrors,
    notice: Option<String>,
) -> Response {
    let loaded = tokio::try_join!(
        state.catalog.product(id),
        state.catalog.rating_summary(id),
        state.catalog.reviews(id, Some(20), None),
    );
    let (product, summary, reviews) = match loaded {
        Ok(all) => all,
        Err(err) => return render::service_error(session, uri, err),
    };
    let histogram = (1..=5)
        .rev()
        .map(|stars| {
            let count = summary.histogram[stars - 1];
            HistogramRow {
                stars,
                count,
                percent: if summary.count > 0 {
                    count * 100 / summary.count
                } else {
                    0
                },
            }
        })
        .collect();
    html(
        status,
        &ProductPage {
            layout: Layout::with_bell(session, state, product.name.clone()).await,
            description: product.description.clone(),
            tags: product.tags.clone(),
            product: ProductCard::new(&product),
            average: format!("{:.1}", summary.average_rating),
            count: summary.count,
            histogram,
            reviews: reviews
                .data
                .iter()
                .map(|r| ReviewRow {
                    username: r.username.clone(),
                    stars: stars(r.rating as f64),
                    rating: r.rating,
                    comment: r.comment.clone().unwrap_or_default(),
                    when: When::new(r.created_at),
                })
                .collect(),
            rating: typed.0,
            comment: typed.1,
            errors,
            notice,
        },
    )
}

pub async fn show(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    uri: Uri,
    PagePath(id): PagePath<Uuid>,
) -> Response {
    product_page(
        &state,
        &session,
        &uri,
        id,
        StatusCode::OK,
        (String::new(), String::new()),
        FieldErrors::default(),
        None,
    )
    .await
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ReviewForm {
    rating: String,
    comment: String,
}

pub async fn review(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    uri: Uri,
    PagePath(id): PagePath<Uuid>,
    Form(form): Form<ReviewForm>,
) -> Response {
    let Some(principal) = session.principal else {
        return render::to_login_at(&format!("/products/{id}"));
    };
    let typed = (form.rating.clone(), form.comment.clone());
    let Ok(rating) = form.rating.trim().parse::<i64>() else {
        let mut errors = FieldErrors::default();
        errors.add("rating", "choose 1 to 5 stars");
        return product_page(
            &state,
            &session,
            &uri,
            id,
            StatusCode::UNPROCESSABLE_ENTITY,
            typed,
            errors,
            None,
        )
        .await;
    };
    let comment = Some(form.comment.clone());
    match state.catalog.review(id, principal.user_id, rating, comment).await {
        Ok(_) => Redirect::to(&format!("/products/{id}#reviews")).into_response(),
        Err(services::Error::Validation(invalid)) => {
            product_page(
                &state,
                &session,
                &uri,
                id,
                StatusCode::UNPROCESSABLE_ENTITY,
                typed,
                invalid.into(),
                None,
            )
            .await
        }
        Err(err) => render::service_error(&session, &uri, err),
    }
}

/// `POST /products/{id}/wishlist` (add) and `/products/{id}/unwish` (remove).
pub async fn wish(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    uri: Uri,
    PagePath((id, action)): PagePath<(Uuid, String)>,
) -> Response {
    let Some(principal) = session.principal else {
        return render::to_login_at(&format!("/products/{id}"));
    };
    let outcome = match action.as_str() {
        "wishlist" => state.catalog.add_to_wishlist(principal.user_id, id).await,
        "unwish" => state.catalog.remove_from_wishlist(principal.user_id, id).await,
        _ => return render::not_found(&session),
    };
    match outcome {
        Ok(()) => Redirect::to("/wishlist").into_response(),
        Err(err) => render::service_error(&session, &uri, err),
    }
}

#[derive(Template)]
#[template(path = "shop/wishlist.html")]
struct WishlistPage {
    layout: Layout,
    products: Vec<ProductCard>,
    next_cursor: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct CursorQuery {
    cursor: String,
}

pub async fn wishlist(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    uri: Uri,
    Query(query): Query<CursorQuery>,
) -> Response {
    let Some(principal) = session.principal else {
        return render::to_login(&uri);
    };
    let cursor = Some(query.cursor).filter(|c| !c.is_empty());
    match state
        .catalog
        .wishlist(principal.user_id, Some(24), cursor.as_deref())
        .await
    {
        Ok(page) => html(
            StatusCode::OK,
            &WishlistPage {
                layout: Layout::with_bell(&session, &state, "Wishlist").await,
                products: page.data.iter().map(|w| ProductCard::new(&w.product)).collect(),
                next_cursor: page.next_cursor,
            },
        ),
        Err(err) => render::service_error(&session, &uri, err),
    }
}
