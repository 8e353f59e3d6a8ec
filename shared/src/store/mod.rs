//! Store adapters: [`EmbeddedStore`] (one redb file, for the local runner). The DynamoDB
//! adapter implements the same ports for AWS.

mod embedded;

pub use embedded::EmbeddedStore;
