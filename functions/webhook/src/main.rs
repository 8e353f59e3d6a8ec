//! `assent-webhook`: API Gateway HTTP API (v2) and Lambda function URL events for
//! `/webhooks/{channel}`. Verifies, stores each inbound message once, answers; the
//! table's stream wakes the step function. Serves the web chat too when it is on.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    assent::logging::init(false); // CloudWatch stamps each line
    let sdk = assent::aws::sdk_config().await;
    let env = assent::aws::channel_env(&sdk).await?;
    let config = assent::aws::WebhookConfig::from_env(&env)?;
    lambda_http::run(assent::aws::webhook_app(&sdk, config)).await
}
