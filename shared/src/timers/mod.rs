//! Timer adapters: [`LocalTimers`] (persisted in the embedded store, fired by the local
//! host). The EventBridge Scheduler adapter implements the same port on AWS.

mod local;

pub use local::LocalTimers;
