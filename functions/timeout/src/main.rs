//! `assent-timeout`: the target of the EventBridge Scheduler one-shot schedules; queues
//! the timeout event for the contact.

use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    assent::logging::init(false); // CloudWatch stamps each line
    let sdk = assent::aws::sdk_config().await;
    let config = assent::aws::TimeoutConfig::from_env(&assent::aws::ProcessEnv)?;
    let runtime = assent::aws::timeout_runtime(&sdk, config);
    let runtime = &runtime;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| async move {
        assent::aws::timeout::handle(runtime, event).await
    }))
    .await
}
