//! `/orders` and `/orders/{id}`: the caller's orders; a reservation with
//! its countdown, `Confirm` and `Cancel`.

use api::AppState;
use askama::Template;
use axum::Extension;
use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use domain::sales::{Order, OrderStatus};
use serde::Deserialize;
use uuid::Uuid;

use crate::extract::PagePath;
use crate::render::{self, Layout, When, html, money};
use crate::session::Session;

/// What an order shows when its product cannot be read.
const UNLISTED: &str = "A product no longer listed";

/// The rows of these orders, each named after its product (one query).
async fn rows(state: &AppState, orders: &[Order]) -> services::Result<Vec<OrderRow>> {
    let products: Vec<Uuid> = orders.iter().map(|o| o.product_id).collect();
    let names = state.catalog.product_names(&products).await?;
    Ok(orders
        .iter()
        .map(|order| {
            let name = names.get(&order.product_id).cloned();
            OrderRow::new(order, name.unwrap_or_else(|| UNLISTED.to_owned()))
        })
        .collect())
}

pub struct OrderRow {
    pub id: String,
    /// What was bought.
    pub product: String,
    pub status: String,
    pub quantity: i64,
    pub unit_price: String,
    pub total: String,
    pub created: When,
    pub expires: When,
    pub event_id: Option<String>,
    pub auction_id: Option<String>,
}

impl OrderRow {
    fn new(order: &Order, product: String) -> OrderRow {
        OrderRow {
            id: order.id.to_string(),
            product,
            status: order.status.as_str().to_owned(),
            quantity: order.quantity,
            unit_price: money(order.unit_price_cents, &order.currency),
            total: money(order.unit_price_cents * order.quantity, &order.currency),
            created: When::new(order.created_at),
            expires: When::new(order.expires_at),
            event_id: order.event_id.map(|id| id.to_string()),
            auction_id: order.auction_id.map(|id| id.to_string()),
        }
    }

    pub fn is_reserved(&self) -> bool {
        self.status == OrderStatus::Reserved.as_str()
    }

    pub fn is_confirmed(&self) -> bool {
        self.status == OrderStatus::Confirmed.as_str()
    }
}

#[derive(Template)]
#[template(path = "shop/order.html")]
struct OrderPage {
    layout: Layout,
    order: OrderRow,
    notice: Option<String>,
}

async fn order_page(
    state: &AppState,
    session: &Session,
    order: &Order,
    status: StatusCode,
    notice: Option<String>,
) -> Response {
    let order = match rows(state, std::slice::from_ref(order)).await {
        Ok(mut rows) if !rows.is_empty() => rows.swap_remove(0),
        _ => OrderRow::new(order, UNLISTED.to_owned()),
    };
    html(
        status,
        &OrderPage {
            layout: Layout::with_bell(session, state, "Your order").await,
            order,
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
    let Some(principal) = session.principal else {
        return render::to_login(&uri);
    };
    match state.sales.order(&principal, id).await {
        Ok(order) => order_page(&state, &session, &order, StatusCode::OK, None).await,
        Err(err) => render::service_error(&session, &uri, err),
    }
}

/// `POST /orders/{id}/confirm` and `/cancel`.
pub async fn act(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    uri: Uri,
    PagePath((id, action)): PagePath<(Uuid, String)>,
) -> Response {
    let Some(principal) = session.principal else {
        return render::to_login_at(&format!("/orders/{id}"));
    };
    let outcome = match action.as_str() {
        "confirm" => state.sales.confirm(&principal, id).await,
        "cancel" => state.sales.cancel(&principal, id).await,
        _ => return render::not_found(&session),
    };
    match outcome {
        Ok(_) => Redirect::to(&format!("/orders/{id}")).into_response(),
        Err(services::Error::Conflict { detail, code }) => {
            let text = match code {
                "reservation_expired" => "The reservation expired: its stock went back on sale.".to_owned(),
                _ => detail,
            };
            match state.sales.order(&principal, id).await {
                Ok(order) => order_page(&state, &session, &order, StatusCode::CONFLICT, Some(text)).await,
                Err(err) => render::service_error(&session, &uri, err),
            }
        }
        Err(err) => render::service_error(&session, &uri, err),
    }
}

#[derive(Template)]
#[template(path = "shop/orders.html")]
struct OrdersPage {
    layout: Layout,
    orders: Vec<OrderRow>,
    next_cursor: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct CursorQuery {
    cursor: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    uri: Uri,
    Query(query): Query<CursorQuery>,
) -> Response {
    let Some(principal) = session.principal else {
        return render::to_login(&uri);
    };
    let cursor = query.cursor.filter(|c| !c.is_empty());
    let page = match state
        .sales
        .my_orders(&principal, Some(20), cursor.as_deref())
        .await
    {
        Ok(page) => page,
        Err(err) => return render::service_error(&session, &uri, err),
    };
    let orders = match rows(&state, &page.data).await {
        Ok(orders) => orders,
        Err(err) => return render::service_error(&session, &uri, err),
    };
    html(
        StatusCode::OK,
        &OrdersPage {
            layout: Layout::with_bell(&session, &state, "My orders").await,
            orders,
            next_cursor: page.next_cursor,
        },
    )
}
