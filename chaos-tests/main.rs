//! Scenarios under continuous load. Each states a guarantee and counts:
//! every refused, reset, timed-out or 5xx request is a failure.

#[path = "../tests/integration/harness.rs"]
mod harness;
mod load;
mod reload;
mod restarts;
#[path = "../tests/integration/upgrade_util.rs"]
mod upgrade_util;
mod upgrades;
