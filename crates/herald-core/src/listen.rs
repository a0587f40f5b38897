//! LISTEN/NOTIFY as a wake-up hint. A dedicated connection listens on some channels and wakes a
//! [`Wake`] on each notification, with the tenant it names; it reconnects (with `backon`) after
//! the database restarts and wakes everyone once after each reconnect, since notifications sent
//! meanwhile are lost. Nothing may depend on a notification for correctness: every loop that
//! listens also polls.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio_postgres::AsyncMessage;
use tokio_util::sync::CancellationToken;

use crate::id::TenantId;

/// A wake-up, and which tenants it is for (a notification's payload is its tenant), so that a
/// woken loop can go straight to them instead of asking every tenant.
#[derive(Debug, Default)]
pub struct Wake {
    notify: Notify,
    tenants: Mutex<(BTreeSet<TenantId>, bool)>,
    /// Whether [`listen`] is listening right now: a notification sent meanwhile arrives.
    listening: std::sync::atomic::AtomicBool,
    /// Counts the connections [`listen`] started listening on: what was learnt under an
    /// earlier one may have missed a notification.
    epoch: std::sync::atomic::AtomicU64,
}

impl Wake {
    /// More tenants than this between two looks, and the next look is at everyone.
    const MAX_TENANTS: usize = 1000;

    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Wakes the loop for `tenant`, or for everyone (`None`, or a payload that names no tenant).
    pub fn hint(&self, tenant: Option<&str>) {
        let tenant = tenant.and_then(|t| TenantId::parse(t).ok());
        {
            let mut t = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
            match tenant {
                Some(name) if !t.1 && t.0.len() < Self::MAX_TENANTS => {
                    t.0.insert(name);
                }
                _ => t.1 = true,
            }
        }
        self.notify.notify_one();
    }

    /// Whether notifications arrive now. What relies on hearing one (the API's token cache)
    /// stops relying on it while this is false.
    pub fn listening(&self) -> bool {
        self.listening.load(std::sync::atomic::Ordering::Acquire)
    }

    /// See the field: it changes before [`Wake::listening`] turns true again.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(std::sync::atomic::Ordering::Acquire)
    }

    pub async fn notified(&self) {
        self.notify.notified().await
    }

    /// The tenants woken since the last call, or `None` for everyone.
    pub fn take(&self) -> Option<Vec<TenantId>> {
        let mut t = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        let (tenants, everyone) = std::mem::take(&mut *t);
        (!everyone).then(|| tenants.into_iter().collect())
    }
}

/// Listens on `channels` until `shutdown`, waking `wake` on every notification.
pub async fn listen(
    url: String,
    channels: Vec<String>,
    wake: Arc<Wake>,
    metrics: Arc<crate::metrics::Metrics>,
    shutdown: CancellationToken,
) {
    loop {
        let connect = || async {
            let (mut config, tls) = crate::tls::config(&url).map_err(crate::db::DbError::Settings)?;
            // A connection that died without a word (a failover, a dropped route) is noticed
            // within about 20 s, not the system's two hours: until then `listening` stays true.
            config
                .keepalives(true)
                .keepalives_idle(Duration::from_secs(5))
                .keepalives_interval(Duration::from_secs(5))
                .keepalives_retries(3);
            Ok::<_, crate::db::DbError>(config.connect(tls).await?)
        };
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
                        if tx.send((n.channel().to_string(), n.payload().to_string())).is_err() {
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
            // Anything published while we were not listening: look now, everywhere.
            wake.epoch.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            wake.listening.store(true, std::sync::atomic::Ordering::Release);
            wake.hint(None);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => {
                        wake.listening.store(false, std::sync::atomic::Ordering::Release);
                        driver.abort();
                        return;
                    }
                    n = rx.recv() => match n {
                        Some((channel, tenant)) => {
                            metrics.wakeup(&channel);
                            wake.hint((!tenant.is_empty()).then_some(tenant.as_str()));
                        }
                        None => break,
                    },
                }
            }
        }
        wake.listening.store(false, std::sync::atomic::Ordering::Release);
        driver.abort();
        drop(client);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}
