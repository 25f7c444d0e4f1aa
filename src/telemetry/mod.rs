//! What the loader tells its operators: Prometheus [`metrics`] and [`logging`] in the replaced
//! service's line shape.
pub mod logging;
pub mod metrics;
