//! Store adapters: [`EmbeddedStore`] (one redb file, for the local runner) and, with the
//! `aws` feature, `DynamoStore` (one DynamoDB table), behind the same ports.

#[cfg(feature = "aws")]
pub mod dynamodb;
mod embedded;
mod group_commit;
mod timer_queue;

pub use timer_queue::TimerQueue;

#[cfg(feature = "aws")]
pub use dynamodb::DynamoStore;
pub use embedded::EmbeddedStore;
