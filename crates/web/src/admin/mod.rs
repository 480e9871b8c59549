//! The admin console: every page needs the admin role (a visitor is sent
//! to sign in, a customer gets a 403 page).

pub mod auctions;
mod chart;
pub mod events;
pub mod products;
pub mod users;

use api::AppState;
use api::views::DashboardView;
use askama::Template;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::routing::{get, post};

use crate::extract::Admin;
use crate::render::{self, Layout, html, money};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin", get(dashboard))
        .route("/admin/events", get(events::list).post(events::create))
        .route("/admin/events/{id}", get(events::show))
        .route(
            "/admin/events/{id}/edit",
            get(events::edit_page).post(events::update),
        )
        .route("/admin/events/{id}/{action}", post(events::act))
        .route("/admin/products", get(products::list).post(products::create))
        .route("/admin/products/{id}", get(products::show).post(products::update))
        .route("/admin/products/{id}/delete", post(products::delete))
        .route(
            "/admin/products/{id}/image",
            post(products::image).layer(DefaultBodyLimit::max(
                services::uploads::MAX_UPLOAD_BYTES + 64 * 1024,
            )),
        )
        .route("/admin/auctions", get(auctions::list).post(auctions::create))
        .route("/admin/auctions/{id}", get(auctions::edit).post(auctions::update))
        .route("/admin/users", get(users::list))
        .route("/admin/users/{id}/{action}", post(users::act))
}

pub struct Figure {
    pub label: &'static str,
    pub value: String,
}

pub struct SellRow {
    pub event_id: String,
    pub title: String,
    pub sold: i64,
    pub total: i64,
}

pub struct TopRow {
    pub name: String,
    pub units: i64,
    pub revenue: String,
}

#[derive(Template)]
#[template(path = "admin/dashboard.html")]
struct DashboardPage {
    layout: Layout,
    figures: Vec<Figure>,
    chart: chart::BarChart,
    sell_through: Vec<SellRow>,
    top: Vec<TopRow>,
}

async fn dashboard(State(state): State<AppState>, Admin { session, .. }: Admin, uri: Uri) -> Response {
    let (dashboard, daily) = match tokio::try_join!(state.admin.dashboard(), state.sales.daily_revenue(30)) {
        Ok(both) => both,
        Err(err) => return render::service_error(&session, &uri, err),
    };
    let view = DashboardView::from(dashboard);
    let figures = vec![
        Figure {
            label: "Confirmed revenue",
            value: money(view.revenue_cents, "EUR"),
        },
        Figure {
            label: "Live drops",
            value: view.events.live.to_string(),
        },
        Figure {
            label: "Scheduled",
            value: view.events.scheduled.to_string(),
        },
        Figure {
            label: "Sold out",
            value: view.events.sold_out.to_string(),
        },
        Figure {
            label: "Closed",
            value: view.events.closed.to_string(),
        },
        Figure {
            label: "Orders confirmed",
            value: view.orders.confirmed.to_string(),
        },
        Figure {
            label: "Orders reserved",
            value: view.orders.reserved.to_string(),
        },
        Figure {
            label: "Orders expired",
            value: view.orders.expired.to_string(),
        },
        Figure {
            label: "Orders canceled",
            value: view.orders.canceled.to_string(),
        },
        Figure {
            label: "Products",
            value: view.products.total.to_string(),
        },
        Figure {
            label: "Average rating",
            value: view
                .products
                .average_rating
                .map_or_else(|| "none".to_owned(), |r| format!("{r:.2}")),
        },
        Figure {
            label: "Users (active)",
            value: format!("{} ({})", view.users.total, view.users.active),
        },
        Figure {
            label: "Admins",
            value: view.users.admins.to_string(),
        },
    ];
    html(
        StatusCode::OK,
        &DashboardPage {
            layout: Layout::with_bell(&session, &state, "Admin dashboard").await,
            figures,
            chart: chart::BarChart::daily_revenue(&daily),
            sell_through: view
                .sell_through
                .iter()
                .map(|s| SellRow {
                    event_id: s.event_id.to_string(),
                    title: s.title.clone(),
                    sold: s.sold,
                    total: s.stock_total,
                })
                .collect(),
            top: view
                .top_products
                .iter()
                .map(|t| TopRow {
                    name: t.name.clone(),
                    units: t.units_sold,
                    revenue: money(t.revenue_cents, "EUR"),
                })
                .collect(),
        },
    )
}
