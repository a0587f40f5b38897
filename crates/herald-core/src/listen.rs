//! LISTEN/NOTIFY as a wake-up hint. A dedicated connection listens on some channels and wakes a
//! [`Notify`] on each notification; it reconnects (with `backon`) after the database restarts
//! and wakes once after each reconnect, since notifications sent meanwhile are lost. Nothing may
//! depend on a notification for correctness: every loop that listens also polls.

use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;

/// Listens on `channels` until `shutdown`, waking `wake` on every notification.
pub async fn listen(
    url: String,
    channels: Vec<String>,
    wake: Arc<Notify>,
    metrics: Arc<crate::metrics::Metrics>,
    shutdown: CancellationToken,
) {
    loop {
        let connect = || async { tokio_postgres::connect(&url, NoTls).await };
        let connected = tokio::select! {
            _ = shutdown.cancelled() => return,
            c = connect
                .retry(ExponentialBuilder::default().with_max_delay(Duration::from_secs(5)).without_max_times())
                .notify(|e, wait| tracing::warn!(error = %e, ?wait, "LISTEN connection failed; retrying")) => c,
        };
        let Ok((client, mut connection)) = connected else { continue };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let driver = tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(n)) => {
                        if tx.send(n.channel().to_string()).is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "LISTEN connection lost");
                        break;
                    }
                }
            }
        });
        let mut ok = true;
        for channel in &channels {
            if let Err(e) = client.batch_execute(&format!("LISTEN {channel}")).await {
                tracing::warn!(error = %e, channel, "LISTEN failed");
                ok = false;
                break;
            }
        }
        if ok {
            // Anything published while we were not listening: look now.
            wake.notify_one();
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => { driver.abort(); return; }
                    n = rx.recv() => match n {
                        Some(channel) => {
                            metrics.wakeup(&channel);
                            wake.notify_one();
                        }
                        None => break,
                    },
                }
            }
        }
        driver.abort();
        drop(client);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}
