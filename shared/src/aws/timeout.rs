//! The timeout function's handler: a schedule fired; queue the timeout for its contact.

use lambda_runtime::LambdaEvent;

use crate::contact::ContactId;
use crate::engine::TimerRef;
use crate::runtime::Runtime;
use crate::timers::scheduler::TimeoutInput;

pub async fn handle(
    runtime: &Runtime,
    event: LambdaEvent<TimeoutInput>,
) -> Result<(), lambda_runtime::Error> {
    let input = event.payload;
    let contact = ContactId::from_stored(input.contact);
    let timer = TimerRef {
        run: input.run,
        wait_seq: input.wait_seq,
    };
    // An error makes the scheduler retry (its retry policy), then use its dead-letter queue.
    runtime.fire_timeout(&contact, timer).await?;
    Ok(())
}
