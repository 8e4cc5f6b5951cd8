//! One module per subcommand.

pub mod agent;
pub mod demo;
pub mod hunt;
pub mod incidents;
pub mod ocsf;
pub mod rules;
