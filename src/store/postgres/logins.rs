//! The shared login rate limit: buckets in the `login_attempts` table, counted by the functions of migration
//! V4, one round trip per call.

use super::{Postgres, Retry};
use crate::store::{LoginKey, StoreError};

/// Counts an attempt against `buckets` (key and capacity per minute), all or none; the seconds to wait when
/// one of them is full.
pub(in crate::store) async fn count(
    db: &Postgres,
    buckets: &[(LoginKey, f64)],
) -> Result<Option<f64>, StoreError> {
    let keys: Vec<&[u8]> = buckets.iter().map(|(key, _)| &key.0[..]).collect();
    let capacities: Vec<f64> = buckets.iter().map(|&(_, capacity)| capacity).collect();
    let (keys, capacities) = (&keys, &capacities);
    // A write, but one that may run twice: the worst a repeat does is count one attempt twice.
    db.run(Retry::Read, || async move {
        let (client, stmt) = db
            .prepared("SELECT login_attempt($1::bytea[], $2::float8[])")
            .await?;
        let wait: f64 = client.query_one(&stmt, &[keys, capacities]).await?.get(0);
        Ok((wait > 0.0).then_some(wait))
    })
    .await
}

/// A login succeeded: the bucket of `pair` empties and `address` gets its attempt back.
pub(in crate::store) async fn forgive(
    db: &Postgres,
    pair: LoginKey,
    address: LoginKey,
) -> Result<(), StoreError> {
    let (pair, address) = (&pair.0[..], &address.0[..]);
    db.run(Retry::Read, || async move {
        let (client, stmt) = db
            .prepared("SELECT login_succeeded($1::bytea, $2::bytea)")
            .await?;
        client.execute(&stmt, &[&pair, &address]).await?;
        Ok(())
    })
    .await
}
