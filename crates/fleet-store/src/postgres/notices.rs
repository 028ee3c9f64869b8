//! Commit notices on PostgreSQL: a dedicated connection (not from the
//! pool) `LISTEN`s on `fleet_run` (payload: the run id) and `fleet_work`;
//! commits `pg_notify` inside their transaction, so a notice arrives only
//! for what was committed. A lost connection is re-established with
//! backoff, and `Notice::Any` tells the subscriber to look again (a notice
//! missed meanwhile then costs latency, never correctness).

use crate::{Notice, StoreError, Subscription};
use async_trait::async_trait;
use fleet_core::run::RunStatus;
use futures_util::StreamExt;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client, Connection, NoTls, Socket, tls::NoTlsStream};

type Conn = Connection<Socket, NoTlsStream>;

/// What a subscription listens to.
#[derive(Debug, Clone, Copy)]
pub(super) enum Channels {
    /// Every commit (`fleet_run`) and claimable work (`fleet_work`).
    All,
    /// Claimable work only: a worker, which every commit would otherwise wake.
    Work,
}

impl Channels {
    fn listen(self) -> &'static str {
        match self {
            Channels::All => "LISTEN fleet_run; LISTEN fleet_work",
            Channels::Work => "LISTEN fleet_work",
        }
    }
}

pub(super) struct PgSubscription {
    rx: mpsc::UnboundedReceiver<Notice>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PgSubscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn connect(
    config: &tokio_postgres::Config,
    name: &str,
) -> Result<(Client, Conn), StoreError> {
    config.connect(NoTls).await.map_err(|e| {
        StoreError::Database(format!(
            "cannot connect to {name} to listen for commits: {e}"
        ))
    })
}

impl PgSubscription {
    pub(super) async fn start(
        config: tokio_postgres::Config,
        name: String,
        channels: Channels,
    ) -> Result<PgSubscription, StoreError> {
        // The first connection is made here, so a subscriber learns at once
        // that the database cannot be reached.
        let first = connect(&config, &name).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        // Told once LISTEN took effect on the first connection: a commit
        // made after `start` returns must be heard, so it waits for that.
        let (listening_tx, listening_rx) = tokio::sync::oneshot::channel();
        let mut listening = Some(listening_tx);
        let task = tokio::spawn(async move {
            let mut next = Some(first);
            let mut backoff = Duration::from_millis(100);
            loop {
                let (client, connection) = match next.take() {
                    Some(c) => c,
                    None => match connect(&config, &name).await {
                        Ok(c) => c,
                        Err(_) => {
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(Duration::from_secs(5));
                            continue;
                        }
                    },
                };
                listen(client, connection, channels, &tx, listening.take()).await;
                if tx.is_closed() {
                    return;
                }
                // Lost: whatever was notified meanwhile is unknown.
                let _ = tx.send(Notice::Any);
                tokio::time::sleep(backoff).await;
            }
        });
        // A LISTEN that failed drops the sender; the task then reconnects
        // and the subscriber gets `Notice::Any`, as after any lost connection.
        let _ = tokio::time::timeout(Duration::from_secs(10), listening_rx).await;
        Ok(PgSubscription { rx, task })
    }
}

/// Forwards notifications until the connection ends.
async fn listen(
    client: Client,
    mut connection: Conn,
    channels: Channels,
    tx: &mpsc::UnboundedSender<Notice>,
    listening: Option<tokio::sync::oneshot::Sender<()>>,
) {
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    let keep = async {
        if client.batch_execute(channels.listen()).await.is_ok() {
            if let Some(listening) = listening {
                let _ = listening.send(());
            }
            // Holding the client keeps the connection open.
            std::future::pending::<()>().await;
        }
    };
    let forward = async {
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    let notice = match n.channel() {
                        "fleet_work" => Notice::Work,
                        _ => {
                            let (id, status) = parse_run_payload(n.payload());
                            Notice::Run(id, status)
                        }
                    };
                    if tx.send(notice).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    };
    tokio::select! {
        () = keep => {}
        () = forward => {}
    }
}

#[async_trait]
impl Subscription for PgSubscription {
    async fn next(&mut self, timeout: Duration) -> Result<Option<Notice>, StoreError> {
        match tokio::time::timeout(timeout, self.rx.recv()).await {
            Ok(Some(notice)) => Ok(Some(notice)),
            Ok(None) | Err(_) => Ok(None),
        }
    }
}

/// The `fleet_run` payload: the run id and, after a space (run ids have
/// none), its status after the commit.
pub(super) fn run_payload(id: &str, status: RunStatus) -> String {
    format!("{id} {}", status.as_str())
}

/// Reads [`run_payload`]; a payload without a known status is all id.
fn parse_run_payload(payload: &str) -> (String, Option<RunStatus>) {
    if let Some((id, status)) = payload.rsplit_once(' ')
        && let Some(status) = RunStatus::ALL.into_iter().find(|s| s.as_str() == status)
    {
        return (id.to_owned(), Some(status));
    }
    (payload.to_owned(), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_payload_names_the_run_and_its_status() {
        let payload = run_payload("01J-run", RunStatus::Waiting);
        assert_eq!(
            parse_run_payload(&payload),
            ("01J-run".to_owned(), Some(RunStatus::Waiting))
        );
        assert_eq!(parse_run_payload("01J-run"), ("01J-run".to_owned(), None));
        assert_eq!(
            parse_run_payload("a b nonsense"),
            ("a b nonsense".to_owned(), None)
        );
    }
}
