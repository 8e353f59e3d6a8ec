//! `assent-admin`: the admin API (docs/admin-api.yaml) behind the HTTP API's IAM auth.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    assent::logging::init(false); // CloudWatch stamps each line
    let sdk = assent::aws::sdk_config().await;
    let config = assent::aws::AdminConfig::from_env(&assent::aws::ProcessEnv)?;
    let api = assent::aws::admin_api(&sdk, config).await?;
    // No bearer token here: the gateway authorizes every request with IAM.
    lambda_http::run(assent::admin::router(api, None)).await
}
