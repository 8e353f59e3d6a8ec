//! `assent-step`: woken by the table's stream (new inbox items only); runs each contact's
//! steps and answers with a partial batch response.

use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    assent::logging::init(false); // CloudWatch stamps each line
    let sdk = assent::aws::sdk_config().await;
    let env = assent::aws::channel_env(&sdk).await?;
    let config = assent::aws::StepConfig::from_env(&env)?;
    let (runtime, store) = assent::aws::step_runtime(&sdk, config).await?;
    let (runtime, store) = (&runtime, &store);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| async move {
        assent::aws::step::handle(runtime, store, event).await
    }))
    .await
}
