//! Statements prepared once per pooled connection. `execute` with SQL text
//! prepares the statement on every call: a second round trip and a parse
//! and plan in the server each time, which on this store's hot path (a few
//! dozen statements per run) was most of PostgreSQL's CPU.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Error, Row, Statement};

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// `execute`/`query`/`query_opt`/`query_one` through the connection's
/// statement cache.
#[async_trait]
pub(super) trait Cached: Sync {
    async fn statement(&self, sql: &str) -> Result<Statement, Error>;
    async fn run(&self, s: &Statement, params: Params<'_>) -> Result<u64, Error>;
    async fn all(&self, s: &Statement, params: Params<'_>) -> Result<Vec<Row>, Error>;
    async fn opt(&self, s: &Statement, params: Params<'_>) -> Result<Option<Row>, Error>;
    async fn one(&self, s: &Statement, params: Params<'_>) -> Result<Row, Error>;

    async fn exec(&self, sql: &str, params: Params<'_>) -> Result<u64, Error> {
        let s = self.statement(sql).await?;
        self.run(&s, params).await
    }
    async fn rows(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, Error> {
        let s = self.statement(sql).await?;
        self.all(&s, params).await
    }
    async fn row_opt(&self, sql: &str, params: Params<'_>) -> Result<Option<Row>, Error> {
        let s = self.statement(sql).await?;
        self.opt(&s, params).await
    }
    async fn row(&self, sql: &str, params: Params<'_>) -> Result<Row, Error> {
        let s = self.statement(sql).await?;
        self.one(&s, params).await
    }
}

/// One implementation for pooled clients and their transactions alike.
#[async_trait]
impl<C: GenericClient + Sync> Cached for C {
    async fn statement(&self, sql: &str) -> Result<Statement, Error> {
        self.prepare_cached(sql).await
    }
    async fn run(&self, s: &Statement, params: Params<'_>) -> Result<u64, Error> {
        self.execute(s, params).await
    }
    async fn all(&self, s: &Statement, params: Params<'_>) -> Result<Vec<Row>, Error> {
        self.query(s, params).await
    }
    async fn opt(&self, s: &Statement, params: Params<'_>) -> Result<Option<Row>, Error> {
        self.query_opt(s, params).await
    }
    async fn one(&self, s: &Statement, params: Params<'_>) -> Result<Row, Error> {
        self.query_one(s, params).await
    }
}
