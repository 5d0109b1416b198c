//! The one ordered queue through which a server sends everything to Redis:
//! commits, publications and presence records, many per round trip. A
//! batch that fails because Redis cannot be reached is sent again, in
//! order, once it can (nothing queued is dropped; a batch that failed
//! half-way may deliver some messages twice, which the delta rule and
//! the clients' event ids absorb); a commit that finds another owner is
//! reported as `Inbound::Lost`. Commits carry the script's text (`EVAL`),
//! so a Redis that restarted and forgot its scripts still runs them.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::sync::mpsc;

use super::keys::Keys;
use super::scripts::COMMIT;
use crate::engine::broker::Inbound;

pub(super) enum Outgoing {
    Publish { channel: String, message: Vec<u8> },
    Commit { key: String, record: String, message: Vec<u8> },
    Cmd(redis::Cmd),
}

pub(super) struct Publisher {
    tx: mpsc::UnboundedSender<Outgoing>,
}

impl Publisher {
    pub fn start(
        conn: ConnectionManager,
        keys: Keys,
        node: Arc<str>,
        inbox: mpsc::UnboundedSender<Inbound>,
    ) -> Publisher {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(Loop { conn, keys, node, inbox }, rx));
        Publisher { tx }
    }

    pub fn send(&self, outgoing: Outgoing) {
        // The queue only closes with the process.
        let _ = self.tx.send(outgoing);
    }
}

struct Loop {
    conn: ConnectionManager,
    keys: Keys,
    node: Arc<str>,
    inbox: mpsc::UnboundedSender<Inbound>,
}

const MAX_BACKOFF: Duration = Duration::from_secs(2);

async fn run(mut state: Loop, mut rx: mpsc::UnboundedReceiver<Outgoing>) {
    let mut batch = Vec::with_capacity(256);
    while rx.recv_many(&mut batch, 256).await > 0 {
        let pipe = state.pipeline(&batch);
        let mut backoff = Duration::from_millis(50);
        loop {
            match pipe.query_async::<Vec<redis::Value>>(&mut state.conn).await {
                Ok(values) => {
                    state.report_lost(&batch, values);
                    break;
                }
                Err(e)
                    if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout() =>
                {
                    tracing::warn!(error = %e, messages = batch.len(), ?backoff, "redis unreachable; sending again");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(e) => {
                    tracing::error!(error = %e, messages = batch.len(), "redis refused a batch");
                    break;
                }
            }
        }
        batch.clear();
    }
}

impl Loop {
    fn pipeline(&self, batch: &[Outgoing]) -> redis::Pipeline {
        let mut pipe = redis::pipe();
        for item in batch {
            match item {
                Outgoing::Publish { channel, message } => {
                    pipe.publish(channel, message);
                }
                Outgoing::Commit { key, record, message } => {
                    let keys = &self.keys;
                    pipe.cmd("EVAL")
                        .arg(COMMIT)
                        .arg(3)
                        .arg(keys.owner(key))
                        .arg(keys.room(key))
                        .arg(keys.rooms())
                        .arg(&*self.node)
                        .arg(record)
                        .arg(key)
                        .arg(keys.overview_channel())
                        .arg(message);
                }
                Outgoing::Cmd(cmd) => {
                    pipe.add_command(cmd.clone());
                }
            }
        }
        pipe
    }

    fn report_lost(&self, batch: &[Outgoing], values: Vec<redis::Value>) {
        for (item, value) in batch.iter().zip(values) {
            if let Outgoing::Commit { key, .. } = item
                && value == redis::Value::Int(0)
            {
                tracing::warn!(room = %key, "another server owns the room now; its task here stops");
                let _ = self.inbox.send(Inbound::Lost(key.clone()));
            }
        }
    }
}
