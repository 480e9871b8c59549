use std::str::FromStr;
use std::time::Duration;

use domain::clock::Clock;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

use crate::{Result, Store};

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the concrete sqlx pool. The body is
/// written once and compiled for each driver.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool {
            $crate::db::Pool::Sqlite($pool) => $body,
            $crate::db::Pool::Postgres($pool) => $body,
        }
    };
}

/// Starts a transaction that will write. SQLite must take the write lock
/// up front (`BEGIN IMMEDIATE`): a deferred transaction that reads and then
/// writes can fail with "database is locked" instead of waiting its turn.
pub(crate) trait BeginWrite {
    type Db: sqlx::Database;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Self::Db>>;
}

impl BeginWrite for SqlitePool {
    type Db = sqlx::Sqlite;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.begin_with("BEGIN IMMEDIATE").await?)
    }
}

impl BeginWrite for PgPool {
    type Db = sqlx::Postgres;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        Ok(self.begin().await?)
    }
}

/// The SQL implementation of [`Store`] for both databases.
pub struct SqlStore {
    pub(crate) pool: Pool,
    /// The process's clock: every time the store writes comes from it.
    pub(crate) clock: Clock,
}

/// How to open the database.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// `sqlite://path?mode=rwc` or `postgres://...`.
    pub url: String,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

/// Prepared statements kept per connection (sqlx's default is 100).
const STATEMENT_CACHE: usize = 24;

impl SqlStore {
    /// Opens the database named by the URL and runs pending migrations.
    pub async fn connect(options: &ConnectOptions, clock: Clock) -> Result<SqlStore> {
        let store = Self::open(options, clock).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Opens the database without touching its schema.
    ///
    /// Batches build their SQL by size (one placeholder group per request),
    /// so a connection sees many shapes of the same statement; a small
    /// statement cache keeps the hot ones without holding every shape.
    pub async fn open(options: &ConnectOptions, clock: Clock) -> Result<SqlStore> {
        let url = options.url.as_str();
        let pool = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let connect = PgConnectOptions::from_str(url)?.statement_cache_capacity(STATEMENT_CACHE);
            Pool::Postgres(
                PgPoolOptions::new()
                    .max_connections(options.max_connections)
                    .acquire_timeout(options.acquire_timeout)
                    .connect_with(connect)
                    .await?,
            )
        } else {
            let connect = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // FULL: a committed order survives power loss, not only a crash.
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
                .statement_cache_capacity(STATEMENT_CACHE)
                // A page cache of 2 MiB per connection (SQLite's default),
                // stated: with `max_connections` it bounds what the
                // database holds in this process.
                .pragma("cache_size", "-2048");
            Pool::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(options.max_connections)
                    .acquire_timeout(options.acquire_timeout)
                    .connect_with(connect)
                    .await?,
            )
        };
        Ok(SqlStore { pool, clock })
    }

    /// A fresh outbox message id: a UUIDv7 of the store's clock.
    pub(crate) fn message_id(&self) -> uuid::Uuid {
        self.clock.new_id()
    }

    /// Applies the embedded migrations of this backend.
    pub async fn migrate(&self) -> Result<()> {
        match &self.pool {
            Pool::Sqlite(pool) => sqlx::migrate!("./migrations/sqlite").run(pool).await?,
            Pool::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await?,
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Store for SqlStore {
    fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    async fn ping(&self) -> Result<()> {
        on_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(drop)?);
        Ok(())
    }

    async fn close(&self) {
        on_pool!(self, pool => pool.close().await)
    }

    async fn try_lead(&self, key: i32) -> Result<Option<Leadership>> {
        SqlStore::try_lead(self, key).await
    }

    async fn follow_outbox(&self, wake: &(dyn Fn() + Send + Sync)) {
        let Pool::Postgres(pool) = &self.pool else { return };
        loop {
            match listen(pool, OUTBOX_CHANNEL).await {
                Ok((mut listener, schema)) => {
                    // Whatever was committed while nobody listened.
                    wake();
                    // `recv` reconnects by itself; an error means it could not.
                    while let Ok(notification) = listener.recv().await {
                        if notification.payload() == schema {
                            wake();
                        }
                    }
                }
                Err(err) => {
                    tracing::warn!(%err, "cannot listen for outbox writes; the relay polls meanwhile")
                }
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
}

/// The channel the outbox trigger notifies (migration 0006).
const OUTBOX_CHANNEL: &str = "swiftdrop_outbox";

/// Listens on `channel`; also returns this deployment's schema, which the
/// notifications of its own writes carry.
async fn listen(pool: &PgPool, channel: &str) -> Result<(PgListener, String)> {
    let schema: String = sqlx::query_scalar("SELECT current_schema()")
        .fetch_one(pool)
        .await?;
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(channel).await?;
    Ok((listener, schema))
}

/// Proof that this process is the one active worker. On PostgreSQL it is a
/// session-level advisory lock held by a connection of its own: if the
/// process dies the session ends and another worker takes over. SQLite is
/// one machine's file, so there it is simply granted.
pub struct Leadership {
    connection: Option<sqlx::PgConnection>,
}

impl Leadership {
    /// Whether the lock is still held (its session still answers).
    pub async fn holds(&mut self) -> bool {
        match &mut self.connection {
            None => true,
            Some(connection) => sqlx::query("SELECT 1").execute(&mut *connection).await.is_ok(),
        }
    }
}

impl SqlStore {
    /// Takes the worker lock `key` (in this schema) if no other process
    /// holds it.
    pub async fn try_lead(&self, key: i32) -> Result<Option<Leadership>> {
        match &self.pool {
            Pool::Sqlite(_) => Ok(Some(Leadership { connection: None })),
            Pool::Postgres(pool) => {
                let mut connection = pool.acquire().await?.detach();
                // Scoped to the schema: deployments sharing a database (or
                // test runs, one schema each) each get their own worker.
                let locked: bool =
                    sqlx::query_scalar("SELECT pg_try_advisory_lock($1, hashtext(current_schema()))")
                        .bind(key)
                        .fetch_one(&mut connection)
                        .await?;
                Ok(locked.then_some(Leadership {
                    connection: Some(connection),
                }))
            }
        }
    }
}

/// `%term%` for a case-insensitive `LIKE`, with the wildcards in `term`
/// escaped (queries use `ESCAPE '\'`).
pub(crate) fn contains_pattern(term: &str) -> String {
    let mut pattern = String::with_capacity(term.len() + 2);
    pattern.push('%');
    for c in term.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}
