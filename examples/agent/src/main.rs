//! The example agent as a program; see `lib.rs`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::new("info")).init();
    let env = |k: &str| std::env::var(k).map_err(|_| anyhow::anyhow!("set {k}"));
    let config = herald_example_agent::Config {
        database_url: env("AGENT_DATABASE_URL")?,
        herald_url: env("HERALD_URL")?,
        herald_token: env("HERALD_TOKEN")?,
        public_url: env("AGENT_PUBLIC_URL")?,
        webhook_secret: env("AGENT_WEBHOOK_SECRET")?,
    };
    let listen: std::net::SocketAddr =
        std::env::var("AGENT_LISTEN").unwrap_or_else(|_| "127.0.0.1:9100".into()).parse()?;
    let app = herald_example_agent::app(config).await?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(%listen, "example agent listening");
    axum::serve(listener, app).await?;
    Ok(())
}
