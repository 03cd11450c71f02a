//! Who holds the leases: every sending process registers, heartbeats, and deregisters.
//!
//! A claim writes the claimer's id into `lease_owner`. While a sender lives, its heartbeat
//! renews its leases, so a slow relay never lets a live sender's work be taken. When a sender
//! dies, its leases run out after `lease_secs` (the rule for holders on other hosts), or are
//! taken over at once by a sender on the same host that can see the holder's process is gone
//! ([`Store::take_over`]; the liveness check itself lives in `delivery::owner`).

use chrono::Duration;
use sqlx::FromRow;

use super::{Result, Store, db};
use crate::domain::DbTime;

/// A registered sender's row id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SenderId(pub i64);

/// What identifies a sending process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderIdentity {
    /// The host name.
    pub host: String,
    pub pid: u32,
    /// Identifies this start of the process, so a reused pid is not taken for the same process.
    pub started: String,
    /// The name operators see.
    pub node: String,
}

/// A registered sender.
#[derive(Debug, Clone, FromRow)]
pub struct SenderRow {
    pub id: i64,
    pub host: String,
    pub pid: i64,
    pub started: String,
    pub node: String,
    pub heartbeat_at: DbTime,
}

/// What [`Store::take_over`] freed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TakenOver {
    pub deliveries: u64,
    pub mail: u64,
}

impl Store {
    /// Registers a sending process; its id goes into every lease it takes.
    pub async fn register_sender(&self, who: &SenderIdentity) -> Result<SenderId> {
        let now = DbTime::now();
        let id: i64 = db!(self.writer(), |c| {
            sqlx::query_scalar(
                "INSERT INTO senders (host, pid, started, node, created_at, heartbeat_at)
                 VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
            )
            .bind(&who.host)
            .bind(i64::from(who.pid))
            .bind(&who.started)
            .bind(&who.node)
            .bind(now)
            .fetch_one(c)
            .await
        })?;
        Ok(SenderId(id))
    }

    /// Says `me` is alive and renews its leases to `lease` from now. Returns whether `me` is
    /// still registered (another sender may have taken it over after a long stall).
    pub async fn heartbeat(&self, me: SenderId, lease: Duration) -> Result<bool> {
        let now = DbTime::now();
        let until = DbTime::from(now.utc() + lease);
        let mut tx = self.writer().begin().await?;
        let alive = db!(&mut tx, |c| {
            let alive = sqlx::query("UPDATE senders SET heartbeat_at = $1 WHERE id = $2")
                .bind(now)
                .bind(me.0)
                .execute(&mut *c)
                .await
                .affected()?
                > 0;
            if alive {
                for table in [LeaseTable::Deliveries, LeaseTable::Mail] {
                    sqlx::query(table.renew())
                        .bind(until)
                        .bind(me.0)
                        .execute(&mut *c)
                        .await
                        .affected()?;
                }
            }
            Ok::<_, sqlx::Error>(alive)
        })?;
        tx.commit().await?;
        Ok(alive)
    }

    /// Every sender registered on `host`.
    pub async fn senders_on(&self, host: &str) -> Result<Vec<SenderRow>> {
        Ok(db!(self.pool(), |c| {
            sqlx::query_as(
                "SELECT id, host, pid, started, node, heartbeat_at FROM senders WHERE host = $1 ORDER BY id",
            )
            .bind(host)
            .fetch_all(c)
            .await
        })?)
    }

    /// Every registered sender.
    pub async fn senders(&self) -> Result<Vec<SenderRow>> {
        Ok(db!(self.pool(), |c| {
            sqlx::query_as(
                "SELECT id, host, pid, started, node, heartbeat_at FROM senders ORDER BY id",
            )
            .fetch_all(c)
            .await
        })?)
    }

    /// Takes over a sender known to be dead: its leases end now (so the next claim takes the
    /// rows) and its registration is removed.
    pub async fn take_over(&self, dead: SenderId) -> Result<TakenOver> {
        self.end_sender(dead, Ending::TakeOver).await
    }

    /// Deregisters a sender that stops: whatever it still holds goes back to the queue. Such
    /// rows never reached the relay, or were cut off mid-transaction by the shutdown deadline
    /// (those, at most one per connection, are the only ones that may be sent twice).
    pub async fn deregister_sender(&self, me: SenderId) -> Result<TakenOver> {
        self.end_sender(me, Ending::Deregister).await
    }

    /// Ends `sender`'s leases in both tables as `ending` says and removes its registration,
    /// in one transaction.
    async fn end_sender(&self, sender: SenderId, ending: Ending) -> Result<TakenOver> {
        let mut tx = self.write_tx().await?;
        let freed = db!(&mut tx, |c| {
            let mut freed = TakenOver::default();
            for table in [LeaseTable::Deliveries, LeaseTable::Mail] {
                let n = match ending {
                    Ending::TakeOver => sqlx::query(table.expire()).bind(DbTime::now()),
                    Ending::Deregister => sqlx::query(table.release()),
                }
                .bind(sender.0)
                .execute(&mut *c)
                .await
                .affected()?;
                match table {
                    LeaseTable::Deliveries => freed.deliveries = n,
                    LeaseTable::Mail => freed.mail = n,
                }
            }
            sqlx::query("DELETE FROM senders WHERE id = $1")
                .bind(sender.0)
                .execute(&mut *c)
                .await
                .affected()?;
            Ok::<_, sqlx::Error>(freed)
        })?;
        tx.commit().await?;
        Ok(freed)
    }
}

/// How a sender's leases end.
#[derive(Debug, Clone, Copy)]
enum Ending {
    /// The holder is dead: its leases expire now, so the next claim takes its rows (one it
    /// had in flight may have reached the relay, so its attempt stays counted).
    TakeOver,
    /// The holder stops cleanly: its rows go back to the queue, the attempt it had begun not
    /// counted.
    Deregister,
}

/// The two tables whose rows carry leases; same columns, so the same statements.
#[derive(Debug, Clone, Copy)]
enum LeaseTable {
    Deliveries,
    Mail,
}

impl LeaseTable {
    fn renew(self) -> &'static str {
        match self {
            Self::Deliveries => {
                "UPDATE deliveries SET lease_until = $1 WHERE lease_owner = $2 AND status = 'sending'"
            }
            Self::Mail => {
                "UPDATE mail_queue SET lease_until = $1 WHERE lease_owner = $2 AND status = 'sending'"
            }
        }
    }
    fn expire(self) -> &'static str {
        match self {
            Self::Deliveries => {
                "UPDATE deliveries SET lease_until = $1, lease_owner = NULL WHERE lease_owner = $2 AND status = 'sending'"
            }
            Self::Mail => {
                "UPDATE mail_queue SET lease_until = $1, lease_owner = NULL WHERE lease_owner = $2 AND status = 'sending'"
            }
        }
    }
    fn release(self) -> &'static str {
        match self {
            Self::Deliveries => {
                "UPDATE deliveries SET status = 'queued', attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END,
                     lease_until = NULL, lease_owner = NULL
                 WHERE lease_owner = $1 AND status = 'sending'"
            }
            Self::Mail => {
                "UPDATE mail_queue SET status = 'queued', attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END,
                     lease_until = NULL, lease_owner = NULL
                 WHERE lease_owner = $1 AND status = 'sending'"
            }
        }
    }
}
