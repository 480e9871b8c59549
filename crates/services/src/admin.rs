//! The admin dashboard: catalog, sales and user figures, assembled from
//! the services that own them.

use std::sync::Arc;

use domain::sales::SalesStats;
use domain::user::UserCounts;

use crate::Result;
use crate::accounts::AccountService;
use crate::catalog::{CatalogService, ProductDashboard};
use crate::sales::SalesService;

/// Everything the dashboard shows, each part computed by aggregate
/// queries of the database (no row is loaded to be counted).
#[derive(Debug, Clone)]
pub struct Dashboard {
    pub products: ProductDashboard,
    pub sales: SalesStats,
    pub users: UserCounts,
}

pub struct AdminService {
    catalog: Arc<CatalogService>,
    accounts: Arc<AccountService>,
    sales: Arc<SalesService>,
}

impl AdminService {
    pub fn new(
        catalog: Arc<CatalogService>,
        accounts: Arc<AccountService>,
        sales: Arc<SalesService>,
    ) -> Self {
        AdminService {
            catalog,
            accounts,
            sales,
        }
    }

    pub async fn dashboard(&self) -> Result<Dashboard> {
        let (products, sales, users) = tokio::try_join!(
            self.catalog.dashboard(),
            self.sales.stats(),
            self.accounts.user_counts()
        )?;
        Ok(Dashboard {
            products,
            sales,
            users,
        })
    }
}
